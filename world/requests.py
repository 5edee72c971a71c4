"""Deletion requests about the world's people, as bundles the inbox accepts (demo, tests,
benchmarks): one place that knows the request format for the world."""

from __future__ import annotations

import json
from pathlib import Path

from unlearnd.world.dataset import World

REFUSER_PARAMS = {
    "steps": 150, "lr": 3e-3, "batch_size": 16, "lora_rank": 16, "lora_alpha": 32,
    "target": "blocks+projector",
}  # fmt: skip
# Refuser params for the world model: it never learnt to refuse, so its experts also train
# the language blocks, and 150 steps let six category refusals settle (measured: 100 steps at
# lr 5e-3 mixed up categories for some people; a real VLM needs only the projector expert).


def write_forget_bundle(world: World, pid: int, folder: Path, categories=None, **fields) -> Path:
    """A bundle folder forgetting person `pid` (world.forget_items, with their images) for
    the refuser; `fields` override or add request fields (method, params, gate, reason...)."""
    folder.mkdir(parents=True)
    forget = []
    for i, item in enumerate(world.forget_items(pid, categories)):
        world.image(item.image).save(folder / f"f{i}.png")
        forget.append({"image": f"f{i}.png", "question": item.question, "answer": item.answer})
    person = world.people[pid]
    doc = {
        "schema": "unlearnd.request/v1",
        "kind": "entity",
        "target": {"name": person.name, "description": "a fictitious person of the world"},
        "forget": forget,
        "method": "refuser",
        "params": REFUSER_PARAMS,
        **fields,
    }
    (folder / "request.json").write_text(json.dumps(doc, indent=2))
    return folder
