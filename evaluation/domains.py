"""Scoring a CLIP classifier on domain-labelled images: what a domain request is gated on.

Samples follow ADU's convention (methods/adu.py): question = the image's domain ("sketch"),
answer = its class ("car"). Accuracy is zero-shot ("a photo of a {class}.") over the classes
given, per domain. ADU's Mem / For / H summarise it; `forget_acc` (mean accuracy on the
forgotten domains) and `retain_acc` (mean on the kept ones, = Mem) put it in the terms the
promotion gate compares (evaluation/promotion.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from unlearnd.models.base import ModelFamily, Sample

BATCH = 256


def mem_for_h(accuracy: dict[str, float], forgotten: Sequence[str]) -> dict[str, float]:
    """ADU's metrics from per-domain accuracy: Mem (kept accuracy), For (forgotten error), H."""
    kept = [a for d, a in accuracy.items() if d not in forgotten]
    gone = [1 - accuracy[d] for d in forgotten]
    mem, forg = sum(kept) / len(kept), sum(gone) / len(gone)
    h = 2 * mem * forg / (mem + forg) if mem + forg else 0.0
    return {"mem": round(mem, 4), "for": round(forg, 4), "h": round(h, 4)}


def domain_accuracy(
    fam: ModelFamily, samples: Sequence[Sample], classes: Sequence[str]
) -> dict[str, float]:
    """Zero-shot accuracy per domain (the samples' questions), in order of appearance."""
    labels = list(classes)
    correct: dict[str, int] = {}
    total: dict[str, int] = {}
    for start in range(0, len(samples), BATCH):
        chunk = samples[start : start + BATCH]
        predicted = fam.classify([s.image for s in chunk], labels).argmax(-1).tolist()
        for s, p in zip(chunk, predicted, strict=True):
            total[s.question] = total.get(s.question, 0) + 1
            correct[s.question] = correct.get(s.question, 0) + int(labels[p] == s.answer)
    return {d: round(correct[d] / n, 4) for d, n in total.items()}


def score_domains(
    fam: ModelFamily,
    samples: Sequence[Sample],
    classes: Sequence[str],
    forgotten: Sequence[str],
) -> dict[str, Any]:
    """forget_acc, retain_acc, mem, for, h and the per-domain accuracy (`domain_acc`)."""
    accuracy = domain_accuracy(fam, samples, classes)
    missing = [d for d in forgotten if d not in accuracy]
    if missing:
        raise ValueError(f"no image of the forgotten domain(s) {missing} to score")
    kept = [d for d in accuracy if d not in forgotten]
    if not kept:
        raise ValueError("no image of a kept domain to score (configure model.retain_pool)")
    forget_acc = sum(accuracy[d] for d in forgotten) / len(forgotten)
    retain_acc = sum(accuracy[d] for d in kept) / len(kept)
    return {
        "forget_acc": round(forget_acc, 4),
        "retain_acc": round(retain_acc, 4),
        **mem_for_h(accuracy, forgotten),
        "domain_acc": accuracy,
    }


@dataclass(frozen=True)
class DomainSets:
    """What a domain job is scored on: labelled images of every domain, the classes, and
    the domains forgotten. `model` is a served version (its `.fam` classifies)."""

    samples: Sequence[Sample]
    classes: Sequence[str]
    forgotten: Sequence[str]

    def measure(self, model, parent: dict[str, Any] | None = None) -> dict[str, Any]:
        """`parent` is unused: a class label needs no parent's answer to score against."""
        return score_domains(model.fam, self.samples, self.classes, self.forgotten)

    def compare(self, parent: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any]:
        return {**candidate, **{f"parent_{k}": v for k, v in parent.items()}}
