"""VL-Eraser: distil the forget knowledge into a null-space FFN branch, then subtract it.

The reading implemented (the paper, "VL-Eraser"), with the choices it leaves open as params:
1. Null space per LM block. The retain samples run forward only; each one's FFN input is
   mean-pooled over its image-token positions (a text-only sample pools all its tokens):
   H_r [d, n]. C = H_r H_r^T; U0 = the eigenvectors of C whose eigenvalue is below
   `threshold` * the largest; P = U0 U0^T, so P H_r ~ 0. `retain_tokens="all"` builds C from
   every real token's state instead (one column per token).
2. Distil on D_f only. Beside each FFN a low-rank branch delta(h) = s * B A P h
   (s = lora_alpha / r) is trained with
   lambda * mean over blocks and real tokens of (1 - cos(FFN(h), delta(h)))
   + (1 - lambda) * NLL(D_f) through the model with the branches added.
3. Delete. The branch is stored with P folded in (A P, B) and applied negated,
   FFN(h) - strength * s * B A P h, as a parallel branch (methods/ffn_branch.py, apply
   "ffn_branch"): exact, nothing merged. Not a PEFT LoRA: the branch maps the FFN's input to
   its output, which no single linear layer does, and P lives in the FFN's input space, so an
   exact merge into down_proj does not exist.
Magnitude (`calibrate`, default on): cosine fixes only the branch's direction and the NLL on
facts the model already knows gives almost no gradient, so the branch stays tiny. Measured
on the world fixture: uncalibrated, it is ~1% of the FFN output and subtracting it changes
no answer. Calibrated, each block's B is rescaled so the branch's mean norm on D_f equals
the FFN's; `strength` multiplies the subtraction.
Measured there too: forget people's image states lie in the retain null space as much as
held-out retain people's (~20% of their norm at 2e-2), so the projector alone does not make
the subtraction selective (see docs/benchmarks.md, Methods).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from pydantic import Field

from unlearnd.methods.shared.interface import (
    Method,
    MethodParams,
    MethodResult,
    ParamError,
    Progress,
)
from unlearnd.methods.shared.loop import Batches, train
from unlearnd.methods.vl_eraser import ffn_branch
from unlearnd.models.base import ModelFamily, Sample

TRAINING = "vl_eraser_training"


class VLEraserParams(MethodParams):
    steps: int = Field(30, ge=1, le=100_000, description="optimizer steps")
    lr: float = Field(1e-3, gt=0, le=1.0, description="learning rate")
    lora_rank: int = Field(8, ge=1, le=256, description="rank r of the FFN branch")
    lora_alpha: float = Field(16.0, gt=0, description="branch alpha (scale = alpha / r)")
    threshold: float = Field(
        2e-2, gt=0, lt=1, description="null space: eigenvalues below threshold * the largest"
    )
    lam: float = Field(0.5, ge=0, le=1, description="weight of the distillation (1 - lam: NLL)")
    strength: float = Field(1.0, gt=0, description="multiplier of the subtracted branch")
    retain_samples: int = Field(512, ge=1, description="retain samples for the null space")
    retain_tokens: str = Field(
        "image",
        pattern=r"^(image|all)$",
        description="null space from: image = image-token states mean-pooled per sample "
        "(the paper); all = every real token's state",
    )
    calibrate: bool = Field(
        True,
        description="rescale each block's branch so its mean norm on D_f equals the FFN's "
        "(cosine fixes only the direction)",
    )


class DistilledBranch(ffn_branch.FfnBranch):
    """The training form: A is free, P is applied on the fly, and each forward records its
    distillation term 1 - cos(FFN(h), delta(h)) and the summed norms of both over the real
    tokens (`seen`: the current batch's inputs, see `model_inputs`)."""

    def __init__(self, proj: torch.Tensor, rank: int, scale: float, seen: dict):
        d = proj.shape[0]
        a = torch.empty(rank, d)
        torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # PEFT's LoRA A init
        super().__init__(a, torch.zeros(d, rank), scale, trainable=True)
        self.register_buffer("proj", proj.float(), persistent=False)
        self.seen = seen
        self.distill = torch.zeros(())
        self.norms = torch.zeros(2)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a @ self.proj, self.b

    def forward(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        delta = self.delta(x)
        target = out.detach().float()
        m = self.seen["attention_mask"].to(target.dtype)
        cos = F.cosine_similarity(target, delta.float(), dim=-1)
        self.distill = ((1 - cos) * m).sum() / m.sum().clamp(min=1)
        norms = torch.stack([target.norm(dim=-1), delta.detach().float().norm(dim=-1)])
        self.norms = (norms * m).sum((1, 2))
        return out + delta


@contextlib.contextmanager
def model_inputs(fam: ModelFamily) -> Iterator[dict]:
    """The input_ids and attention_mask of the latest forward of fam.model."""
    seen: dict = {}

    def grab(_module, _args, kwargs):
        seen.update(input_ids=kwargs.get("input_ids"), attention_mask=kwargs.get("attention_mask"))

    handle = fam.model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


def token_mask(fam: ModelFamily, seen: dict, tokens: str) -> torch.Tensor:
    """[B, L] bool: the real tokens, or with tokens="image" the image tokens (a row without an
    image keeps all its real tokens: a text-only retain sample still counts)."""
    real = seen["attention_mask"].bool()
    image_id = getattr(fam, "image_token_id", None)
    if tokens == "all" or image_id is None:
        return real
    image = real & (seen["input_ids"] == image_id)
    return torch.where(image.any(-1, keepdim=True), image, real)


@torch.no_grad()
def retain_covariance(
    fam: ModelFamily, retain: list[Sample], batch_size: int, tokens: str
) -> list[torch.Tensor]:
    """Per block, C = H_r H_r^T of the FFN inputs (float32 [d, d], on the CPU: 2.1 GB for the
    32 blocks of a 7B LLaVA, half of float64's 4.3 GB; each block's eigh runs in float64).
    tokens="image": one column per sample, its image-token states mean-pooled; "all": one
    column per real token."""
    ffns = fam.ffn_modules()
    inputs: dict[int, torch.Tensor] = {}
    hooks = [
        ffn.register_forward_pre_hook(lambda _m, args, i=i: inputs.__setitem__(i, args[0]))
        for i, ffn in enumerate(ffns)
    ]
    covs: list[torch.Tensor] = [torch.zeros(()) for _ in ffns]
    try:
        with model_inputs(fam) as seen:
            for start in range(0, len(retain), batch_size):
                fam.answer_logits(retain[start : start + batch_size])
                use = token_mask(fam, seen, tokens)
                for i in range(len(ffns)):
                    h = inputs[i].float()
                    if tokens == "image":
                        w = use[..., None].float()
                        cols = (h * w).sum(1) / w.sum(1).clamp(min=1)
                    else:
                        cols = h[use]
                    covs[i] = covs[i] + (cols.T @ cols).cpu()
    finally:
        for handle in hooks:
            handle.remove()
    return covs


def null_space_projector(cov: torch.Tensor, threshold: float) -> torch.Tensor:
    """P = U0 U0^T over the eigenvectors of C below threshold * its largest eigenvalue."""
    values, vectors = torch.linalg.eigh(cov.double())  # C is symmetric PSD: eigh = SVD
    u0 = vectors[:, values < threshold * values.max()]
    if u0.shape[1] == 0:
        raise ParamError(
            f"params.threshold: the retain representations leave no null space at {threshold}"
        )
    return (u0 @ u0.T).float()


@torch.no_grad()
def calibrate(
    fam: ModelFamily, branches: list[DistilledBranch], forget: list[Sample], batch_size: int
) -> None:
    """Scale each branch so its mean output norm on D_f equals its FFN's."""
    sums = torch.zeros(len(branches), 2)
    for start in range(0, len(forget), batch_size):
        fam.answer_logits(forget[start : start + batch_size])
        sums += torch.stack([b.norms.cpu() for b in branches])
    for branch, (ffn_norm, delta_norm) in zip(branches, sums.tolist(), strict=True):
        branch.b.mul_(ffn_norm / max(delta_norm, 1e-12))


class VLEraser(Method):
    name = "vl_eraser"
    summary = "distil D_f into a null-space FFN branch (retain-orthogonal), then subtract it"
    families = ("llava", "qwen2_vl")
    Params = VLEraserParams
    appliers = {"ffn_branch": ffn_branch.apply}

    def fit(
        self,
        fam: ModelFamily,
        forget: list[Sample],
        retain: list[Sample],
        params: VLEraserParams,
        progress: Progress | None = None,
    ) -> MethodResult:
        self.check_family(fam)
        if not retain:
            raise ValueError("vl_eraser needs retain samples to build its null space")
        torch.manual_seed(params.seed)
        pool = Batches(retain, params.retain_samples, params.seed + 1).next()  # a seeded subset
        covs = retain_covariance(fam, pool, params.batch_size, params.retain_tokens)
        projectors = [null_space_projector(c, params.threshold) for c in covs]

        scale = params.lora_alpha / params.lora_rank
        for p in fam.model.parameters():
            p.requires_grad_(False)  # only the branches train
        forget_batches = Batches(forget, params.batch_size, params.seed)
        with model_inputs(fam) as seen:
            branches = [DistilledBranch(P, params.lora_rank, scale, seen) for P in projectors]
            ffn_branch.add(fam, TRAINING, branches)

            def step_loss(_: int) -> torch.Tensor:
                nll = fam.answer_loss(forget_batches.next())
                distill = torch.stack([b.distill for b in branches]).mean()
                return params.lam * distill + (1 - params.lam) * nll

            try:
                losses = train(fam, step_loss, params, progress)
                if params.calibrate:
                    calibrate(fam, branches, forget, params.batch_size)
            finally:
                ffn_branch.remove(fam, TRAINING)
        tensors, config = ffn_branch.export(fam, branches)
        config["scale"] = -params.strength * scale  # subtract what was distilled
        ffn_branch.apply(fam, tensors, config, self.name)
        return MethodResult("ffn_branch", tensors, config, losses)
