"""Unlearning on real photographs (PACS): concept refusal, a sequence of deletions, ADU.

Needs a world built from the image tree (`unlearnd world build --images DATA --out WORLD`;
with no --world this script builds one into --work first). Everything is measured on the
tree's unseen split, through the real daemon (intake, queue, worker, gate, registry), with
the routing keys `unlearnd init` writes for an image world (world/image_world.py ROUTING):

0. the gate, before any training: for each kind of visual concept vector and relevance_b,
   the share of unseen pictures the giraffe request's expert would be switched on for;
1. concept refusal, per method: forget giraffe from 40 training pictures of the photo and
   cartoon domains; on the unseen giraffe pictures the original model named correctly, the
   share refused per domain (a refusal names no class: art painting and sketch were not in
   the request), Specificity = accuracy on the other classes / before * 100, and time;
2. three deletions in a row with refusers (giraffe, guitar, horse): CRR and Specificity after
   each;
3. ADU on the CLIP, each domain forgotten in turn: Mem, For, H beside the baseline and the
   two ablations (bench/adu_bench.py's variants).

    .venv/bin/python bench/pacs.py --data ../shared/data/pacs64 [--world DIR] [--device auto]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from adu_bench import VARIANTS, mean_scores  # noqa: E402
from local_daemon import LocalDaemon  # noqa: E402

from unlearnd.config import ModelSettings, Settings  # noqa: E402
from unlearnd.evaluation.candidate import answers  # noqa: E402
from unlearnd.evaluation.domains import mem_for_h  # noqa: E402
from unlearnd.methods import get_method  # noqa: E402
from unlearnd.models import Sample, load  # noqa: E402
from unlearnd.models.clip import TEMPLATE  # noqa: E402
from unlearnd.routing.concepts import VISUAL_VECTORS, decompose, visual_vectors  # noqa: E402
from unlearnd.routing.switch import ExpertSwitch, SwitchSettings  # noqa: E402
from unlearnd.routing.tasks import Task  # noqa: E402
from unlearnd.serving import Deployment  # noqa: E402
from unlearnd.world.image_requests import (  # noqa: E402
    REFUSER_IMAGE_PARAMS,
    ImageWorld,
    load_image_world,
    names_a_class,
    write_concept_bundle,
)
from unlearnd.world.image_tree import open_images, word  # noqa: E402
from unlearnd.world.image_world import ROUTING  # noqa: E402

SCAN_B = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
OPEN_GATE = {"max_forget_accuracy": 1.0, "min_retain_ratio": 0.0, "min_general_ratio": 0.0}
# Each method's params on this VLM (it never learnt to refuse: the refuser trains the
# language blocks too, as on the generated world).
PARAMS = {
    "refuser": REFUSER_IMAGE_PARAMS,
    "ga": {"lr": 2e-3, "steps": 25, "target": "ffn", "lora_rank": 4, "nll_cap": 5},
    "npo": {"lr": 7e-4, "steps": 60, "target": "ffn", "alpha": 3.0},
    "vl_eraser": {"retain_tokens": "all", "threshold": 1e-3},
    "pubg": {"lr": 3e-3, "nll_cap": 5, "reference_answer": "I cannot help with that ."},
}


def deployment_settings(world: ImageWorld, workdir: Path, device: str, routing: dict) -> Settings:
    """Settings serving the world's VLM with its pools; `routing`: routing.* overrides."""
    pools = world.folder / "pools"
    model = ModelSettings(path=str(world.vlm_dir), eval_samples=48,
                          retain_pool=str(pools / "retain.jsonl"),
                          general_pool=str(pools / "general.jsonl"))  # fmt: skip
    served = "cuda" if device.startswith("cuda") else "cpu"
    settings = Settings(workdir=workdir, model=model, device=served)
    for key, value in routing.items():
        if value is not None:
            setattr(settings.routing, key, value)
    return settings


class ImageDeployment:
    """The image world's VLM served by a real daemon pipeline on a fresh SQLite registry."""

    def __init__(
        self, world: ImageWorld, workdir: Path, device: str, domains: list[str], routing: dict
    ):
        self.daemon = LocalDaemon(deployment_settings(world, workdir, device, routing))
        self.store = self.daemon.store
        self.world, self.workdir, self.domains = world, workdir, domains

    def forget(self, label: str, **fields) -> str:
        folder = write_concept_bundle(self.world, label, self.domains,
                                      self.workdir / "bundles" / f"forget-{label}", n=40,
                                      **fields)  # fmt: skip
        return self.daemon.submit(folder)

    def live(self):
        return self.daemon.version()


