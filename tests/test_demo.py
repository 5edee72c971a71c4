"""`unlearnd demo` as a newcomer runs it: the installed command, the committed world model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unlearnd.text import normalise
from unlearnd.world import fixture_dir


@pytest.mark.slow
@pytest.mark.skipif(not (fixture_dir() / "vlm").is_dir(), reason="world fixture not built")
def test_demo_deletes_shows_and_rolls_back(tmp_path):
    exe = Path(sys.executable).parent / "unlearnd"
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNLEARND_")}
    done = subprocess.run(
        [str(exe), "demo", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    shown = json.loads(done.stdout)
    assert shown["state"] == "committed" and shown["version"] == 2 and shown["parent"] == 1
    rows = [list(r.values()) for r in shown["answers"]]  # probe, question, truth, before, ...
    assert {r[0] for r in rows} == {"seen portrait", "unseen portrait", "text only",
                                    "retained person", "scene"}  # fmt: skip
    person = set(normalise(shown["person"]).split())
    for probe, _, truth, before, after, rolled in rows:
        # The model knew every answer, and says it again after the rollback.
        assert normalise(before) == normalise(truth) == normalise(rolled), (probe, before, rolled)
        if probe in ("retained person", "scene"):
            assert after == before, probe  # the gate left the rest alone
        else:  # about the person, on any picture or by name: neither name nor fact said
            fact = normalise(truth).split()[-1]
            assert not (person | {fact}) & set(normalise(after).split()), (probe, after)
    assert shown["history"][-1]["why"] == "demo: undo the deletion"
    assert [(e["from"], e["to"]) for e in shown["history"]][-2:] == [(1, 2), (2, 1)]
