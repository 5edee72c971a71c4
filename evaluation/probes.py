"""Leak probes and the relearning check: does a deletion hold beyond its own forget set?

A probe asks about the forgotten facts in a way the method never trained on: by name with no
image (text-only), on a portrait never seen in training (unseen), or in other words
(paraphrase). Its score is the leak rate: the share of answers that still contain the fact.
The relearning check fine-tunes a copy for a few steps on part of the forget set and
measures the leak on the rest: knowledge that was only hidden comes back quickly.

Probes work on any model with `generate` (a family or a RoutedModel); the world supplies
the samples (`world_probe_sets`), a real deployment would supply its own.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

from unlearnd.evaluation import metrics
from unlearnd.evaluation.candidate import accuracy
from unlearnd.methods import lora
from unlearnd.methods.training import Batches, train
from unlearnd.models.base import ModelFamily, Sample

# Probe name -> the world's question set for it.
WORLD_KINDS = {"text": "textual_qa", "unseen": "unseen_qa", "paraphrase": "paraphrase_qa"}


def leak(model, samples: Sequence[Sample]) -> float:
    """Share of answers that contain the sample's `answer` (the fact); 0 for no samples."""
    return accuracy(model, samples)


def world_probe_sets(
    world, pids: Iterable[int], probes: Sequence[str] = tuple(WORLD_KINDS)
) -> dict[str, list[Sample]]:
    """{"leak_<probe>": samples} about the people `pids`, each answer being the bare fact
    (a refusal or another person's fact does not contain it)."""
    pids = list(pids)
    out = {}
    for probe in probes:
        items = world.items(WORLD_KINDS[probe], pids) if pids else []
        out[f"leak_{probe}"] = [_fact_sample(world, it) for it in items]
    return out


def _fact_sample(world, item) -> Sample:
    return Sample(item.question, item.fact, world.image(item.image) if item.image else None)


def leak_probes(model, sets: dict[str, Sequence[Sample]]) -> dict[str, float]:
    """The leak rate of every non-empty probe set."""
    return {name: leak(model, samples) for name, samples in sets.items() if samples}


def request_probe_sets(world, request) -> dict[str, list[Sample]]:
    """The pipeline's probes for a deletion request: text-only and unseen portrait about the
    world people it names ({} when not serving the world). Paraphrase is left out: the world
    model itself answers few paraphrases (measured 0.18 on the base), so it says little."""
    if world is None:
        return {}
    named = people_named(world, [request.target.name, *(s.answer for s in request.forget)])
    return world_probe_sets(world, named, ("text", "unseen"))


def people_named(world, texts: Iterable[str]) -> list[int]:
    """The world people whose full name appears in any of the texts (a request's target name,
    its forget answers)."""
    texts = [metrics.normalise(t) for t in texts]
    return [
        p.pid
        for p in world.people
        if any(metrics.answer_match(t, p.name) for t in texts)  # whole-word name match
    ]


def world_relearn_sets(world, pids: Iterable[int]) -> tuple[list[Sample], list[Sample]]:
    """(relearn on, measure on) for the people `pids`: the attacker trains on a deletion
    request's forget samples (world.forget_items) other than the seen_qa questions, whose
    facts are then measured (answers: the bare facts)."""
    pids = list(pids)
    measured = world.items("seen_qa", list(pids))
    train_on = [
        world.sample(it) for pid in pids for it in world.forget_items(pid) if it not in measured
    ]
    return train_on, [_fact_sample(world, it) for it in measured]


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
