"""ADU: approximate domain unlearning on a CLIP classifier (the paper, "ADU").

Samples carry what a CLIP method needs in the plain `Sample` fields:
    question = the image's domain name ("sketch"), answer = its class name ("car").
`forget` holds the images of the domains to forget, `retain` those of the domains to keep;
the classes are every answer seen (forget first, in order of appearance).

Frozen CLIP, fixed template "a photo of a {class}."; trained: deep vision prompts
(`n_tokens` in the first `depth` vision layers, default all but the last: the paper's 9 of
12 scaled to the tiny model's 3), InstaPG (methods/vision_prompts.py) and, for the loss
only, a linear domain classifier on the normalised image features. Loss per
domain-balanced batch:
    CE(kept-domain samples) + forget_weight * CE(forgot-domain samples, uniform)
    + gamma * CE(domain classifier) - lambda_mmd * MMD^2 between domains (DDL)
with a multi-bandwidth Gaussian kernel. Optimiser: the shared loop's AdamW at 1e-2, not the
paper's SGD at 0.0025 (measured forgetting sketch, 150 steps: H 0.82 against SGD's 0.73 with
momentum 0.9; 0.77 in 600 steps).
The artifact is the prompts (+ InstaPG), applied by hooks ("vision_prompts").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from unlearnd.methods.adu import vision_prompts
from unlearnd.methods.shared.interface import (
    Method,
    MethodParams,
    MethodResult,
    ParamError,
    Progress,
)
from unlearnd.methods.shared.loop import frozen_base, train
from unlearnd.models.base import ModelFamily, Sample
from unlearnd.models.clip import TEMPLATE

TRAINING = "adu_training"
HEAD = "unlearnd_adu_domain_head"


class ADUParams(MethodParams):
    steps: int = Field(150, ge=1, le=100_000, description="optimizer steps")
    lr: float = Field(1e-2, gt=0, le=1.0, description="learning rate (AdamW)")
    batch_size: int = Field(32, ge=1, le=1024, description="samples per domain-balanced batch")
    n_tokens: int = Field(8, ge=1, le=64, description="prompt tokens per prompted layer")
    depth: int | None = Field(
        None, ge=1, description="prompted vision layers from the first (default: all but last)"
    )
    use_instapg: bool = Field(True, description="instance-wise prompts (InstaPG)")
    use_ddl: bool = Field(True, description="domain disentangling loss (DDL)")
    # The paper's 30 and 10, scaled by 1/100 (same ratio): at 30/10 the DDL swamps the class
    # losses on the tiny model and every domain falls to chance (measured, docs/benchmarks.md
    # ADU table).
    gamma: float = Field(0.3, ge=0, description="DDL: weight of the domain classifier CE")
    lambda_mmd: float = Field(0.1, ge=0, description="DDL: weight of the MMD^2 (subtracted)")
    forget_weight: float = Field(1.0, ge=0, description="weight of the forget loss")


@dataclass(frozen=True)
class Item:
    """One training image, by its index into the request's images, and its domain."""

    index: int
    domain: str


T = TypeVar("T")  # anything with a `.domain`


def balanced_batches(items: Sequence[T], batch_size: int, seed: int = 0) -> Iterator[list[T]]:
    """Endless batches with the same number of items from every domain present (`.domain`).

    Each domain's items are shuffled and cycled on their own, so a small domain is repeated
    rather than under-represented (ADU's domain-balanced batches).
    """
    by_domain: dict[str, list[T]] = {}
    for s in items:
        by_domain.setdefault(s.domain, []).append(s)
    if not by_domain:
        raise ValueError("balanced_batches needs at least one sample")
    per = batch_size // len(by_domain)
    if per < 1:
        raise ValueError(f"batch_size {batch_size} is smaller than the {len(by_domain)} domains")
    rng = np.random.default_rng(seed)
    orders: dict[str, list[int]] = {d: [] for d in by_domain}
    while True:
        batch = []
        for d, group in by_domain.items():
            while len(orders[d]) < per:
                orders[d].extend(rng.permutation(len(group)).tolist())
            batch.extend(group[i] for i in orders[d][:per])
            del orders[d][:per]
        yield batch


