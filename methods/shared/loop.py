"""The one training loop every gradient method uses.

Seeded sampling, AdamW over the trainable parameters only, gradient accumulation, gradient
clipping, bf16 autocast on CUDA, a progress callback, and a stop when the loss is no longer
finite (gradient ascent diverges if run long).
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import torch

from unlearnd.methods.shared.interface import MethodParams, Progress
from unlearnd.models.base import ModelFamily

T = TypeVar("T")


@contextlib.contextmanager
def frozen_base(fam: ModelFamily) -> Iterator[None]:
    """Every base weight out of the optimiser while an external module trains (ADU's
    prompts, CAGUL's rewriter); their requires_grad flags restored after."""
    flags = {p: p.requires_grad for p in fam.model.parameters()}
    for p in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)


class Batches:
    """Endless seeded shuffled mini-batches over a list (reshuffled every pass)."""

    def __init__(self, items: Sequence[T], batch_size: int, seed: int):
        if not items:
            raise ValueError("cannot draw batches from an empty set")
        self.items = list(items)
        self.batch_size = min(batch_size, len(self.items))
        self.rng = random.Random(seed)
        self.order: list[int] = []

    def next(self) -> list[T]:
        if len(self.order) < self.batch_size:
            fresh = list(range(len(self.items)))
            self.rng.shuffle(fresh)
            self.order.extend(fresh)
        picked, self.order = self.order[: self.batch_size], self.order[self.batch_size :]
        return [self.items[i] for i in picked]


def autocast(fam: ModelFamily) -> contextlib.AbstractContextManager:
    if fam.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train(
    fam: ModelFamily,
    step_loss: Callable[[int], torch.Tensor],
    params: MethodParams,
    progress: Progress | None = None,
) -> list[float]:
    """Run `params.steps` optimizer steps; `step_loss(micro_step)` returns one micro-batch loss.

    Only parameters with requires_grad train. Returns the loss of every optimizer step.
    """
    torch.manual_seed(params.seed)
    trainable = [p for p in fam.model.parameters() if p.requires_grad]
    if not trainable:
        raise RuntimeError("no trainable parameters: attach an adapter before training")
    optim = torch.optim.AdamW(trainable, lr=params.lr, weight_decay=0.0)
    fam.model.train()
    losses: list[float] = []
    micro = 0
    try:
        for step in range(params.steps):
            optim.zero_grad(set_to_none=True)
            total = 0.0
            for _ in range(params.grad_accum):
                with autocast(fam):
                    loss = step_loss(micro) / params.grad_accum
                loss.backward()
                total += float(loss.detach())
                micro += 1
            if not math.isfinite(total):
                break  # diverged: keep the last finite weights
            torch.nn.utils.clip_grad_norm_(trainable, params.max_grad_norm)
            optim.step()
            losses.append(total)
            if progress:
                progress(step + 1, params.steps, total)
    finally:
        fam.model.eval()
    return losses
