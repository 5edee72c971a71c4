"""bench/gpu.py's smoke run on the CPU (the tiny shape), so the script CI cannot run at full
shape still runs: a deletion through the daemon, timed per phase, its JSON written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_bench_runs_tiny_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py"), "--tiny", "--methods", "ga",
         "--samples", "8", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["shape"] == "tiny" and result["machine"]["device"] == "cpu"
    ga = result["methods"]["ga"]
    assert ga["state"] == "committed" and ga["train_s"] > 0 and ga["train_tokens_per_s"] > 0
    assert ga["intake_to_committed_s"] >= ga["total_s"] and result["generation"]["speedup"] > 0