class Probe:
    """The unseen pictures, their class answers from the original model, and scores."""

    def __init__(self, world: ImageWorld, base):
        self.world = world
        self.items = world.tree.items("unseen")
        images = open_images(self.items)
        self.samples = [Sample(world.class_question, word(i.label), im)
                        for i, im in zip(self.items, images, strict=True)]  # fmt: skip
        self.base = answers(base, self.samples)
        self.correct = [a == s.answer for a, s in zip(self.base, self.samples, strict=True)]

    def score(self, model, forgotten: tuple[str, ...]) -> dict:
        said = answers(model, self.samples)
        words = self.world.class_words
        refused: dict[str, list[bool]] = {}
        named: dict[str, list[bool]] = {}
        kept_now = kept_before = 0
        for item, ok, answer in zip(self.items, self.correct, said, strict=True):
            if item.label in forgotten:
                if ok:  # only what the original model knew can be forgotten
                    refused.setdefault(item.domain, []).append(not names_a_class(answer, words))
                    named.setdefault(item.domain, []).append(answer == word(item.label))
            else:
                kept_before += ok
                kept_now += ok and answer == word(item.label)
        per_domain = {d: round(sum(v) / len(v), 4) for d, v in sorted(refused.items())}
        flat = [x for v in refused.values() for x in v]
        return {
            "refused": per_domain,
            "still_named": {d: round(sum(v) / len(v), 4) for d, v in sorted(named.items())},
            "base_correct": {d: len(v) for d, v in sorted(named.items())},  # the denominators
            "crr": round(sum(flat) / max(len(flat), 1), 4),
            "specificity": round(100 * kept_now / max(kept_before, 1), 2),
        }


def routing(args) -> dict:
    return {"relevance_b": args.relevance_b, "visual_vector": args.visual_vector,
            "gate": args.gate}  # fmt: skip


def gate_scan(world: ImageWorld, probe: Probe, args, base, work: Path) -> dict:
    """Before any training: the share of unseen pictures the request's gate would switch its
    expert on for, per visual vector and relevance_b (forgotten class per domain, among the
    pictures the original model named correctly; other classes, any style)."""
    domains = args.domains.split(",")
    per = 40 // len(domains)  # the concept request's own pictures
    forget = world.class_samples(
        [i for d in domains for i in world.tree.items("train", [d], [args.forget])[:per]]
    )
    target = [f"{word(args.forget)} . every picture of a {word(args.forget)}"]
    text = base.text_embedding([probe.samples[0].question]).numpy()
    gone = [i.label == args.forget for i in probe.items]
    rows: dict = {}
    for kind in VISUAL_VECTORS:
        settings = deployment_settings(world, work / f"gate-{kind}", args.device,
                                       {"visual_vector": kind})  # fmt: skip
        r = settings.routing
        centers = Deployment(settings).centers(base)
        visual, textual = decompose(base, forget, target, r.prototypes, 0, kind)
        task = Task("scan", "expert", args.forget, visual, textual, 1, kind)
        vectors = torch.cat([visual_vectors(base, probe.samples[s : s + 64], kind)
                             for s in range(0, len(probe.samples), 64)]).numpy()  # fmt: skip
        texts = np.repeat(text, len(vectors), 0)
        rows[kind] = {}
        for b in SCAN_B:
            gate = ExpertSwitch(
                [task], centers, SwitchSettings(r.relevance_a, b, r.gate, r.hard_threshold)
            )
            fired = [bool(route) for route in gate.route(vectors, texts)]
            per_domain = {
                d: _share([f for f, i, g, ok in zip(fired, probe.items, gone, probe.correct,
                                                    strict=True) if g and ok and i.domain == d])
                for d in world.tree.domains
            }  # fmt: skip
            others = [(f, ok) for f, g, ok in zip(fired, gone, probe.correct, strict=True) if not g]
            row = {"forgotten": per_domain, "other_classes": _share([f for f, _ in others]),
                   "other_classes_named": _share([f for f, ok in others if ok])}  # fmt: skip
            rows[kind][str(b)] = row
            print(f"gate {kind:12s} b={b:.2f} {row}", flush=True)
    return rows


def _share(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 4) if flags else 0.0


