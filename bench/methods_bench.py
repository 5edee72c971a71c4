"""Every unlearning method on the world model, on one forget / retain split.

The split, each method's params and the scoring are those of the matrix test
(tests/methods_world.py): D_f = 3 forget people's seen-portrait questions, D_r = 100 retain
people's. Per method: forget leak rate (answer still holds the fact, asked on the forget
people's unseen portraits, never trained on), retain accuracy (15 people never trained on),
general accuracy (20 held-out scenes), ROUGE-L of the forget answers against the originals,
the text-only probe (the facts asked by name, no image), what the answers to the forget
people's questions say instead (the share refused, degenerate, hallucinated: another
person's name or fact, informative), and the training wall time. Two extra rows run a
method at the paper defaults where the tuned params differ in kind (PUBG's generated
references, VL-Eraser's image-token null space), and PUBG's generated references are
recorded.

    .venv/bin/python bench/methods_bench.py [--out bench/results/methods.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from methods_world import WORLD_PARAMS, make_split, score  # noqa: E402

from unlearnd.methods import METHODS, get_method  # noqa: E402
from unlearnd.methods.pubg import PUBGParams, reference_answers  # noqa: E402
from unlearnd.models import load  # noqa: E402
from unlearnd.world import load_world  # noqa: E402

VARIANTS = {  # label -> (method, params): the the paper defaults where tuned params differ
    "pubg (generated refs)": ("pubg", {k: v for k, v in WORLD_PARAMS["pubg"].items()
                                       if k != "reference_answer"}),
    "vl_eraser (image null space)": ("vl_eraser", {}),
}  # fmt: skip


def run(fam, world, split, name: str, params: dict) -> dict:
    method = get_method(name)
    fam = copy.deepcopy(fam)
    started = time.perf_counter()
    result = method.fit(fam, split.forget_samples(world), split.retain_train,
                        method.validate_params(params))  # fmt: skip
    wall = time.perf_counter() - started
    row = score(fam, world, split, probes=True)
    row.update(method=name, params=params, train_s=round(wall, 2), steps=len(result.losses))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/methods.json")
    args = parser.parse_args()
    torch.set_num_threads(1)  # 2 shared cores: one thread is faster than two contending
    world = load_world()
    base = load(world.model_dir)
    split = make_split(world)
    rows = {"base": {**score(base, world, split, probes=True), "method": None, "train_s": 0}}
    llava = sorted(n for n, m in METHODS.items() if "llava" in m.families)  # ADU: adu_bench
    jobs = {name: (name, WORLD_PARAMS[name]) for name in llava} | VARIANTS
    for label, (name, params) in jobs.items():
        rows[label] = run(base, world, split, name, params)
        r = rows[label]
        print(f"{label:30s} forget {r['forget']:.2f} retain {r['retain']:.2f} "
              f"general {r['general']:.2f} text {r['textual_probe']:.2f} "
              f"{r['train_s']:.1f}s refused {r['refused']:.2f} "
              f"degenerate {r['degenerate']:.2f} hallucinated {r['hallucinated']:.2f} "
              f"informative {r['informative']:.2f}", flush=True)  # fmt: skip
    refs = reference_answers(base, split.forget_samples(world), PUBGParams())
    sizes = {name: len(getattr(split, name)) for name in ("forget", "retain_train", "retain")}
    out = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": 1},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "split": {"forget_people": 3, "questions": sizes, "general": len(split.general)},
        "pubg_generated_references": [
            {"question": it.question, "reference": ref}
            for it, ref in zip(split.forget_train[:6], refs[:6], strict=True)
        ],
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
