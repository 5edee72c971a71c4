"""Leak probes and the relearning check: does a deletion hold beyond its own forget set?

A probe asks about the forgotten facts in a way the method never trained on: by name with no
image (text-only), on a portrait never seen in training (unseen), or in other words
(paraphrase). Its score is the leak rate: the share of answers that still contain the fact.
The relearning check fine-tunes a copy for a few steps on part of the forget set and
measures the leak on the rest: knowledge that was only hidden comes back quickly. The
quantization check rounds a merged copy to 8 or 4 bits: a small weight change that hid a fact
may not survive rounding (the ICLR 2025 finding: 83% back at 4 bits vs 21% in full precision).

Probes work on any model with `generate` (a family or a served version). A deployment
supplies its own probe sets per target (`[model] probe_sets`, serving/deployment.py); the
demo world's are written by its provider (world/deployment.py).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import torch
from peft.tuners.lora import LoraLayer

from unlearnd.evaluation import metrics
from unlearnd.evaluation.candidate import AnswerSets, Measured, accuracy
from unlearnd.methods.shared import lora
from unlearnd.methods.shared.loop import Batches, train
from unlearnd.models.base import ModelFamily, Sample
from unlearnd.text import normalise


def leak(model, samples: Sequence[Sample]) -> float:
    """Share of answers that contain the sample's `answer` (the fact); 0 for no samples."""
    return accuracy(model, samples)


def leak_probes(model, sets: dict[str, Sequence[Sample]]) -> dict[str, float]:
    """The leak rate of every non-empty probe set."""
    return {name: leak(model, samples) for name, samples in sets.items() if samples}


def named(targets: Iterable[str], texts: Iterable[str]) -> set[str]:
    """The targets whose whole name appears in any of the texts (a request's target name,
    its forget answers), compared normalised and by whole words."""
    texts = [normalise(t) for t in texts]
    return {t for t in targets if any(metrics.answer_match(text, t) for text in texts)}


def relearned(
    fam: ModelFamily,
    train_on: Sequence[Sample],
    steps: int = 10,
    lr: float = 3e-3,
    batch_size: int = 8,
) -> ModelFamily:
    """A copy of `fam` after `steps` NLL steps on `train_on` through a new LoRA beside any the
    version carries (the served weights are never touched): an attacker relearning."""
    attacked = copy.deepcopy(fam)
    params = lora.LoraParams(steps=steps, lr=lr, batch_size=batch_size, target="blocks")
    lora.attach(attacked, lora.lora_config(attacked, params), params.seed, name="relearn")
    batches = Batches(list(train_on), params.batch_size, params.seed)
    train(attacked, lambda _: attacked.answer_loss(batches.next()), params)
    return attacked


@torch.no_grad()
def quantized(fam: ModelFamily, bits: int) -> ModelFamily:
    """A copy of `fam` with its LoRA adapters merged and every linear weight rounded to
    `bits` per output channel (round to nearest, symmetric): how the version would be served
    quantized. FFN branches and token rewriters stay beside the rounded weights."""
    rounded = copy.deepcopy(fam)
    for module in rounded.model.modules():
        if isinstance(module, LoraLayer):
            module.merge(safe_merge=False, adapter_names=list(module.lora_A))
    levels = 2 ** (bits - 1) - 1
    for module in rounded.model.modules():
        if isinstance(module, torch.nn.Linear) and module.weight.ndim == 2:
            w = module.weight
            scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / levels
            w.copy_((w / scale).round().clamp(-levels, levels) * scale)
    return rounded


def relearn(
    fam: ModelFamily,
    train_on: Sequence[Sample],
    measure_on: Sequence[Sample],
    steps: int = 10,
    lr: float = 3e-3,
    batch_size: int = 8,
) -> dict[str, float]:
    """Leak on `measure_on` before and after relearning (`relearned`); answers are facts."""
    before = leak(fam, measure_on)
    attacked = relearned(fam, train_on, steps, lr, batch_size)
    return {"relearn_before": before, "relearn_after": leak(attacked, measure_on)}


def attacked(
    fam: ModelFamily,
    train_on: Sequence[Sample],
    doors: dict[str, Sequence[Sample]],
    relearn_steps: int = 10,
    bits: Sequence[int] = (8, 4),
    parent: Measured | None = None,
    names: Sequence[str] = (),
) -> dict[str, float]:
    """`{attack}_{door}_acc` for every door after each attack: `relearn` (relearned on
    `train_on`), `q8`, `q4`... (quantized): how much of each door comes back. `parent`: the
    parent's measurement of the same samples, scored against as the candidate was."""
    sets = AnswerSets({k: v for k, v in doors.items() if v}, names)
    models = {f"q{b}": (lambda b=b: quantized(fam, b)) for b in bits}
    if relearn_steps and train_on:
        models["relearn"] = lambda: relearned(fam, train_on, relearn_steps)
    out = {}
    for name, make in models.items():
        for door, hits in sets.measure(make(), parent).items():
            out[f"{name}_{door}_acc"] = sum(hits) / len(hits)
    return out
