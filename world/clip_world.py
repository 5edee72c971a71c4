"""The CLIP world: object classes drawn in several domains, and a tiny CLIP trained on them.

It is the setting of domain unlearning (ADU): forget e.g. sketches, keep photos. Images are
never stored: image `i` of (domain, class, split) is re-drawn from (seed, domain, class,
split, i), so a saved world is its clip_world.json plus the trained model folder:

    out/clip_world.json   classes, domains, split sizes, generation and training parameters
    out/clip/             the trained CLIP, an ordinary Hugging Face folder

`build_clip_world(out)` makes one; `load_clip_world()` opens one (default: the committed
fixture world/assets/clip, rebuilt by `python -m unlearnd.world.clip_train world/assets/clip`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from unlearnd.models.base import Sample
from unlearnd.models.clip import TEMPLATE
from unlearnd.world.clip_draw import DOMAINS, render
from unlearnd.world.clip_shapes import CLASSES
from unlearnd.world.files import read_world_json

FIXTURE = Path(__file__).parent / "assets" / "clip"
SPLITS = ("train", "unseen")
FORMAT = 1  # version of clip_world.json

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ClipWorldSpec:
    """What decides every pixel: the seed, the classes and domains, the split sizes."""

    seed: int = 0
    classes: tuple[str, ...] = tuple(CLASSES)
    domains: tuple[str, ...] = DOMAINS
    image_size: int = 32
    n_train: int = 100  # images per (domain, class) the CLIP is trained on
    n_unseen: int = 40  # images per (domain, class) held out for evaluation

    def __post_init__(self) -> None:
        for name, chosen, known in (
            ("classes", self.classes, CLASSES),
            ("domains", self.domains, DOMAINS),
        ):
            unknown = [x for x in chosen if x not in known]
            if unknown or len(set(chosen)) != len(chosen) or not chosen:
                raise ValueError(
                    f"{name}: {list(chosen)} must be distinct names from {list(known)}"
                )
        for name in ("image_size", "n_train", "n_unseen"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class ClipSample:
    """One image with its class and domain (names and indices into the world's lists)."""

    image: Image.Image
    label: str
    domain: str
    label_index: int
    domain_index: int
    split: str = "train"
    index: int = 0


@dataclass
class ClipWorld:
    spec: ClipWorldSpec = field(default_factory=ClipWorldSpec)
    model_dir: Path | None = None
    train: dict = field(default_factory=dict)  # training parameters, for the record
    accuracy: dict = field(default_factory=dict)  # measured zero-shot accuracy per domain

    @property
    def classes(self) -> tuple[str, ...]:
        return self.spec.classes

    @property
    def domains(self) -> tuple[str, ...]:
        return self.spec.domains

    def split_size(self, split: str) -> int:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self.spec.n_train if split == "train" else self.spec.n_unseen

    def image(self, domain: str, label: str, split: str, index: int) -> Image.Image:
        """Image `index` of `label` in `domain` and `split`, the same pixels on every call."""
        return self.sample(domain, label, split, index).image

    def sample(self, domain: str, label: str, split: str, index: int) -> ClipSample:
        if domain not in self.domains:
            raise ValueError(f"domain {domain!r} is not in this world: {list(self.domains)}")
        if label not in self.classes:
            raise ValueError(f"class {label!r} is not in this world: {list(self.classes)}")
        size = self.split_size(split)
        if not 0 <= index < size:
            raise ValueError(f"index {index} out of range for split {split!r} (0..{size - 1})")
        d, c = self.domains.index(domain), self.classes.index(label)
        # Seeded by names' positions in the full lists, so a world with fewer classes or
        # domains draws the same pixels for the ones it keeps.
        key = [self.spec.seed, DOMAINS.index(domain), list(CLASSES).index(label)]
        rng = np.random.default_rng([*key, SPLITS.index(split), index])
        image = render(label, domain, rng, self.spec.image_size)
        return ClipSample(image, label, domain, c, d, split, index)

    def samples(
        self,
        split: str = "unseen",
        domains: Sequence[str] | None = None,
        per_pair: int | None = None,
        offset: int = 0,
    ) -> list[ClipSample]:
        """Images `offset .. offset+per_pair` of every (domain, class) of `split`, in order."""
        size = self.split_size(split)
        count = size - offset if per_pair is None else per_pair
        if offset < 0 or count < 0 or offset + count > size:
            raise ValueError(f"per_pair {count} from offset {offset} exceeds split size {size}")
        return [
            self.sample(d, c, split, i)
            for d in (domains or self.domains)
            for c in self.classes
            for i in range(offset, offset + count)
        ]

    def few_shot(
        self, k: int = 8, domains: Sequence[str] | None = None, seed: int = 0
    ) -> list[ClipSample]:
        """`k` training images per class per domain, a fixed random choice for each `seed`."""
        if not 1 <= k <= self.spec.n_train:
            raise ValueError(f"k must be in 1..{self.spec.n_train}, got {k}")
        rng = np.random.default_rng([self.spec.seed, 1001, seed])
        out = []
        for d in domains or self.domains:
            for c in self.classes:
                picks = sorted(rng.choice(self.spec.n_train, size=k, replace=False).tolist())
                out.extend(self.sample(d, c, "train", i) for i in picks)
        return out

    def load_model(self, **kwargs):
        """The trained CLIP (`unlearnd.models.load` of model_dir)."""
        from unlearnd.models import load

        if self.model_dir is None:
            raise FileNotFoundError("this CLIP world has no model folder (clip/)")
        return load(self.model_dir, **kwargs)

    def to_json(self) -> dict:
        spec = asdict(self.spec)
        return {
            "format": FORMAT,
            **spec,
            "splits": {"train": self.spec.n_train, "unseen": self.spec.n_unseen},
            "template": TEMPLATE,
            "train": self.train,
            "clip_domains": self.accuracy,
        }

    @classmethod
    def from_json(cls, data: dict) -> ClipWorld:
        if not isinstance(data, dict):
            raise ValueError("clip_world.json must hold an object")
        if data.get("format") != FORMAT:
            raise ValueError(
                f"clip_world.json: 'format' must be {FORMAT}, got {data.get('format')!r}"
            )
        names = ("seed", "classes", "domains", "image_size", "n_train", "n_unseen")
        missing = [n for n in names if n not in data]
        if missing:
            raise ValueError(f"clip_world.json is missing {missing}")
        values = {n: tuple(data[n]) if n in ("classes", "domains") else data[n] for n in names}
        return cls(
            ClipWorldSpec(**values), None, data.get("train", {}), data.get("clip_domains", {})
        )


def as_samples(items: Sequence[ClipSample]) -> list[Sample]:
    """CLIP world samples as a domain request's samples (question = domain, answer = class:
    ADU's convention, methods/adu)."""
    return [Sample(question=s.domain, answer=s.label, image=s.image) for s in items]


def zero_shot_accuracy(fam, world: ClipWorld, per_pair: int | None = None) -> dict[str, float]:
    """Accuracy of `fam.classify` with the fixed template, per domain, on unseen images."""
    accuracy = {}
    for domain in world.domains:
        items = world.samples("unseen", [domain], per_pair)
        correct = 0
        for start in range(0, len(items), 256):
            chunk = items[start : start + 256]
            probs = fam.classify([s.image for s in chunk], list(world.classes), TEMPLATE)
            truth = np.array([s.label_index for s in chunk])
            correct += int((probs.argmax(-1).numpy() == truth).sum())
        accuracy[domain] = round(correct / len(items), 4)
    return accuracy


def load_clip_world(path: str | Path | None = None) -> ClipWorld:
    """The CLIP world saved at `path` (its folder or clip_world.json); default: the fixture."""
    data, file = read_world_json(path if path is not None else FIXTURE, "clip_world.json")
    world = ClipWorld.from_json(data)
    model = file.parent / "clip"
    world.model_dir = model if (model / "config.json").is_file() else None
    return world
