"""Batched greedy generation against one-by-one `generate` on the same 200 world prompts.

The families' `generate` (models/generative.py) decodes a left-padded batch greedily with
the KV cache and stops once every row has produced EOS; evaluation calls it through
`evaluation.candidate.answers`, which batches image and text-only questions apart. Prompts:
100 seen-portrait questions and 100 text-only questions about world people.

    .venv/bin/python bench/generation_bench.py [--out bench/results/generation.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from unlearnd.evaluation.candidate import MAX_NEW_TOKENS, answers
from unlearnd.models import load
from unlearnd.world import load_world


def timed(fn):
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/generation.json")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    world = load_world()
    fam = load(world.model_dir)
    samples = world.samples("seen_qa")[:100] + world.samples("textual_qa")[:100]
    fam.generate(samples[:2], max_new_tokens=MAX_NEW_TOKENS)  # warm-up: first-call costs

    single, single_s = timed(
        lambda: [fam.generate([s], max_new_tokens=MAX_NEW_TOKENS)[0] for s in samples]
    )
    rows = {"one_by_one": {"seconds": round(single_s, 3), "batch_size": 1}}
    for batch_size in (16, 32, 64):
        batched, seconds = timed(lambda b=batch_size: answers(fam, samples, batch_size=b))
        rows[f"batched_{batch_size}"] = {
            "seconds": round(seconds, 3),
            "batch_size": batch_size,
            "speedup": round(single_s / seconds, 2),
            "same_answers": sum(a == b for a, b in zip(batched, single, strict=True)),
        }
        print(f"batch {batch_size:3d}: {seconds:.2f} s, x{single_s / seconds:.1f}", flush=True)
    print(f"one by one: {single_s:.2f} s")
    out = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "threads": args.threads,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": fam.info()["family"],
        "prompts": {"total": len(samples), "with_image": 100, "text_only": 100},
        "max_new_tokens": MAX_NEW_TOKENS,
        "decoding": "greedy, left-padded batch, KV cache, stop when every row reached EOS",
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
