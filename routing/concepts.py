"""Concept decomposition: what a request is about, as a few vectors per modality.

Each forget sample gives a visual concept vector (the pooled vision-tower features its image
produces, which a projector delta does not move) and a textual one (the language model's
mean hidden state over its instruction); the request's target name and description add
textual vectors of their own. A request keeps a few prototypes per modality (FAISS k-means).

Vectors are stored raw; comparisons centre them on the deployment's background (the mean
over its retain and general pools) and normalise. Measured on the world model: raw pooled
features of any two portraits are nearly parallel, while centred ones give 0.94 for two
pictures of one person and 0.0 on average for two people.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np
import torch

from unlearnd.models.base import ModelFamily, Sample

BATCH = 32


@dataclass(frozen=True)
class Centers:
    """The background the concept vectors are centred on."""

    visual: np.ndarray
    textual: np.ndarray

    @classmethod
    def from_samples(cls, fam: ModelFamily, samples: Sequence[Sample]) -> Centers:
        visual, textual = embed(fam, samples)
        if not len(visual) or not len(textual):
            raise ValueError("the background needs samples with images and questions")
        return cls(visual.mean(0), textual.mean(0))

    def unit(self, x: np.ndarray, modality: str) -> np.ndarray:
        """Rows centred on the background and scaled to unit length."""
        return unit_rows(np.atleast_2d(x).astype(np.float32) - getattr(self, modality))


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero (never NaN)."""
    x = np.atleast_2d(x).astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@torch.no_grad()
def embed(fam: ModelFamily, samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
    """(visual [n_images, dv], textual [n, dt]): raw vectors of the samples' images and
    instructions (samples without an image add no visual vector)."""
    images = [s.image for s in samples if s.image is not None]
    texts = [s.question for s in samples]
    visual = [fam.vision_features(images[i : i + BATCH]) for i in range(0, len(images), BATCH)]
    textual = [fam.text_embedding(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)]
    return _stack(visual), _stack(textual)


def _stack(parts: list[torch.Tensor]) -> np.ndarray:
    if not parts:
        return np.zeros((0, 0), np.float32)
    return torch.cat(parts).numpy().astype(np.float32)


def prototypes(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """At most `k` rows that stand for `x`: its distinct rows when there are few enough,
    else FAISS k-means centroids."""
    if len(x) == 0:
        return x
    distinct = np.unique(x, axis=0)
    if len(distinct) <= k:
        return distinct
    km = faiss.Kmeans(x.shape[1], k, niter=20, seed=seed, verbose=False, min_points_per_centroid=1)
    km.train(np.ascontiguousarray(x, dtype=np.float32))
    return km.centroids.astype(np.float32)


def decompose(
    fam: ModelFamily,
    samples: Sequence[Sample],
    target_texts: Sequence[str] = (),
    k: int = 4,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(visual prototypes, textual prototypes) of a request, raw. Textual prototypes are
    taken per distinct instruction up to 4k, so each kind of question keeps its own vector;
    the target's texts are added as they are."""
    visual, textual = embed(fam, samples)
    extra = _stack([fam.text_embedding(list(target_texts))]) if target_texts else textual[:0]
    textual = prototypes(textual, 4 * k, seed)
    if len(extra):
        textual = np.concatenate([textual, extra]) if len(textual) else extra
    return prototypes(visual, k, seed), textual
