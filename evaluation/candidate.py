"""Scoring a model on sample sets: the numbers the gate compares, candidate against parent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from unlearnd.evaluation import metrics
from unlearnd.models.base import ModelFamily, Sample

MAX_NEW_TOKENS = 12


def answers(
    fam: ModelFamily,
    samples: Sequence[Sample],
    batch_size: int = 32,
    max_new_tokens: int = MAX_NEW_TOKENS,
) -> list[str]:
    """Greedy answers, batched; image and text-only questions go in separate batches (a text
    question padded to an image prompt's length would only cost time)."""
    out: list[str] = [""] * len(samples)
    for with_image in (True, False):
        idx = [i for i, s in enumerate(samples) if (s.image is not None) == with_image]
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            texts = fam.generate([samples[i] for i in chunk], max_new_tokens=max_new_tokens)
            for i, text in zip(chunk, texts, strict=True):
                out[i] = text
    return out


def accuracy(fam: ModelFamily, samples: Sequence[Sample]) -> float:
    """Share of samples whose answer matches the reference (normalised); 0 for no samples."""
    if not samples:
        return 0.0
    return metrics.answer_accuracy(answers(fam, samples), [s.answer for s in samples])


def score(fam: ModelFamily, sets: dict[str, Sequence[Sample]]) -> dict[str, float]:
    """`{name}_acc` for every non-empty set, e.g. forget / retain / general."""
    return {f"{name}_acc": accuracy(fam, samples) for name, samples in sets.items() if samples}


@dataclass(frozen=True)
class AnswerSets:
    """What a vision-language job is scored on: named sets of samples, scored by answer."""

    sets: dict[str, Sequence[Sample]]

    def score(self, model) -> dict[str, float]:
        return score(model, self.sets)
