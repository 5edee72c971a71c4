"""`unlearnd demo` as a newcomer runs it: the installed command, the committed world model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    forgotten = [r for r in rows if r[0] == "seen portrait"]
    assert forgotten and all(r[3] != r[4] for r in forgotten)  # the deletion changed them
    kept = [r for r in rows if r[0] in ("retained person", "scene")]
    assert kept and all(r[3] == r[4] for r in kept)  # the gate left the rest alone
    assert all(r[5] == r[3] for r in rows)  # and the rollback brought every answer back
    assert shown["history"][-1]["why"] == "demo: undo the deletion"
    assert [(e["from"], e["to"]) for e in shown["history"]][-2:] == [(1, 2), (2, 1)]
