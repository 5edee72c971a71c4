"""The world as a deployment: its model folder, pools and probe sets as files, like any user's.

The product knows a deployment only by `[model]` keys naming a model folder and JSONL files
(serving/deployment.py). This module writes the world's: the retain pool (the retain
people's seen-portrait questions), the general pool (held-out scenes) and per-person probe
sets (the facts asked by name without an image, in a cloze, in held-out wordings, and on
portraits never trained on), with
their images as PNG. `provide` is the embedded default's provider: a deployment with no
`[model] path` serves the committed world through the files it writes once per world.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from unlearnd.config import Settings
from unlearnd.serving.deployment import DESCRIPTION, describe, described
from unlearnd.world.dataset import QAItem, World
from unlearnd.world.probes import KINDS, SERVED
from unlearnd.world.requests import METHOD_DEFAULTS, WORLD_REFUSALS

# Its word-level model refuses in the words it was trained on and no others: a job question in
# a new wording got another category's refusal from its expert (CRR 0.40 / 0.35 on the text door,
# 1.0 answered from the refusal set; docs/benchmarks.md, Sequential). Routed queries get the
# refusal set.
ROUTING = {"routed_answer": "refusal"}


class _Writer:
    """Rows of one folder's JSONL files; each image saved once, named by its reference."""

    def __init__(self, world: World, folder: Path):
        self.world, self.folder = world, folder
        (folder / "images").mkdir(parents=True, exist_ok=True)
        self.saved: set[tuple] = set()

    def image(self, ref: tuple | None) -> str | None:
        if ref is None:
            return None
        name = "images/" + "_".join(str(x) for x in ref) + ".png"
        if ref not in self.saved:
            self.world.image(ref).save(self.folder / name)
            self.saved.add(ref)
        return name

    def write(self, name: str, rows: list[dict]) -> str:
        lines = [json.dumps({k: v for k, v in r.items() if v is not None}) for r in rows]
        (self.folder / name).write_text("\n".join(lines) + "\n")
        return name

    def sample_row(self, item: QAItem) -> dict:
        return {"image": self.image(item.image), "question": item.question, "answer": item.answer}


def write_deployment(world: World, folder: Path) -> Path:
    """Write the world's pools and probe sets into `folder` and their description
    (`deployment.json`, serving/deployment.py) for the world's model folder."""
    if world.model_dir is None:
        raise ValueError("this world has no model folder (vlm/) to serve")
    folder.mkdir(parents=True, exist_ok=True)
    w = _Writer(world, folder)
    # The retain people's picture questions and their questions by name: a deletion must
    # leave both answered.
    kept = [
        *world.items("seen_qa", world.retain_pids),
        *world.items("textual_qa", world.retain_pids),
    ]
    retain = [w.sample_row(it) for it in kept]
    general = [w.sample_row(it) for it in world.items("general")]
    probes = [
        {"target": world.people[it.pid].name, "probe": probe, "question": it.question,
         "answer": it.fact, "image": w.image(it.image)}
        for probe in SERVED
        for it in world.items(KINDS[probe])
    ]  # fmt: skip
    model = Path(world.model_dir).resolve()
    keys: dict = {
        "methods": METHOD_DEFAULTS,
        "refusals": WORLD_REFUSALS,
        "routing": ROUTING,
        "path": str(model),
        "retain_pool": w.write("retain.jsonl", retain),
        "general_pool": w.write("general.jsonl", general),
        "probe_sets": w.write("probes.jsonl", probes),
    }
    return describe(folder, {model.name: keys})


def world_key(world: World) -> str:
    """What the files depend on: the world's document (people, splits, templates)."""
    doc = json.dumps(world.to_json(), sort_keys=True).encode()
    return hashlib.sha256(doc).hexdigest()[:12]


def materialise(world: World, root: Path) -> dict[str, str]:
    """The `[model]` keys of the world's deployment files under `root/world-<key>`, written
    once (to a temporary folder, then renamed: two processes starting together both end with
    complete files)."""
    final = root / f"world-{world_key(world)}"
    if not (final / DESCRIPTION).is_file():
        tmp = root / f".{final.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        write_deployment(world, tmp)
        try:
            os.rename(tmp, final)
        except OSError:  # another process renamed its complete copy first
            shutil.rmtree(tmp, ignore_errors=True)
    return described(final / Path(world.model_dir).resolve().name)


def provide(settings: Settings, root: Path | None = None) -> None:
    """Serve the committed world: fill `settings.model` with its files (under `root`,
    default the work dir) when no `[model] path` is set."""
    from unlearnd.world import load_world

    if settings.model.path:
        return
    keys = materialise(load_world(), root if root is not None else settings.workdir)
    for key in ("path", "retain_pool", "general_pool", "probe_sets"):
        if keys.get(key) and not getattr(settings.model, key):  # a configured pool wins
            setattr(settings.model, key, keys[key])
    settings.methods = {**METHOD_DEFAULTS, **settings.methods}  # a configured method wins
    settings.refusals = {**WORLD_REFUSALS, **settings.refusals}
    for key, value in ROUTING.items():
        if key not in settings.routing.model_fields_set:
            setattr(settings.routing, key, value)
