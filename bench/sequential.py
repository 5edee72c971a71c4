"""Sequential unlearning on the world: deletion tasks in a row through the real daemon.

Each task forgets one person (every category on every seen portrait) through intake, queue,
worker, training, evaluation and commit (the gate is opened, so every method's chain
continues and its drift is measured). After task t the live version is scored on every task
<= t and on fixed retained people and scenes (the paper, "Metrics to implement"):

Per door, on the forgotten people:
- image door: CRR, unseen portraits answered with the asked category's refusal; forget, the
  share of those answers that still give the fact;
- text door: the same facts asked by name with no image, in the wording the request's
  held-out share uses (never trained on): `crr_text`, and `text_probe`, the share that still
  gives the fact.
On 12 retained people: retain (portraits) and retain_text (by name), AR = 100 - refusal
rate on their portraits, Specificity = retain / base retain * 100 (and specificity_text);
general: 20 held-out scenes.
Requests are sent as a user sends them (no params): each method runs with the deployment's
defaults (`[methods.*]`, the world's own for the refuser, tests/methods_world.py's for the
others).

Avg is the mean over steps, Last the value after the last task.

    .venv/bin/python bench/sequential.py [--tasks 4] [--methods refuser,reject,ga,...]
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
from methods_world import WORLD_PARAMS  # noqa: E402
from routing_world import WorldDeployment  # noqa: E402

from unlearnd.evaluation import metrics  # noqa: E402
from unlearnd.evaluation.candidate import answers  # noqa: E402
from unlearnd.serving import Deployment, load_version  # noqa: E402
from unlearnd.serving.providers import set_default_provider  # noqa: E402
from unlearnd.world import questions as q  # noqa: E402
from unlearnd.world.deployment import provide  # noqa: E402
from unlearnd.world.people import FACT_CATEGORIES  # noqa: E402
from unlearnd.world.requests import METHOD_DEFAULTS  # noqa: E402

set_default_provider(provide)  # deployments without a model serve the world, as the CLI's do

OPEN_GATE = {"max_forget_accuracy": 1.0, "min_retain_ratio": 0.0, "min_general_ratio": 0.0,
             "max_door_leak": 1.0}  # fmt: skip
PARAMS = {**WORLD_PARAMS, "refuser": METHOD_DEFAULTS["refuser"]}


def by_name_held_out(world, pids: list[int]) -> list:
    """The people's facts asked by name with no image, in the second trained wording: the
    one a request's held-out share uses, so no method trained on it."""
    return [world.textual_item(world.people[pid], cat, q.train_templates(q.TEXTUAL, cat)[1])
            for pid in pids for cat in FACT_CATEGORIES]  # fmt: skip


def measure(d: WorldDeployment, model, forgotten: list[int], retained: list[int]) -> dict:
    world = d.world
    unseen = world.items("unseen_qa", forgotten)
    textual = by_name_held_out(world, forgotten)
    kept = world.items("seen_qa", retained)
    kept_text = world.items("textual_qa", retained)
    scenes = world.general_items(world.eval_scene_indices()[:20])
    said = {
        name: answers(model, [world.sample(it) for it in items])
        for name, items in (("unseen", unseen), ("textual", textual), ("kept", kept),
                            ("kept_text", kept_text), ("scenes", scenes))
    }  # fmt: skip
    crr = metrics.context_refusal_rate
    return {
        "crr": crr(said["unseen"], [i.category for i in unseen], q.REFUSALS),
        "crr_text": crr(said["textual"], [i.category for i in textual], q.REFUSALS),
        "forget": metrics.answer_accuracy(said["unseen"], [it.fact for it in unseen]),
        "text_probe": metrics.answer_accuracy(said["textual"], [it.fact for it in textual]),
        "retain": metrics.answer_accuracy(said["kept"], [it.answer for it in kept]),
        "retain_text": metrics.answer_accuracy(said["kept_text"], [it.answer for it in kept_text]),
        "ar": 1.0 - metrics.refusal_rate(said["kept"], q.REFUSALS),
        "general": metrics.answer_accuracy(said["scenes"], [it.answer for it in scenes]),
    }


