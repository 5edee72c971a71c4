"""Torch threads against wall time of one answer, on a machine shared with other work.

SmolLM2-135M (a causal_lm folder, e.g. `unlearnd model from-gguf /work/smol/causal_lm`)
generates 32 tokens for one question, greedy, on the CPU; each thread setting runs in a
fresh process (torch fixes its pool at first use), after one warm-up answer, `--runs` times.
"default" is torch's own choice (one thread per core), what the service used before
`threads` existed. Also records the load average, as the cores are shared.

    .venv/bin/python bench/threads.py [--model DIR] [--out bench/results/threads.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

SETTINGS = ("1", "2", "default")


def one(model: str, threads: str, runs: int) -> list[float]:
    import torch

    from unlearnd.models import Sample, load

    if threads != "default":
        torch.set_num_threads(int(threads))
    fam = load(model, device="cpu")
    question = [Sample("What is the capital of France? Answer in one sentence.", "", None)]
    fam.generate(question, max_new_tokens=32)  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fam.generate(question, max_new_tokens=32)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="/work/smol/causal_lm")
    parser.add_argument("--out", default="bench/results/threads.json")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", default="")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(args.model, args.child, args.runs)))
        return
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    rows = {}
    for threads in SETTINGS:
        load_before = os.getloadavg()[0]
        done = subprocess.run(
            [sys.executable, __file__, "--model", args.model, "--runs", str(args.runs),
             "--child", threads], capture_output=True, text=True, check=True, env=env,
        )  # fmt: skip
        times = json.loads(done.stdout.splitlines()[-1])
        rows[threads] = {"median_s": round(statistics.median(times), 3),
                         "runs_s": [round(t, 3) for t in times],
                         "load_average_before": round(load_before, 2)}  # fmt: skip
        print(threads, rows[threads], flush=True)
    result = {
        "what": "one answer, 32 new tokens, SmolLM2-135M causal_lm on CPU, per torch threads",
        "model": args.model,
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "threads": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