def concept(world, probe, args, work) -> dict:
    rows = {}
    for method in tqdm(args.methods.split(","), desc="concept refusal", file=sys.stderr):
        d = ImageDeployment(world, work / method, args.device, args.domains.split(","),
                            routing(args))  # fmt: skip
        started = time.monotonic()
        rid = d.forget(args.forget, method=method, params=PARAMS[method], gate=OPEN_GATE)
        seconds = time.monotonic() - started
        row = probe.score(d.live(), (args.forget,))
        row.update(state=d.store.get_request(rid).state, seconds=round(seconds, 1),
                   params=PARAMS[method])  # fmt: skip
        rows[method] = row
        print(f"{method:10s} refused {row['refused']} Spec {row['specificity']} "
              f"({row['seconds']} s)", flush=True)  # fmt: skip
    return rows


def sequence(world, probe, args, work) -> list[dict]:
    d = ImageDeployment(world, work / "sequence", args.device, args.domains.split(","),
                        routing(args))  # fmt: skip
    steps, forgotten = [], ()
    for label in tqdm(args.sequence.split(","), desc="sequence", file=sys.stderr):
        started = time.monotonic()
        rid = d.forget(label, method="refuser", params=PARAMS["refuser"], gate=OPEN_GATE)
        forgotten += (label,)
        metrics = d.store.get_version(d.store.get_alias("live")).metrics or {}
        row = {"forgot": label, **probe.score(d.live(), forgotten),
               "seconds": round(time.monotonic() - started, 1),
               "routing": metrics.get("routing", {}).get("action"),
               "state": d.store.get_request(rid).state}  # fmt: skip
        steps.append(row)
        print(f"after {label}: CRR {row['crr']} Spec {row['specificity']}", flush=True)
    return steps


def clip_accuracy(clip, world: ImageWorld, images, items) -> dict[str, float]:
    names = world.class_words
    probs = torch.cat([clip.classify(images[s : s + 256], names, TEMPLATE)
                       for s in range(0, len(images), 256)])  # fmt: skip
    hits = probs.argmax(-1).tolist()
    out = {}
    for d in world.tree.domains:
        idx = [n for n, i in enumerate(items) if i.domain == d]
        out[d] = round(sum(hits[n] == world.tree.classes.index(items[n].label) for n in idx)
                       / len(idx), 4)  # fmt: skip
    return out


def adu(world: ImageWorld, device: str) -> dict:
    base = load(world.clip_dir, device=device)
    items = world.tree.items("unseen")
    images = open_images(items)
    base_acc = clip_accuracy(base, world, images, items)
    tree = world.tree
    rows = {
        "base": {
            "accuracy": base_acc,
            "mean": mean_scores({d: mem_for_h(base_acc, [d]) for d in tree.domains}),
        }
    }
    shots = {d: [s for c in tree.classes for s in tree.items("train", [d], [c])[:8]]
             for d in tree.domains}  # fmt: skip
    samples = {d: [Sample(i.domain, i.label, im) for i, im in zip(v, open_images(v), strict=True)]
               for d, v in shots.items()}  # fmt: skip
    method = get_method("adu")
    for label, params in tqdm(list(VARIANTS.items()), desc="adu", file=sys.stderr):
        per_domain, seconds = {}, 0.0
        for gone in tree.domains:
            fam = copy.deepcopy(base)
            started = time.monotonic()
            retain = [s for d in tree.domains if d != gone for s in samples[d]]
            method.fit(fam, samples[gone], retain, method.validate_params(params))
            seconds += time.monotonic() - started
            acc = clip_accuracy(fam, world, images, items)
            per_domain[gone] = {**mem_for_h(acc, [gone]), "accuracy": acc}
        rows[label] = {"params": params, "mean": mean_scores(per_domain),
                       "train_s": round(seconds / len(tree.domains), 1),
                       "per_domain": per_domain}  # fmt: skip
        m = rows[label]["mean"]
        print(f"{label:46s} Mem {m['mem']:.3f} For {m['for']:.3f} H {m['h']:.3f}", flush=True)
    return rows


