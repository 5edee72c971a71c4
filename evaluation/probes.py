"""Leak probes and the relearning check: does a deletion hold beyond its own forget set?

A probe asks about the forgotten facts in a way the method never trained on: by name with no
image (text-only), on a portrait never seen in training (unseen), or in other words
(paraphrase). Its score is the leak rate: the share of answers that still contain the fact.
The relearning check fine-tunes a copy for a few steps on part of the forget set and
measures the leak on the rest: knowledge that was only hidden comes back quickly.

Probes work on any model with `generate` (a family or a served version). A deployment
supplies its own probe sets per target (`[model] probe_sets`, serving/deployment.py); the
demo world's are written by its provider (world/deployment.py).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

from unlearnd.evaluation import metrics
from unlearnd.evaluation.candidate import accuracy
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


def relearn(
    fam: ModelFamily,
    train_on: Sequence[Sample],
    measure_on: Sequence[Sample],
    steps: int = 10,
    lr: float = 3e-3,
    batch_size: int = 8,
) -> dict[str, float]:
    """Leak on `measure_on` before and after `steps` NLL steps on `train_on`, on a copy of
    `fam` (the served weights are never touched). `measure_on` answers are the facts."""
    before = leak(fam, measure_on)
    attacked = copy.deepcopy(fam)
    params = lora.LoraParams(steps=steps, lr=lr, batch_size=batch_size, target="blocks")
    # A new adapter beside any the version carries; only it trains.
    lora.attach(attacked, lora.lora_config(attacked, params), params.seed, name="relearn")
    batches = Batches(list(train_on), params.batch_size, params.seed)
    train(attacked, lambda _: attacked.answer_loss(batches.next()), params)
    return {"relearn_before": before, "relearn_after": leak(attacked, measure_on)}
