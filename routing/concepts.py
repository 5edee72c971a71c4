"""Concept decomposition: what a request is about, as a few vectors per modality.

Each forget sample gives a visual concept vector and a textual one (the language model's
mean hidden state over its instruction); the request's target name and description add
textual vectors of their own. A request keeps a few prototypes per modality (FAISS k-means).

The visual vector is, by `routing.visual_vector`:
- "vision_tower" (default): the pooled vision-tower features of the image, which a projector
  delta does not move. Right where an image's look is the concept (a person's face).
- "answer_distribution": the model's probabilities for the first token of its answer, given
  the image and the question: what it is about to say. Right where the concept is an object
  class shown in many styles: measured on PACS, pooled tower features group pictures by style
  more than by object. Only the forget samples the model still answers (their answer's first
  token is its top choice) make prototypes: a giraffe it calls a horse says "horse", and
  would route every horse. A CLIP model has no answer; it always uses its image embedding.

Vectors are stored raw; comparisons centre them on the deployment's background (the mean
over its retain and general pools; answer distributions over the retain pool alone, when
there is one: style answers in the mean would make every class answer look alike) and
normalise. Measured on the world model: raw pooled features of any two portraits are nearly
parallel, while centred ones give 0.94 for two pictures of one person and 0.0 on average for
two people.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np
import torch

from unlearnd.models.base import ModelFamily, Sample

BATCH = 32
VISUAL_VECTORS = ("vision_tower", "answer_distribution")


@dataclass(frozen=True)
class Centers:
    """The background the concept vectors are centred on."""

    visual: np.ndarray | None  # None: the background has no images (a text-only deployment)
    textual: np.ndarray
    visual_vector: str = "vision_tower"  # what `visual` is a mean of (VISUAL_VECTORS)

    @classmethod
    def from_samples(
        cls,
        fam: ModelFamily,
        samples: Sequence[Sample],
        visual_vector: str = "vision_tower",
        visual_samples: Sequence[Sample] | None = None,
    ) -> Centers:
        """Means of `samples`' vectors (the visual one over `visual_samples` when given)."""
        visual, textual = embed(fam, samples, visual_vector)
        if visual_samples is not None:
            visual, _ = embed(fam, visual_samples, visual_vector)
        if not len(textual):
            raise ValueError("the routing background needs questions (retain or general pool)")
        return cls(visual.mean(0) if len(visual) else None, textual.mean(0), visual_vector)

    def unit(self, x: np.ndarray, modality: str) -> np.ndarray:
        """Rows centred on the background and scaled to unit length."""
        center = getattr(self, modality)
        if center is None:
            raise ValueError(
                "an image cannot be routed: the deployment's retain and general pools have no "
                "images to centre the image door on (add image rows to model.retain_pool)"
            )
        return unit_rows(np.atleast_2d(x).astype(np.float32) - center)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero (never NaN)."""
    x = np.atleast_2d(x).astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@torch.no_grad()
def visual_vectors(fam: ModelFamily, samples: Sequence[Sample], kind: str) -> torch.Tensor:
    """The visual concept vector of each sample (each has an image), by `kind`."""
    if kind not in VISUAL_VECTORS:
        raise ValueError(f"visual vector must be one of {VISUAL_VECTORS}, not {kind!r}")
    if kind == "answer_distribution" and fam.generates_text:
        return fam.answer_distribution(list(samples))
    return fam.vision_features([s.image for s in samples])


def visual_rows(fam: ModelFamily, seen: Sequence[Sample], kind: str) -> np.ndarray:
    """The raw visual vectors of samples that all have an image, batched."""
    return _stack(
        [visual_vectors(fam, seen[i : i + BATCH], kind) for i in range(0, len(seen), BATCH)]
    )


@torch.no_grad()
def embed(
    fam: ModelFamily, samples: Sequence[Sample], visual_vector: str = "vision_tower"
) -> tuple[np.ndarray, np.ndarray]:
    """(visual [n_images, dv], textual [n, dt]): raw vectors of the samples' images and
    instructions (samples without an image add no visual vector)."""
    seen = [s for s in samples if s.image is not None]
    texts = [s.question for s in samples]
    textual = [fam.text_embedding(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)]
    return visual_rows(fam, seen, visual_vector), _stack(textual)


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


@torch.no_grad()
def still_said(fam: ModelFamily, samples: Sequence[Sample], dist: np.ndarray) -> np.ndarray:
    """Per sample: is its answer's first token the model's top choice (`dist`: the samples'
    answer distributions)?"""
    first = np.concatenate([fam.answer_logprobs(list(samples[i : i + BATCH]))[0][:, 0].numpy()
                            for i in range(0, len(samples), BATCH)])  # fmt: skip
    return first >= np.log(dist.max(1)) - 1e-4


@torch.no_grad()
def forget_visual_rows(
    fam: ModelFamily, samples: Sequence[Sample], visual_vector: str = "vision_tower"
) -> np.ndarray:
    """The raw visual vectors that stand for a request's concept (see `concept_rows`)."""
    return concept_rows(fam, samples, visual_vector)[0]


@torch.no_grad()
def concept_rows(
    fam: ModelFamily, samples: Sequence[Sample], visual_vector: str = "vision_tower"
) -> tuple[np.ndarray, list[bytes]]:
    """(rows, images): the raw visual vectors that stand for a request's concept and the
    image (its bytes) each is of. Tower features depend on the image alone: one row per
    distinct image. Answer distributions depend on the question too: one row per sample the
    model still answers (none: every sample)."""
    seen = [s for s in samples if s.image is not None]
    if visual_vector != "answer_distribution" or not fam.generates_text:
        seen = list({s.image.tobytes(): s for s in seen}.values())
    visual = visual_rows(fam, seen, visual_vector)
    images = [s.image.tobytes() for s in seen]
    if visual_vector == "answer_distribution" and fam.generates_text and len(visual):
        said = still_said(fam, seen, visual)
        if said.any():
            visual, images = visual[said], [im for im, ok in zip(images, said, strict=True) if ok]
    return visual, images


def textual_prototypes(
    fam: ModelFamily,
    samples: Sequence[Sample],
    target_texts: Sequence[str] = (),
    k: int = 4,
    seed: int = 0,
) -> np.ndarray:
    """A request's textual prototypes, raw: per distinct instruction up to 4k, so each kind
    of question keeps its own vector, and the target's texts as they are."""
    _, textual = embed(fam, [Sample(s.question, s.answer) for s in samples])
    extra = _stack([fam.text_embedding(list(target_texts))]) if target_texts else textual[:0]
    textual = prototypes(textual, 4 * k, seed)
    if len(extra):
        textual = np.concatenate([textual, extra]) if len(textual) else extra
    return textual


def decompose(
    fam: ModelFamily,
    samples: Sequence[Sample],
    target_texts: Sequence[str] = (),
    k: int = 4,
    seed: int = 0,
    visual_vector: str = "vision_tower",
) -> tuple[np.ndarray, np.ndarray]:
    """(visual prototypes, textual prototypes) of a request, raw."""
    visual = prototypes(forget_visual_rows(fam, samples, visual_vector), k, seed)
    return visual, textual_prototypes(fam, samples, target_texts, k, seed)