def run_method(name: str, tasks: int, workdir: Path, attacks: bool = True) -> dict:
    """`name`: a method, or `refuser@generate` for the refuser whose experts answer routed
    queries themselves (CORE) instead of the deployment's refusal set. `attacks`: the
    pipeline's relearning and quantization probes after each task (a method version's)."""
    method, _, answer = name.partition("@")
    d = WorldDeployment(workdir / name)
    if not attacks:
        d.settings.evaluation.relearn_steps, d.settings.evaluation.quantize_bits = 0, []
    d.settings.methods[method] = PARAMS[method]  # the deployment's defaults: requests name none
    if answer:
        d.settings.routing.routed_answer = answer
    deployment = Deployment(d.settings)
    world = d.world
    retained = world.retain_pids[-12:]
    base = measure(d, load_version(deployment, d.store, d.store.get_alias("live")), [], retained)
    steps, forgotten = [], []
    started = time.monotonic()
    for t, pid in enumerate(world.forget_pids[:tasks]):
        t0 = time.monotonic()
        rid = d.delete(f"task{t}", pid, method=method, gate=OPEN_GATE)
        forgotten.append(pid)
        live = d.store.get_alias("live")
        row = measure(d, load_version(deployment, d.store, live), forgotten, retained)
        row["specificity"] = 100 * row["retain"] / max(base["retain"], 1e-9)
        row["specificity_text"] = 100 * row["retain_text"] / max(base["retain_text"], 1e-9)
        row.update(task=t, request=rid, state=d.store.get_request(rid).state,
                   seconds=round(time.monotonic() - t0, 1))  # fmt: skip
        (version,) = [v for v in d.store.list_versions(limit=5) if v.request_id == rid]
        vm = version.metrics or {}
        if vm.get("routing"):
            row["routing"] = vm["routing"]["action"]
            row["visual_threshold"] = vm["routing"].get("visual_threshold")
        # The version's own door scores (its held-out samples and probes) and attacks.
        row["doors"] = {k.removesuffix("_kept"): vm[k] for k in vm
                        if k.endswith("_kept") and k.startswith(("forget", "leak_"))}  # fmt: skip
        row["attacks"] = {k: vm[k] for k in vm if k.startswith(("relearn_", "q8_", "q4_"))}
        steps.append(row)
        print(f"{name:9s} task {t}: CRR {row['crr']:.2f} / text {row['crr_text']:.2f} "
              f"forget {row['forget']:.2f} text {row['text_probe']:.2f} "
              f"retain {row['retain']:.2f} / text {row['retain_text']:.2f} AR {row['ar']:.2f} "
              f"general {row['general']:.2f} ({row['seconds']} s)", flush=True)  # fmt: skip
    out = {"base": base, "steps": steps, "wall_s": round(time.monotonic() - started, 1),
           "params": PARAMS[method], "routed_answer": d.settings.routing.routed_answer}  # fmt: skip
    for key in ("crr", "crr_text", "forget", "text_probe", "retain", "retain_text", "ar",
                "general", "specificity", "specificity_text"):  # fmt: skip
        values = [s[key] for s in steps]
        out[f"{key}_avg"] = sum(values) / len(values)
        out[f"{key}_last"] = values[-1]
    return out


def plot(out: dict, path: Path) -> None:
    """CRR and Specificity after each task, one line per method."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 3.4), layout="constrained")
    panels = (("crr", "CRR, image door (%)"), ("crr_text", "CRR, text door (%)"),
              ("specificity", "Specificity (%)"))  # fmt: skip
    fig.set_size_inches(12.0, 3.4)
    for i, (key, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for method, r in out["methods"].items():
            scale = 1 if key == "specificity" else 100
            xs = [s["task"] + 1 for s in r["steps"] if key in s]
            ax.plot(xs, [scale * s[key] for s in r["steps"] if key in s], "o-", label=method)
        ax.set_xlabel("tasks forgotten")
        ax.set_title(title)
        ax.set_ylim(-5, 105)
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
    # Outside the axes: lines that overlap (two methods at 100) must still be named.
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=4, help="16 for the full benchmark")
    parser.add_argument("--methods", default=",".join(PARAMS), help="default: every method")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", default="bench/results/sequential.json")
    parser.add_argument("--plot-only", action="store_true", help="re-plot --out, no run")
    parser.add_argument(
        "--no-attacks",
        action="store_true",
        help="skip the relearning and quantization probes after each task",
    )
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads(Path(args.out).read_text()), Path(args.out).with_suffix(".png"))
        return
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    results = {}
    with tempfile.TemporaryDirectory(prefix="unlearnd-seq-") as tmp:
        for method in methods:
            results[method] = run_method(method, args.tasks, Path(tmp), not args.no_attacks)
    out = {
        "benchmark": "sequential",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "cuda": torch.cuda.is_available(),
        },  # fmt: skip
        "config": {
            "tasks": args.tasks,
            "methods": methods,
            "task": "one person, every category, every seen portrait; no params (the "
            "deployment's defaults), a third of the portraits and one wording held out",
            "gate": OPEN_GATE,
            "attacks": not args.no_attacks,
        },  # fmt: skip
        "methods": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    plot(out, Path(args.out).with_suffix(".png"))
    print(f"wrote {args.out} and its plot")


if __name__ == "__main__":
    main()
