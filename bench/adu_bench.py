"""ADU on the CLIP world: Mem, For, H averaged over every choice of one forgotten domain.

Per forgotten domain: 8 training images per class per domain (few-shot), the forgotten
domain's as D_f, the other three's as D_r; scored on every unseen image (40 per domain and
class). Rows: the frozen base, full ADU, the paper's baseline (deep prompts with memorise +
forget losses only), the two ablations (no InstaPG, no DDL), and full ADU at the paper's DDL
weights (gamma 30, lambda 10) instead of the tiny model's defaults.

    .venv/bin/python bench/adu_bench.py [--out bench/results/adu.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from unlearnd.evaluation.domains import mem_for_h
from unlearnd.methods import get_method
from unlearnd.world.clip_world import as_samples, load_clip_world, zero_shot_accuracy

VARIANTS = {
    "adu": {},
    "baseline (prompts, memorise + forget)": {"use_instapg": False, "use_ddl": False},
    "adu without InstaPG": {"use_instapg": False},
    "adu without DDL": {"use_ddl": False},
    "adu, paper DDL weights (gamma 30, lambda 10)": {"gamma": 30.0, "lambda_mmd": 10.0},
}


def mean_scores(per_domain: dict[str, dict]) -> dict[str, float]:
    keys = ("mem", "for", "h")
    return {k: round(sum(r[k] for r in per_domain.values()) / len(per_domain), 4) for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/adu.json")
    args = parser.parse_args()
    torch.set_num_threads(1)  # 2 shared cores: one thread is faster than two contending
    world = load_clip_world()
    base = world.load_model()
    base_acc = zero_shot_accuracy(base, world)
    rows: dict[str, dict] = {
        "base": {"mean": mean_scores({d: mem_for_h(base_acc, [d]) for d in world.domains})}
    }
    for label, params in VARIANTS.items():
        method = get_method("adu")
        per_domain, seconds = {}, 0.0
        for gone in world.domains:
            kept = [d for d in world.domains if d != gone]
            fam = copy.deepcopy(base)
            started = time.monotonic()
            method.fit(
                fam,
                as_samples(world.few_shot(8, [gone])),
                as_samples(world.few_shot(8, kept)),
                method.validate_params(params),
            )
            seconds += time.monotonic() - started
            acc = zero_shot_accuracy(fam, world)
            per_domain[gone] = {**mem_for_h(acc, [gone]), "accuracy": acc}
        rows[label] = {
            "params": params,
            "mean": mean_scores(per_domain),
            "train_s": round(seconds / len(world.domains), 1),
            "per_domain": per_domain,
        }
        m = rows[label]["mean"]
        print(f"{label:46s} Mem {m['mem']:.3f} For {m['for']:.3f} H {m['h']:.3f}", flush=True)
    out = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": 1},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "world": {"base_accuracy": base_acc, "few_shot": 8, "unseen_per_pair": 40},
        "defaults": get_method("adu").validate_params({}).model_dump(),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
