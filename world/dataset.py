"""The world: people, splits and every question set, as `unlearnd.models.Sample` lists.

A `World` is fully described by its `WorldSpec` (sizes and seed) and the people drawn from
it; images are re-drawn on demand from (seed, pid, variant), so world.json stays small and
the pixels are the same every time.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from PIL import Image

from unlearnd.models.base import Sample
from unlearnd.world import questions as q
from unlearnd.world.people import FACT_CATEGORIES, FACT_VALUES, IDENTITY, Person, make_people
from unlearnd.world.portraits import portrait
from unlearnd.world.scenes import SHAPE_COLOURS, SHAPES, SIZES, Scene, make_scene

AUGMENT_OFFSET = 1000  # training-only portrait variants start here (never evaluated)
KINDS = ("seen_qa", "unseen_qa", "textual_qa", "paraphrase_qa", "cloze", "multiple_choice",
         "general")  # fmt: skip


@dataclass(frozen=True)
class WorldSpec:
    n_people: int = 200
    seed: int = 0
    n_seen: int = 6  # portraits per person used in training and for "seen" QA
    n_unseen: int = 2  # portraits per person never trained on
    n_augment: int = 10  # extra training-only variants per person
    n_train_scenes: int = 3000
    n_eval_scenes: int = 300
    image_size: int = 48
    forget_fraction: float = 0.2


@dataclass(frozen=True)
class QAItem:
    """One question with its ground truth and where it comes from."""

    question: str
    answer: str  # the full expected answer (what the model is trained to say)
    category: str
    kind: str  # visual | textual | cloze | multiple_choice | general
    pid: int | None = None
    image: tuple | None = None  # ("portrait", pid, k) or ("scene", index)
    options: tuple[str, ...] = field(default=())  # multiple choice: full answers, one true
    fact: str = ""  # the fact value (or name) the answer must contain

    def __post_init__(self):
        if not self.fact:
            object.__setattr__(self, "fact", self.answer)


def answer_for(person: Person, category: str, value: str | None = None) -> str:
    """The sentence that answers a question of `category` about `person`."""
    if value is None:
        value = person.name if category == IDENTITY else person.facts[category]
    return q.ANSWERS[category].format(name=person.name, value=value)


class World:
    def __init__(self, spec: WorldSpec, people: list[Person] | None = None):
        self.spec = spec
        reserved = vocabulary_without_names()
        self.people = (
            people if people is not None else make_people(spec.n_people, spec.seed, reserved)
        )
        n_forget = max(1, round(len(self.people) * spec.forget_fraction))
        self.forget_pids = [p.pid for p in self.people[:n_forget]]
        self.retain_pids = [p.pid for p in self.people[n_forget:]]
        self.refusals = {k: list(v) for k, v in q.REFUSALS.items()}
        self.model_dir: Path | None = None  # set by load_world when a vlm/ folder is beside it
        self._image = lru_cache(maxsize=None)(self._draw)

    # --- images ---------------------------------------------------------------------------
    def _draw(self, ref: tuple) -> Image.Image:
        if ref[0] == "portrait":
            person = self.people[ref[1]]
            return portrait(
                person.features, self.spec.seed, person.pid, ref[2], self.spec.image_size
            )
        return make_scene(self.spec.seed, ref[1], self.spec.image_size)[1]

    def image(self, ref: tuple) -> Image.Image:
        return self._image(tuple(ref))

    def scene(self, index: int) -> Scene:
        return make_scene(self.spec.seed, index, self.spec.image_size)[0]

    def seen_variants(self) -> range:
        return range(self.spec.n_seen)

    def unseen_variants(self) -> range:
        return range(self.spec.n_seen, self.spec.n_seen + self.spec.n_unseen)

    def train_variants(self) -> list[int]:
        extra = range(AUGMENT_OFFSET, AUGMENT_OFFSET + self.spec.n_augment)
        return [*self.seen_variants(), *extra]

    def eval_scene_indices(self) -> range:
        start = self.spec.n_train_scenes
        return range(start, start + self.spec.n_eval_scenes)

    # --- question sets --------------------------------------------------------------------
    def _pids(self, pids) -> list[int]:
        return [p.pid for p in self.people] if pids is None else list(pids)

    def forget_items(self, pid: int, categories=None, templates: int = 2) -> list[QAItem]:
        """What a deletion request about person `pid` names: each category (default: all)
        asked about each seen portrait, in the first `templates` trained phrasings."""
        person = self.people[pid]
        return [
            self.visual_item(person, cat, template, k)
            for k in self.seen_variants()
            for cat in (categories or (IDENTITY, *FACT_CATEGORIES))
            for template in q.train_templates(q.VISUAL, cat)[:templates]
        ]

    def visual_item(self, person: Person, category: str, template: str, k: int) -> QAItem:
        fact = person.name if category == IDENTITY else person.facts[category]
        ref = ("portrait", person.pid, k)
        answer = answer_for(person, category)
        return QAItem(template, answer, category, "visual", person.pid, ref, fact=fact)

    def textual_item(self, person: Person, category: str, template: str) -> QAItem:
        question = template.format(name=person.name)
        answer = answer_for(person, category)
        return QAItem(
            question, answer, category, "textual", person.pid, fact=person.facts[category]
        )

    def cloze_item(self, person: Person, category: str) -> QAItem:
        question = q.CLOZE[category].format(name=person.name)
        return QAItem(question, person.facts[category], category, "cloze", person.pid)

    def items(self, kind: str, pids=None) -> list[QAItem]:
        """An evaluation set. kind: seen_qa, unseen_qa, textual_qa, paraphrase_qa, cloze,
        multiple_choice, general (`pids` ignored)."""
        if kind not in KINDS:
            raise ValueError(f"unknown question set kind {kind!r}; known: {', '.join(KINDS)}")
        out: list[QAItem] = []
        if kind == "general":
            return self.general_items(self.eval_scene_indices())
        for pid in self._pids(pids):
            if not 0 <= pid < len(self.people):
                raise ValueError(
                    f"pid {pid} is not a person of this world (0..{len(self.people) - 1})"
                )
            person = self.people[pid]
            for ci, cat in enumerate((IDENTITY, *FACT_CATEGORIES)):
                first = q.train_templates(q.VISUAL, cat)[0]
                if kind == "seen_qa":
                    k = (pid + ci) % self.spec.n_seen
                    out.append(self.visual_item(person, cat, first, k))
                elif kind == "unseen_qa":
                    k = self.spec.n_seen + (pid + ci) % self.spec.n_unseen
                    out.append(self.visual_item(person, cat, first, k))
                elif kind == "paraphrase_qa":
                    k = (pid + ci) % self.spec.n_seen
                    out.append(
                        self.visual_item(person, cat, q.paraphrase_template(q.VISUAL, cat), k)
                    )
                    if cat != IDENTITY:
                        out.append(
                            self.textual_item(person, cat, q.paraphrase_template(q.TEXTUAL, cat))
                        )
                elif cat == IDENTITY:
                    continue
                elif kind == "textual_qa":
                    out.append(self.textual_item(person, cat, q.train_templates(q.TEXTUAL, cat)[0]))
                elif kind == "cloze":
                    out.append(self.cloze_item(person, cat))
                else:
                    out.append(self.multiple_choice_item(person, cat))
        return out

    def multiple_choice_item(self, person: Person, category: str) -> QAItem:
        rng = random.Random(f"mc-{self.spec.seed}-{person.pid}-{category}")
        truth = person.facts[category]
        values = rng.sample([v for v in FACT_VALUES[category] if v != truth], 3) + [truth]
        rng.shuffle(values)
        base = q.train_templates(q.TEXTUAL, category)[0].format(name=person.name)
        question = q.MULTIPLE_CHOICE.format(question=base, options=" , ".join(values))
        options = tuple(answer_for(person, category, v) for v in values)
        answer = answer_for(person, category)
        return QAItem(
            question, answer, category, "multiple_choice", person.pid, None, options, truth
        )

    def general_items(self, indices, template: int = 0) -> list[QAItem]:
        """Scene questions: shape, colour, size, and presence asked twice, once for the shape
        that is there and once for one that is not (so "no" to everything scores 50%)."""
        out = []
        for idx in indices:
            scene = self.scene(idx)
            ref = ("scene", idx)
            for cat in ("shape", "colour", "size"):
                t = q.GENERAL[cat][template]
                out.append(QAItem(t, getattr(scene, cat), cat, "general", None, ref))
            others = [s for s in SHAPES if s != scene.shape]
            for shape, answer in ((scene.shape, "yes"), (others[idx % len(others)], "no")):
                t = q.GENERAL["presence"][template].format(shape=shape)
                out.append(QAItem(t, answer, "presence", "general", None, ref))
        return out

    def sample(self, item: QAItem) -> Sample:
        image = self.image(item.image) if item.image is not None else None
        return Sample(question=item.question, answer=item.answer, image=image)

    def samples(self, kind: str, pids=None) -> list[Sample]:
        return [self.sample(it) for it in self.items(kind, pids)]

    # --- persistence ----------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "format": "unlearnd-world/1",
            "spec": asdict(self.spec),
            "people": [p.to_json() for p in self.people],
            "splits": {"forget": self.forget_pids, "retain": self.retain_pids,
                       "general": list(self.eval_scene_indices())},
            "templates": q.metadata(),
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict) -> World:
        if data.get("format") != "unlearnd-world/1":
            raise ValueError(f"world.json: unknown format {data.get('format')!r}")
        try:
            spec = WorldSpec(**data["spec"])
            people = [Person.from_json(p) for p in data["people"]]
        except (KeyError, TypeError) as e:
            raise ValueError(f"world.json: bad or missing field: {e}") from e
        return cls(spec, people)


def vocabulary_without_names() -> set[str]:
    words = set(q.template_words())
    for values in FACT_VALUES.values():
        words.update(values)
    words.update(SHAPES)
    words.update(SHAPE_COLOURS)
    words.update(SIZES)
    words.update(("yes", "no"))
    return words


def vocabulary(world: World) -> list[str]:
    """Every word the world's questions and answers use, sorted (for the word tokenizer)."""
    words = vocabulary_without_names()
    for p in world.people:
        words.update((p.first, p.last))
    return sorted(words)
