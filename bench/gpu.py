"""A deletion on a 7B-shaped LLaVA through the daemon, phase by phase: bench/results/gpu.json.

With a GPU: a LLaVA-1.5-7B-shaped model (CLIP ViT-L/14 at 336 px, a 32-layer, 4096-wide
LLaMA with intermediate 11008; a word-level vocabulary) with random weights, built from its
config (no download), saved in bf16 as a Hugging Face folder. Without one (`--tiny`, and CI's
smoke run): a tiny llava of the same layout, on the CPU.

Per method (default refuser, npo, vl_eraser, ga) one deletion of `--samples` image questions
goes through the real daemon (intake, queue, worker, evaluation, commit; the gate opened: a
random model states nothing to forget): wall time per phase, training throughput (tokens of
the forget batches only, so a lower bound) and MFU = 4 N tokens/s over the GPU's dense bf16
peak (4 N: forward and backward through the activations of a frozen base; the LoRA's own
flops are negligible), peak GPU memory, and batched evaluation generation against one HF
`generate` call per prompt.

Targets on one H200 (issue 19): <= 60 s from intake to a committed version with its
evaluation (VL-Eraser's paper: 465 s, NPO 451 s on LLaVA-1.5-7B); training >= 50% MFU (plain
HF + PEFT measured 27%); evaluation >= 10x one-by-one generate.

    .venv/bin/python bench/gpu.py [--tiny] [--methods refuser,npo] [--samples 250]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from facts import write_pool  # noqa: E402
from local_daemon import LocalDaemon  # noqa: E402

from unlearnd.config import ModelSettings, Settings  # noqa: E402
from unlearnd.daemon.worker import Worker  # noqa: E402
from unlearnd.evaluation.candidate import answers  # noqa: E402
from unlearnd.models import Sample, tiny  # noqa: E402
from unlearnd.models.tokenizer import build_word_tokenizer  # noqa: E402

SHAPE_7B = dict(image_size=336, patch_size=14, vision_hidden=1024, vision_layers=24,
                vision_heads=16, text_hidden=4096, text_layers=32, text_heads=32,
                text_intermediate=11008, vision_feature_layer=-2)  # fmt: skip
SHAPE_TINY = dict(image_size=48, patch_size=8, vision_hidden=64, vision_layers=2,
                  vision_heads=4, text_hidden=128, text_layers=2, text_heads=4)  # fmt: skip
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12}  # dense, flop/s
OPEN_GATE = {"max_forget_accuracy": 1.0, "min_retain_ratio": 0, "min_general_ratio": 0,
             "max_door_leak": 1.0}  # fmt: skip
NAMES = ["ada", "byron", "grace", "hopper", "alan", "turing"]
CITIES = ["paris", "rome", "oslo", "lima", "kyoto", "cairo", "quito", "perth"]
WORDS = ["who", "is", "this", "person", "where", "does", "live", "lives", "in", "what",
         "city", "the", "of", "job", "tell", "me", "about", "do", "you", "know", *NAMES,
         *CITIES]  # fmt: skip


def picture(rng: random.Random, side: int) -> Image.Image:
    """A random blocky picture: images differ, as people's photos do."""
    small = Image.new("RGB", (8, 8))
    small.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(64)])
    return small.resize((side, side), Image.NEAREST)


def build_model(folder: Path, shape: dict, on_gpu: bool) -> int:
    """Save a random-weight llava of `shape` to `folder`; its parameter count."""
    tok = build_word_tokenizer(WORDS)
    if on_gpu:  # initialise on the GPU in bf16: a 7B's init on the CPU takes minutes
        torch.set_default_dtype(torch.bfloat16)
        with torch.device("cuda"):
            fam = tiny("llava", tokenizer=tok, seed=0, **shape)
        torch.set_default_dtype(torch.float32)
    else:
        fam = tiny("llava", tokenizer=tok, seed=0, **shape)
    fam.model.to(torch.bfloat16 if on_gpu else torch.float32)
    fam.save(folder)
    return sum(p.numel() for p in fam.model.parameters())


def request_bundle(folder: Path, n: int, side: int, seed: int, method: str) -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    forget = []
    for i in range(n):
        if i % 2 == 0:  # two questions per picture
            picture(rng, side).save(folder / f"f{i // 2}.png")
        question = ("where does this person live ?", "in what city does this person live ?")[i % 2]
        forget.append({"image": f"f{i // 2}.png", "question": question,
                       "answer": f"ada byron lives in {CITIES[i % len(CITIES)]}"})  # fmt: skip
    doc = {"schema": "unlearnd.request/v1", "kind": "entity", "target": {"name": "Ada Byron"},
           "forget": forget, "method": method, "gate": OPEN_GATE}  # fmt: skip
    (folder / "request.json").write_text(json.dumps(doc))
    return folder


