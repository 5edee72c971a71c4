"""Deletion requests about the world's people, as bundles the inbox accepts (demo, tests,
benchmarks): one place that knows the request format for the world; and the defaults the
world's deployment serves its methods with (its model knows only its own words)."""

from __future__ import annotations

import json
from pathlib import Path

from unlearnd.world.dataset import World

REFUSER_PARAMS = {
    "steps": 250, "lr": 3e-3, "batch_size": 16, "lora_rank": 16, "lora_alpha": 32,
    "target": "blocks+projector", "alpha": 0.0,
}  # fmt: skip
# Refuser params for the world model: it never learnt to refuse, so its experts train the
# language blocks. No retain term: the switch already decides which queries reach the
# expert, and with the term the expert learnt to tell its person from others by itself and
# answered the cloze door it was never trained on (1 of 5 facts stated with alpha 1 or 0.3,
# none with alpha 0; retain and scenes kept in full either way). Without it six category
# refusals need longer to settle: at 150 or 200 steps a job or hobby question got another
# category's refusal (CRR 0.67-0.83 on the text, unseen and seen doors), at 250 none did
# (CRR 1.0 on all three, two people).

# Refusals in the worlds' own words (the first refusal template of each category): the
# product's plain-English ones are words their word-level models have never seen.
WORLD_REFUSALS = {
    "identity": "I cannot identify this person .",
    "location": "I cannot share where this person lives .",
    "occupation": "I cannot share the job of this person .",
    "hobby": "I cannot share the hobby of this person .",
    "pet": "I cannot share the pet of this person .",
    "food": "I cannot share the favourite food of this person .",
    "fallback": "I cannot help with that .",
}
# What the world's deployment sets in `[methods.*]`: a request names no params.
METHOD_DEFAULTS = {
    "refuser": REFUSER_PARAMS,
    "reject": {"refusal": WORLD_REFUSALS["identity"]},
    "cagul": {"reference_answer": WORLD_REFUSALS["identity"]},
}


def write_forget_bundle(world: World, pid: int, folder: Path, categories=None, **fields) -> Path:
    """A bundle folder forgetting person `pid` (world.forget_items, with their images), as a
    user would send it: no method, no params (the deployment's defaults apply); `fields` add
    request fields (method, params, gate, reason...)."""
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
        **fields,
    }
    (folder / "request.json").write_text(json.dumps(doc, indent=2))
    return folder