def plot(out: dict, path: Path) -> None:
    """Left: the gate's trade-off per kind of visual vector (one point per relevance_b).
    Right: the share of correctly named unseen giraffes each method refuses, per domain."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.0, 3.6), layout="constrained")
    if "gate" in out:
        ax = fig.add_subplot(1, 2, 1)
        for kind, rows in out["gate"].items():
            xs = [100 * r["other_classes_named"] for r in rows.values()]
            ys = [100 * min(r["forgotten"].values()) for r in rows.values()]
            ax.plot(xs, ys, "o-", label=kind)
            for b, x, y in zip(rows, xs, ys, strict=True):
                ax.annotate(b, (x, y), fontsize=6, xytext=(3, -8), textcoords="offset points")
        ax.set_xlabel("other classes, named before: expert on (%)")
        ax.set_ylabel("forgotten class, worst domain: on (%)")
        ax.set_title("gate before training (label: relevance_b)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if "concept" in out:
        ax = fig.add_subplot(1, 2, 2)
        methods = list(out["concept"])
        domains = list(next(iter(out["concept"].values()))["refused"])
        width = 0.8 / len(methods)
        for m, method in enumerate(methods):
            row = out["concept"][method]
            xs = [d + (m - (len(methods) - 1) / 2) * width for d in range(len(domains))]
            label = f"{method} (Spec {row['specificity']:.0f})"
            ax.bar(xs, [100 * row["refused"][d] for d in domains], width, label=label)
        ax.set_xticks(range(len(domains)), [d.replace("_", " ") for d in domains])
        ax.set_ylabel("refused (%)")
        ax.set_title(f"forget {out['request']['forget']} from "
                     f"{' + '.join(out['request']['domains'])} pictures", fontsize=9)  # fmt: skip
        ax.set_ylim(0, 130)  # room for the legend above the bars
        ax.set_yticks(range(0, 101, 20))
        ax.legend(fontsize=7, ncol=3, loc="upper center")
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the image tree (e.g. PACS at 64 px)")
    parser.add_argument("--world", help="a world built from --data (default: build one)")
    parser.add_argument("--work", help="scratch folder (default: a temporary one)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--methods", default=",".join(PARAMS))
    parser.add_argument("--parts", default="gate,concept,sequence,adu")
    parser.add_argument("--forget", default="giraffe", help="the class of the concept request")
    parser.add_argument("--domains", default="photo,cartoon", help="where its images come from")
    parser.add_argument("--sequence", default="giraffe,guitar,horse")
    parser.add_argument("--relevance-b", type=float, default=ROUTING["relevance_b"],
                        help="routing.relevance_b (default: what `unlearnd init` writes for an "
                        "image world)")  # fmt: skip
    parser.add_argument("--visual-vector", choices=VISUAL_VECTORS, default=ROUTING["visual_vector"],
                        help="routing.visual_vector (default: what `unlearnd init` writes for an "
                        "image world)")  # fmt: skip
    parser.add_argument("--gate", choices=("continuous", "hard"), default=ROUTING.get("gate"),
                        help="routing.gate (default: what `unlearnd init` writes for an image "
                        "world, else the config's)")  # fmt: skip
    parser.add_argument(
        "--params",
        default="{}",
        help='JSON merged into the methods\' params: {"refuser": {"alpha": 0.3}}',
    )
    parser.add_argument("--out", default="bench/results/pacs.json")
    parser.add_argument("--plot-only", action="store_true", help="re-plot --out, no run")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads(Path(args.out).read_text()), Path(args.out).with_suffix(".png"))
        return
    for method, extra in json.loads(args.params).items():
        PARAMS[method] = {**PARAMS[method], **extra}
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from unlearnd.models.device import resolve_device

    device = args.device = str(resolve_device(args.device)[0])
    if device == "cpu":
        torch.set_num_threads(1)  # 2 shared cores: one thread is faster than two contending
    work = Path(args.work or tempfile.mkdtemp(prefix="unlearnd-pacs-"))
    started = time.monotonic()
    if args.world is None:
        from unlearnd.world.image_world import build_image_world

        args.world = str(work / "world")
        build_image_world(args.data, args.world, device=device)
    world = load_image_world(args.world, images=args.data)
    parts = args.parts.split(",")
    out: dict = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "device": device,
                    "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "world": {k: world.record["figures"][k] for k in
                  ("vlm_class_acc", "vlm_domain_acc", "clip_class_acc", "seconds")},
        "routing": routing(args),
        "request": {"forget": args.forget, "domains": args.domains.split(","), "images": 40,
                    "sequence": args.sequence.split(",")},
    }  # fmt: skip
    if {"gate", "concept", "sequence"} & set(parts):
        base = load(world.vlm_dir, device=device)
        probe = Probe(world, base)
        if "gate" in parts:
            out["gate"] = gate_scan(world, probe, args, base, work)
        if "concept" in parts:
            out["concept"] = concept(world, probe, args, work)
        if "sequence" in parts:
            out["sequence"] = sequence(world, probe, args, work)
    if "adu" in parts:
        out["adu"] = adu(world, device)
    out["wall_s"] = round(time.monotonic() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    plot(out, Path(args.out).with_suffix(".png"))
    print(f"wrote {args.out} and its plot")


if __name__ == "__main__":
    main()
