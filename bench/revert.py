"""What a revert that replays costs and gives back, on the world (issue 31).

One refuser expert for everything (`routing.pool_size = 1`): A, B and C forget three people
one after another through the real daemon, so B and C retrain A's expert. Reverting B needs
C replayed: the revert is a daemon job that restores the expert to its tensors from before B,
retrains C on top of it (with A's samples replayed, never B's) and commits one `revert`
version. Recorded: each deletion's job time, the revert's stages (scoring the head, the
replay, evaluation), and per person and door (image, full name, surname, misspelt) the share
of the facts stated by the base model, the head before the revert and the revert.

    OMP_NUM_THREADS=1 .venv/bin/python bench/revert.py [--out bench/results/revert.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from routing_world import WorldDeployment  # noqa: E402

from unlearnd.serving import Deployment, load_version  # noqa: E402
from unlearnd.serving.providers import set_default_provider  # noqa: E402
from unlearnd.world.deployment import provide  # noqa: E402

set_default_provider(provide)  # a deployment that names no model serves the built-in world

ROLES = ("A", "B", "C")


def doors(d: WorldDeployment, model, pid: int) -> dict[str, float]:
    out = {"image": d.accuracy(model, "unseen_qa", [pid])}
    out.update({door: d.told(model, pid, name) for door, name in d.names(pid).items()})
    return {k: round(v, 3) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench/results/revert.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="unlearnd-revert-") as tmp:
        d = WorldDeployment(Path(tmp), pool_size=1)
        pids = dict(zip(ROLES, d.world.forget_pids[:3], strict=True))
        models = {"base": load_version(Deployment(d.settings), d.store, d.store.get_alias("live"))}
        ids, deletion_s = {}, {}
        for role, pid in pids.items():
            t = time.monotonic()
            ids[role] = d.delete(role, pid)
            deletion_s[role] = round(time.monotonic() - t, 1)
            print(f"deleted {role}: {ids[role]} in {deletion_s[role]} s", flush=True)
        head = d.store.get_alias("live")
        models["head"] = load_version(Deployment(d.settings), d.store, head)
        done = d.store.request_revert(ids["B"], who="bench", why="bench/revert.py")
        t = time.monotonic()
        assert d.daemon.work(), "no revert job ran"
        revert_s = round(time.monotonic() - t, 1)
        live = d.store.get_version(d.store.get_alias("live"))
        models["revert"] = load_version(Deployment(d.settings), d.store, live.id)
        scenes = d.world.general_items(d.world.eval_scene_indices()[:100])
        retained = d.world.retain_pids[:12]
        kept = {
            name: {"retained_people": round(d.accuracy(m, "seen_qa", retained), 3),
                   "scenes": round(d.accuracy(m, "general", items=scenes), 3)}
            for name, m in models.items()
        }  # fmt: skip
        people = {role: {name: doors(d, m, pid) for name, m in models.items()}
                  for role, pid in pids.items()}  # fmt: skip
    out = {
        "benchmark": "revert",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "cuda": torch.cuda.is_available(),
            "threads": 1,
        },  # fmt: skip
        "config": {
            "pool_size": 1,
            "reverted": "B",
            "replayed": done.plan.replay,
            "method": "refuser (the deployment's defaults)",
        },  # fmt: skip
        "deletion_s": deletion_s,
        "revert_job_s": revert_s,
        "revert_timings": live.timings,
        "revert_status": live.status,
        "gate_failed": live.metrics["gate"]["failed"],
        "kept": kept,
        "people": people,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("deletion_s", "revert_job_s", "revert_status")}))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
