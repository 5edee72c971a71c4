"""An image world as built by `unlearnd world build --images`, and deletion requests about it.

`load_image_world(OUT)` reopens the tree (from the recorded path, or `images=` when it has
moved) and names the model folders; `write_concept_bundle` writes a request bundle that
forgets a class from some of its images (with copies of those images: a bundle is
self-contained); `write_domain_bundle` one that forgets a domain of the CLIP (ADU).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from unlearnd.models import Sample
from unlearnd.world.image_tree import ImageTree, TreeImage, open_images, word
from unlearnd.world.requests import REFUSER_PARAMS, WORLD_REFUSALS

SCHEMA = "unlearnd.request/v1"


@dataclass
class ImageWorld:
    folder: Path
    tree: ImageTree
    record: dict

    @property
    def vlm_dir(self) -> Path:
        return self.folder / "vlm"

    @property
    def clip_dir(self) -> Path:
        return self.folder / "clip"

    @property
    def class_question(self) -> str:
        return self.record["class_questions"][0]

    @property
    def class_words(self) -> list[str]:
        return [word(c) for c in self.tree.classes]

    def class_samples(self, items: Sequence[TreeImage], question: str | None = None) -> list:
        """Class questions about `items` (answer: the class word)."""
        q = question or self.class_question
        images = open_images(items)
        return [Sample(q, word(i.label), im) for i, im in zip(items, images, strict=True)]


def load_image_world(folder: str | Path, images: str | Path | None = None) -> ImageWorld:
    folder = Path(folder)
    file = folder / "image_world.json"
    if not file.is_file():
        raise FileNotFoundError(f"{file} not found: build one with `unlearnd world build --images`")
    record = json.loads(file.read_text())
    tree = ImageTree(images or record["root"], record["unseen_percent"])
    if list(tree.classes) != record["classes"] or list(tree.domains) != record["domains"]:
        raise ValueError(f"the image tree at {tree.root} is not the one {folder} was built from")
    return ImageWorld(folder, tree, record)


def names_a_class(answer: str, class_words: Sequence[str]) -> bool:
    """Does the answer name any class? (PACS: "a refusal neither names the class nor
    another class".)"""
    text = f" {answer.lower()} "
    return any(f" {w} " in text for w in class_words)


def _copy(items: Sequence[TreeImage], folder: Path, prefix: str) -> list[str]:
    names = []
    for n, item in enumerate(items):
        name = f"{prefix}{n}{item.path.suffix.lower()}"
        shutil.copyfile(item.path, folder / name)
        names.append(name)
    return names


# The refuser on an image world's VLM: the world's params (it never learnt to refuse) without
# the retain term. The gate (ROUTING) already decides which pictures reach the expert; a
# retain term taught it to second-guess the gate from the look of the picture, and giraffes
# in styles the request did not show got another class's name (PACS, giraffe from photo and
# cartoon pictures: art painting 12% refused with alpha 1, 100% with alpha 0; bench/pacs.py).
# 150 steps: what the PACS figures were measured with (one class, one refusal to settle).
REFUSER_IMAGE_PARAMS = {**REFUSER_PARAMS, "steps": 150, "refusals": WORLD_REFUSALS}
# What an image world's VLM is served with (its deployment.json `methods`).
IMAGE_METHOD_DEFAULTS = {
    "refuser": REFUSER_IMAGE_PARAMS,
    "reject": {"refusal": "i cannot share that ."},
}


def write_concept_bundle(
    world: ImageWorld,
    label: str,
    domains: Sequence[str],
    folder: Path,
    n: int = 40,
    **fields,
) -> Path:
    """A bundle forgetting class `label` from `n` of its training images in `domains` (spread
    evenly over them), as a user would send it: no method, no params (the deployment's
    `[methods.refuser]`, from deployment.json, applies); `fields` add request fields."""
    folder.mkdir(parents=True)
    per = max(1, n // len(domains))
    items = [i for d in domains for i in world.tree.items("train", [d], [label])[:per]]
    names = _copy(items, folder, "f")
    doc = {
        "schema": SCHEMA,
        "kind": "concept",
        "target": {"name": word(label), "description": f"every picture of a {word(label)}"},
        "forget": [
            {"image": nm, "question": world.class_question, "answer": word(label)} for nm in names
        ],  # fmt: skip
        **fields,
    }
    (folder / "request.json").write_text(json.dumps(doc, indent=2))
    return folder


def write_domain_bundle(
    world: ImageWorld, domain: str, folder: Path, per_class: int = 8, **fields
) -> Path:
    """A bundle forgetting `domain` on the CLIP: `per_class` training images of each class of
    it, in ADU's sample convention (question = domain, answer = class)."""
    folder.mkdir(parents=True)
    forget = []
    for label in world.tree.classes:
        items = world.tree.items("train", [domain], [label])[:per_class]
        for nm in _copy(items, folder, f"{label}-"):
            forget.append({"image": nm, "question": domain, "answer": word(label)})
    doc = {
        "schema": SCHEMA,
        "kind": "domain",
        "target": {"name": domain, "description": f"every {word(domain)} picture"},
        "forget": forget,
        **fields,
    }
    (folder / "request.json").write_text(json.dumps(doc, indent=2))
    return folder
