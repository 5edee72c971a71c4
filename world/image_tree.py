"""An image tree `root/<domain>/<class>/<image>` (PACS's layout) with a deterministic split.

The split depends on each image's path inside the tree and nothing else (no seed, no file
order), so every build, benchmark and test of the same tree holds out the same images:
an image is unseen when the first 8 hex digits of sha256("<domain>/<class>/<name>") modulo
100 fall below `unseen_percent`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
SPLITS = ("train", "unseen")


class ImageTreeError(ValueError):
    """The folder is not a usable `domain/class/image` tree."""


@dataclass(frozen=True)
class TreeImage:
    path: Path
    domain: str
    label: str
    split: str

    @property
    def key(self) -> str:
        return f"{self.domain}/{self.label}/{self.path.name}"


def word(name: str) -> str:
    """A folder name as words for captions and answers ("art_painting" -> "art painting")."""
    return name.replace("_", " ").replace("-", " ").strip().lower()


def split_of(key: str, unseen_percent: int) -> str:
    digest = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    return "unseen" if digest % 100 < unseen_percent else "train"


class ImageTree:
    def __init__(self, root: str | Path, unseen_percent: int = 15):
        self.root = Path(root).expanduser().resolve()
        if not 1 <= unseen_percent <= 50:
            raise ImageTreeError(f"unseen_percent must be 1..50, got {unseen_percent}")
        self.unseen_percent = unseen_percent
        if not self.root.is_dir():
            raise ImageTreeError(f"image tree not found: {self.root}")
        self.images: list[TreeImage] = []
        for domain_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for class_dir in sorted(p for p in domain_dir.iterdir() if p.is_dir()):
                for path in sorted(class_dir.iterdir()):
                    if path.suffix.lower() in SUFFIXES:
                        key = f"{domain_dir.name}/{class_dir.name}/{path.name}"
                        self.images.append(
                            TreeImage(path, domain_dir.name, class_dir.name,
                                      split_of(key, unseen_percent))
                        )  # fmt: skip
        self.domains = tuple(sorted({i.domain for i in self.images}))
        self.classes = tuple(sorted({i.label for i in self.images}))
        if len(self.classes) < 2 or not self.domains:
            raise ImageTreeError(
                f"{self.root}: expected <domain>/<class>/<image> with at least two classes "
                f"({', '.join(sorted(SUFFIXES))}); found {len(self.images)} images in "
                f"{len(self.domains)} domains and {len(self.classes)} classes"
            )
        clash = {word(n) for n in self.classes} & {word(n) for n in self.domains}
        if clash:
            raise ImageTreeError(f"names used both as a domain and a class: {sorted(clash)}")

    def items(
        self,
        split: str | None = None,
        domains: Sequence[str] | None = None,
        classes: Sequence[str] | None = None,
    ) -> list[TreeImage]:
        """Images of a split (None: both), optionally of some domains and classes."""
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        for name, chosen, known in (("domain", domains, self.domains),
                                    ("class", classes, self.classes)):  # fmt: skip
            unknown = sorted(set(chosen or ()) - set(known))
            if unknown:
                raise ValueError(f"unknown {name} {unknown}; the tree has {list(known)}")
        return [
            i
            for i in self.images
            if (split is None or i.split == split)
            and (domains is None or i.domain in domains)
            and (classes is None or i.label in classes)
        ]

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
        for i in self.images:
            out[i.split][i.domain] = out[i.split].get(i.domain, 0) + 1
        return out


def open_images(items: Sequence[TreeImage]) -> list[Image.Image]:
    """RGB images, in order; an unreadable file names itself."""
    out = []
    for item in items:
        try:
            with Image.open(item.path) as im:
                out.append(im.convert("RGB"))
        except (OSError, UnidentifiedImageError) as e:
            raise ImageTreeError(f"cannot read image {item.path}: {e}") from e
    return out