def mmd2(feats: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
    """Mean squared MMD over the pairs of domains present (Gaussian kernels, 5 bandwidths)."""
    sq = (feats * feats).sum(-1)
    d2 = (sq[:, None] + sq[None, :] - 2 * feats @ feats.T).clamp(min=0)
    base = d2.detach().mean().clamp(min=1e-6)  # bandwidths relative to the batch's spread
    kernel = torch.stack([torch.exp(-d2 / (base * m)) for m in (0.25, 0.5, 1.0, 2.0, 4.0)]).sum(0)
    present = domains.unique().tolist()
    total, pairs = feats.new_zeros(()), 0
    for i, a in enumerate(present):
        for b in present[i + 1 :]:
            ma, mb = domains == a, domains == b
            total = total + (
                kernel[ma][:, ma].mean() + kernel[mb][:, mb].mean() - 2 * kernel[ma][:, mb].mean()
            )
            pairs += 1
    return total / max(pairs, 1)


class _Data:
    """The request's images as pixels once, with class, domain and forget flag per index."""

    def __init__(self, fam: ModelFamily, forget: list[Sample], retain: list[Sample]):
        items = [*forget, *retain]
        if not forget or not retain or any(s.image is None for s in items):
            raise ParamError("method 'adu' needs images in both the forget and retain sets")
        self.classes = list(dict.fromkeys(s.answer for s in items))
        self.domains = list(dict.fromkeys(s.question for s in items))
        both = {s.question for s in forget} & {s.question for s in retain}
        if both:
            raise ParamError(f"method 'adu': domains both forgotten and kept: {sorted(both)}")
        if len(self.classes) < 2:
            raise ParamError("method 'adu' needs at least two classes (the samples' answers)")
        self.samples = [Item(i, s.question) for i, s in enumerate(items)]
        self.pixels = fam._pixels([s.image for s in items])
        labels = [self.classes.index(s.answer) for s in items]
        self.label = torch.tensor(labels, device=fam.device)
        domains = [self.domains.index(s.question) for s in items]
        self.domain = torch.tensor(domains, device=fam.device)
        self.forget = torch.arange(len(items), device=fam.device) < len(forget)


class ADU(Method):
    name = "adu"
    summary = "forget image domains of a CLIP classifier: deep vision prompts + InstaPG + DDL"
    families = ("clip",)
    Params = ADUParams
    appliers = {"vision_prompts": vision_prompts.apply}

    def fit(
        self,
        fam: ModelFamily,
        forget: list[Sample],
        retain: list[Sample],
        params: MethodParams,
        progress: Progress | None = None,
    ) -> MethodResult:
        assert isinstance(params, ADUParams)
        self.check_family(fam)
        n_layers = len(vision_prompts.layers(fam))
        depth = params.depth or max(1, n_layers - 1)
        if depth > n_layers:
            raise ParamError(
                f"method 'adu': params.depth: {depth} exceeds the model's {n_layers} vision layers"
            )
        data = _Data(fam, forget, retain)
        with torch.no_grad():
            text = F.normalize(
                fam.text_embeds([TEMPLATE.format(c) for c in data.classes]).float(), dim=-1
            )
        scale = fam.model.logit_scale.exp().detach().float()
        gen = torch.Generator().manual_seed(params.seed)
        init = vision_prompts.new_tensors(fam, params.n_tokens, depth, params.use_instapg, gen)
        batches = balanced_batches(data.samples, params.batch_size, params.seed)

        def step_loss(_: int) -> torch.Tensor:
            idx = torch.tensor([s.index for s in next(batches)], device=fam.device)
            out = fam.model.get_image_features(pixel_values=data.pixels[idx])
            feats = F.normalize(getattr(out, "pooler_output", out).float(), dim=-1)
            logits = scale * feats @ text.T
            gone = data.forget[idx]
            loss = feats.new_zeros(())
            if (~gone).any():
                loss = loss + F.cross_entropy(logits[~gone], data.label[idx][~gone])
            if gone.any():  # CE toward the uniform distribution over the classes
                uniform = -logits[gone].log_softmax(-1).mean(-1).mean()
                loss = loss + params.forget_weight * uniform
            if params.use_ddl:
                dom = data.domain[idx]
                domain_ce = F.cross_entropy(fam.model.get_submodule(HEAD)(feats), dom)
                loss = loss + params.gamma * domain_ce - params.lambda_mmd * mmd2(feats, dom)
            return loss

        with frozen_base(fam):
            modules = vision_prompts.add(fam, TRAINING, init, trainable=True)
            if params.use_ddl:
                head = torch.nn.Linear(text.shape[1], len(data.domains))
                with torch.no_grad():  # seeded like the prompts, not by the global RNG
                    head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * 0.1)
                    head.bias.zero_()
                fam.model.add_module(HEAD, head.to(fam.device))
            try:
                losses = train(fam, step_loss, params, progress)
            except BaseException:
                vision_prompts.remove(fam, TRAINING)
                raise
            finally:
                if params.use_ddl:
                    delattr(fam.model, HEAD)
        tensors, config = vision_prompts.export(modules)
        # Keep the result attached as inference buffers: out of parameters and fingerprint.
        vision_prompts.remove(fam, TRAINING)
        vision_prompts.apply(fam, tensors, config, TRAINING)
        config.update(classes=data.classes, forgotten=sorted({s.question for s in forget}))
        return MethodResult("vision_prompts", tensors, config, losses)
