"""`unlearnd demo` as a newcomer runs it: the installed command, the committed world model."""

from __future__ import annotations

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
    env["COLUMNS"] = "200"  # rich tables unwrapped, so the lines below can be matched
    done = subprocess.run(
        [str(exe), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "version 2: committed" in out
    assert "what the model says about" in out
    assert "demo: undo the deletion" in out  # the rollback is in the alias history
    assert (tmp_path / "unlearnd-data" / "registry.db").is_file()
