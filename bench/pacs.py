"""Unlearning on real photographs (PACS): concept refusal, a sequence of deletions, ADU.

Needs a world built from the image tree (`unlearnd world build --images DATA --out WORLD`;
with no --world this script builds one into --work first). Everything is measured on the
tree's unseen split, through the real daemon (intake, queue, worker, gate, registry):

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

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adu_bench import VARIANTS, mean_scores  # noqa: E402

from unlearnd.config import ModelSettings, Settings  # noqa: E402
from unlearnd.daemon.testing import LocalDaemon  # noqa: E402
from unlearnd.evaluation.candidate import answers  # noqa: E402
from unlearnd.evaluation.domains import mem_for_h  # noqa: E402
from unlearnd.methods import get_method  # noqa: E402
from unlearnd.models import Sample, load  # noqa: E402
from unlearnd.world.clip_world import TEMPLATE  # noqa: E402
from unlearnd.world.image_requests import (  # noqa: E402
    ImageWorld,
    load_image_world,
    names_a_class,
    write_concept_bundle,
)
from unlearnd.world.image_tree import open_images, word  # noqa: E402
from unlearnd.world.requests import REFUSER_PARAMS  # noqa: E402

OPEN_GATE = {"max_forget_accuracy": 1.0, "min_retain_ratio": 0.0, "min_general_ratio": 0.0}
# Each method's params on this VLM (it never learnt to refuse: the refuser trains the
# language blocks too, as on the generated world).
PARAMS = {
    "refuser": REFUSER_PARAMS,
    "ga": {"lr": 2e-3, "steps": 25, "target": "ffn", "lora_rank": 4, "nll_cap": 5},
    "npo": {"lr": 7e-4, "steps": 60, "target": "ffn", "alpha": 3.0},
    "vl_eraser": {"retain_tokens": "all", "threshold": 1e-3},
    "pubg": {"lr": 3e-3, "nll_cap": 5, "reference_answer": "I cannot help with that ."},
}


class ImageDeployment:
    """The image world's VLM served by a real daemon pipeline on a fresh SQLite registry."""

    def __init__(
        self, world: ImageWorld, workdir: Path, device: str, domains: list[str], b: float | None
    ):
        pools = world.folder / "pools"
        model = ModelSettings(path=str(world.vlm_dir), eval_samples=48,
                              retain_pool=str(pools / "retain.jsonl"),
                              general_pool=str(pools / "general.jsonl"))  # fmt: skip
        served = "cuda" if device.startswith("cuda") else "cpu"
        settings = Settings(workdir=workdir, model=model, device=served)
        if b is not None:
            settings.routing.relevance_b = b
        self.daemon = LocalDaemon(settings)
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


def concept(world, probe, args, work) -> dict:
    rows = {}
    for method in tqdm(args.methods.split(","), desc="concept refusal", file=sys.stderr):
        d = ImageDeployment(world, work / method, args.device, args.domains.split(","),
                            args.relevance_b)  # fmt: skip
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
                        args.relevance_b)  # fmt: skip
    steps, forgotten = [], ()
    for label in tqdm(args.sequence.split(","), desc="sequence", file=sys.stderr):
        started = time.monotonic()
        rid = d.forget(label, method="refuser", params=REFUSER_PARAMS, gate=OPEN_GATE)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the image tree (e.g. PACS at 64 px)")
    parser.add_argument("--world", help="a world built from --data (default: build one)")
    parser.add_argument("--work", help="scratch folder (default: a temporary one)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--methods", default=",".join(PARAMS))
    parser.add_argument("--parts", default="concept,sequence,adu")
    parser.add_argument("--forget", default="giraffe", help="the class of the concept request")
    parser.add_argument("--domains", default="photo,cartoon", help="where its images come from")
    parser.add_argument("--sequence", default="giraffe,guitar,horse")
    parser.add_argument("--relevance-b", type=float, help="routing.relevance_b (default: config)")
    parser.add_argument("--out", default="bench/results/pacs.json")
    args = parser.parse_args()
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
        "relevance_b": args.relevance_b,
        "request": {"forget": args.forget, "domains": args.domains.split(","), "images": 40,
                    "sequence": args.sequence.split(",")},
    }  # fmt: skip
    if "concept" in parts or "sequence" in parts:
        probe = Probe(world, load(world.vlm_dir, device=device))
        if "concept" in parts:
            out["concept"] = concept(world, probe, args, work)
        if "sequence" in parts:
            out["sequence"] = sequence(world, probe, args, work)
    if "adu" in parts:
        out["adu"] = adu(world, device)
    out["wall_s"] = round(time.monotonic() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
