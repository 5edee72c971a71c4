"""Scoring a model on sample sets: the numbers the gate compares, candidate against parent.

A sample counts as answered (for a leak probe: the fact as stated) when the model's full
greedy answer, within MAX_NEW_TOKENS, states it by `metrics.stated`: a given fact or a short
answer appears, or a sentence answer's fact is mostly there. The parent is measured first;
its answers are kept (`Measured.said`) and the candidate is also scored against them, so a
candidate repeating what its parent stated counts, whatever the request's wording.
Candidate and parent answer the same samples; a candidate's figure on a set is also given
relative to what the parent got right (`{set}_kept`): the share of the samples the parent
answered that the candidate still answers, None ("not measurable") when the parent answered
none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from unlearnd.evaluation import behaviour, metrics
from unlearnd.models.base import ModelFamily, Sample

MAX_NEW_TOKENS = 32  # the answer budget: a fact stated in the first 32 tokens counts


def answers(
    fam: ModelFamily,
    samples: Sequence[Sample],
    batch_size: int = 32,
    max_new_tokens: int = MAX_NEW_TOKENS,
) -> list[str]:
    """Greedy answers, batched; image and text-only questions go in separate batches (a text
    question padded to an image prompt's length would only cost time)."""
    out: list[str] = [""] * len(samples)
    for with_image in (True, False):
        idx = [i for i, s in enumerate(samples) if (s.image is not None) == with_image]
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            texts = fam.generate([samples[i] for i in chunk], max_new_tokens=max_new_tokens)
            for i, text in zip(chunk, texts, strict=True):
                out[i] = text
    return out


def stated(
    said: str, sample: Sample, parent_said: str | None = None, names: Sequence[str] = ()
) -> bool:
    """`metrics.stated` of one sample's answer."""
    return metrics.stated(said, sample.question, sample.answer, sample.facts, parent_said, names)


def hits(fam: ModelFamily, samples: Sequence[Sample], names: Sequence[str] = ()) -> list[bool]:
    """Per sample: does the answer state it (`stated`, with no parent's answers)?"""
    said = answers(fam, samples) if samples else []
    return [stated(a, s, None, names) for a, s in zip(said, samples, strict=True)]


def accuracy(fam: ModelFamily, samples: Sequence[Sample]) -> float:
    """Share of samples whose answer matches the reference (normalised); 0 for no samples."""
    if not samples:
        return 0.0
    return sum(hits(fam, samples)) / len(samples)


def score(fam: ModelFamily, sets: dict[str, Sequence[Sample]]) -> dict[str, float]:
    """`{name}_acc` for every non-empty set, e.g. forget / retain / general."""
    return {f"{name}_acc": accuracy(fam, samples) for name, samples in sets.items() if samples}


def kept(parent: Sequence[bool], candidate: Sequence[bool]) -> float | None:
    """The share of the samples the parent answered that the candidate still answers; None
    when the parent answered none (not measurable)."""
    right = [c for p, c in zip(parent, candidate, strict=True) if p]
    return sum(right) / len(right) if right else None


def _prompt(s: Sample) -> tuple[str, int]:
    return s.question, id(s.image)


class Measured(dict[str, list[bool]]):
    """Per set, per sample: stated or not; `said`: the answer to each distinct prompt."""

    def __init__(self, hits: dict[str, list[bool]], said: dict[tuple[str, int], str]):
        super().__init__(hits)
        self.said = said


DOORS = ("forget", "leak_")  # the sets that are doors of the deletion (their name starts so)


@dataclass(frozen=True)
class AnswerSets:
    """What a vision-language job is scored on: named sets of samples, scored by answer.
    `names`: the target's names, no content word of a sentence's fact (metrics.content_words).
    `refusals` (category -> texts), `own` (the target's forget samples) and `others` (what
    is known of other targets: the retain pool's rows; the `retain` set, with what the
    parent said to it, is too): what the doors' answers are told apart by
    (evaluation/behaviour.py)."""

    sets: dict[str, Sequence[Sample]]
    names: Sequence[str] = ()
    refusals: Mapping[str, Sequence[str]] = field(default_factory=dict)
    own: Sequence[Sample] = ()
    others: Sequence[Sample] = ()

    def score(self, model) -> dict[str, float]:
        return score(model, self.sets)

    def measure(self, model, parent: Measured | None = None) -> Measured:
        """Per set, per sample: stated or not. Each distinct prompt (question and image) is
        generated once, however many sets and references ask it. With `parent` (the parent's
        own measurement), a sample the parent stated is also scored against its answer."""
        unique: dict[tuple, Sample] = {}
        for samples in self.sets.values():
            for s in samples:
                unique.setdefault(_prompt(s), s)
        keys = list(unique)
        said = dict(zip(keys, answers(model, [unique[k] for k in keys]), strict=True))
        out = {}
        for name, samples in self.sets.items():
            if not samples:
                continue
            was = parent[name] if parent is not None else [False] * len(samples)
            out[name] = [
                stated(said[_prompt(s)], s, parent.said[_prompt(s)] if p else None, self.names)
                for s, p in zip(samples, was, strict=True)
            ]
        return Measured(out, said)

    def compare(
        self, parent: dict[str, list[bool]], candidate: dict[str, list[bool]]
    ) -> dict[str, float | None]:
        """`{set}_acc`, `parent_{set}_acc` and `{set}_kept` for every set."""
        out: dict[str, float | None] = {}
        for name, got in candidate.items():
            out[f"{name}_acc"] = sum(got) / len(got)
            out[f"parent_{name}_acc"] = sum(parent[name]) / len(got)
            out[f"{name}_kept"] = kept(parent[name], got)
            out[f"{name}_n"] = len(got)
        if isinstance(parent, Measured) and isinstance(candidate, Measured):
            others = self.others_known(parent)
            out.update(self.behaviour(candidate, others))
            out.update({f"parent_{k}": v for k, v in self.behaviour(parent, others).items()})
        return out

    def others_known(self, parent: Measured) -> behaviour.Others:
        """Other targets' facts: the retain set's, with what the parent said to those it
        stated, and the retain pool's rows."""
        retain = self.sets.get("retain") or []
        hits = parent.get("retain", [False] * len(retain))
        said = [
            parent.said[_prompt(s)] if hit else None for s, hit in zip(retain, hits, strict=True)
        ]
        said += [None] * len(self.others)
        return behaviour.Others.of([*retain, *self.others], said, self.own, self.names)

    def behaviour(self, model: Measured, others: behaviour.Others) -> dict[str, float]:
        """`{door}_{behaviour}` for every door and `answers_{behaviour}` over them all: the
        share of the door's distinct prompts whose answer is refused, degenerate,
        hallucinated or informative (the rest state the fact)."""
        classify = behaviour.Classifier(self.refusals, others)
        out: dict[str, float] = {}
        every: list[str] = []
        for name, samples in self.sets.items():
            if not name.startswith(DOORS) or name not in model:
                continue
            stated: dict[tuple, bool] = {}
            for s, hit in zip(samples, model[name], strict=True):
                stated[_prompt(s)] = stated.get(_prompt(s), False) or hit
            kinds = [classify(model.said[p], hit) for p, hit in stated.items()]
            every += kinds
            out.update({f"{name}_{k}": v for k, v in behaviour.shares(kinds).items()})
        if every:
            out.update({f"{behaviour.ANSWERS}_{k}": v for k, v in behaviour.shares(every).items()})
        return out