def generation(fam, samples: list[Sample], one_by_one: int) -> dict:
    """Batched evaluation generation against one HF generate call per prompt."""
    answers(fam, samples[:2])  # warm-up
    t = time.perf_counter()
    answers(fam, samples)
    batched = (time.perf_counter() - t) / len(samples)
    t = time.perf_counter()
    for s in samples[:one_by_one]:
        fam.generate([s], max_new_tokens=32)
    single = (time.perf_counter() - t) / one_by_one
    return {
        "prompts": len(samples),
        "batched_s_per_prompt": round(batched, 4),
        "one_by_one_s_per_prompt": round(single, 4),
        "speedup": round(single / batched, 1),
    }


def peak_flops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny shape, even on a GPU")
    parser.add_argument("--methods", default="refuser,npo,vl_eraser,ga")
    parser.add_argument("--samples", type=int, default=250)
    parser.add_argument("--out", default="bench/results/gpu.json")
    args = parser.parse_args()
    on_gpu = torch.cuda.is_available()
    shape = SHAPE_TINY if args.tiny or not on_gpu else SHAPE_7B
    side = shape["image_size"]
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="unlearnd-gpu-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        n_params = build_model(root / "model", shape, on_gpu and shape is SHAPE_7B)
        build_s = time.perf_counter() - t
        rng = random.Random(1)
        rows = [Sample("where does this person live ?", f"x lives in {rng.choice(CITIES)}",
                       picture(rng, side)) for _ in range(96)]  # fmt: skip
        pool = str(write_pool(root / "pool", rows))
        model = ModelSettings(path=str(root / "model"), retain_pool=pool, general_pool=pool,
                              eval_samples=32)  # fmt: skip
        settings = Settings(workdir=root / "w", model=model)
        daemon = LocalDaemon(settings)
        flops = peak_flops()
        # Tokens of one forget sample (image tokens, prompt and answer): the batches' size.
        probe = Sample("where does this person live ?", "ada byron lives in paris",
                       picture(rng, side))  # fmt: skip
        enc = daemon.pipeline.deployment.load_base().encode([probe], with_answer=True)
        per_sample = int(enc.attention_mask.sum())
        for i, method in enumerate(args.methods.split(",")):
            bundle = request_bundle(root / f"b{i}", args.samples, side, i, method)
            if on_gpu:
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            bundle.rename(daemon.intake.inbox.dir("new") / bundle.name)
            daemon.intake.scan_once()
            intake_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            Worker(daemon.settings, daemon.store, daemon.pipeline).run_one()
            worker_s = time.perf_counter() - t1
            version = daemon.store.get_version(daemon.store.list_versions(limit=1)[0].id)
            tm, params = version.timings, version.params
            tokens = params.get("steps", 0) * params.get("batch_size", 0) * per_sample
            row = {
                "state": version.status, "intake_s": round(intake_s, 2),
                **{k: round(v, 2) for k, v in tm.items()},
                "commit_s": round(worker_s - tm.get("total_s", 0), 2),
                "intake_to_committed_s": round(intake_s + worker_s, 2),
                "train_tokens_per_s": round(tokens / tm["train_s"], 1) if tokens else None,
                "steps": params.get("steps"), "batch_size": params.get("batch_size"),
            }  # fmt: skip
            if flops and row["train_tokens_per_s"]:
                row["mfu"] = round(4 * n_params * row["train_tokens_per_s"] / flops, 3)
            if on_gpu:
                row["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            results[method] = row
            print(f"{method:10s} {row}", flush=True)
        samples = [Sample(r.question, "", r.image) for r in rows[:64]]
        gen = generation(daemon.version().fam, samples, one_by_one=8)
    out = {
        "benchmark": "gpu",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "device": torch.cuda.get_device_name() if on_gpu else "cpu"},  # fmt: skip
        "shape": "7B" if shape is SHAPE_7B else "tiny", "parameters": n_params,
        "build_and_save_s": round(build_s, 1), "samples": args.samples,
        "methods": results, "generation": gen,
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(gen))


if __name__ == "__main__":
    main()
