"""Loss terms and the LoRA fit the gradient methods share (GA, GradDiff, KL, NPO, PUBG).

pi_0, the frozen reference, is the model as it was before this method's adapter: adapters of
earlier versions stay active in it, only the adapter being trained is left out (`reference`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from peft.tuners.lora import LoraLayer

from unlearnd.methods.shared import lora
from unlearnd.methods.shared.interface import MethodResult, Progress
from unlearnd.methods.shared.loop import Batches, train
from unlearnd.models.base import ModelFamily, Sample


def capped_ascent_loss(fam: ModelFamily, batch: list[Sample], cap: float) -> torch.Tensor:
    """-NLL on the answer tokens, each token's NLL capped: past `cap` it stops pulling."""
    logp, mask = fam.answer_logprobs(batch)
    nll = (-logp).clamp(max=cap)
    return -(nll * mask).sum() / mask.sum().clamp(min=1)


def sequence_logprob(fam: ModelFamily, batch: list[Sample]) -> torch.Tensor:
    """log pi(y | x) of each whole answer: [B]."""
    logp, mask = fam.answer_logprobs(batch)
    return (logp * mask).sum(-1)


def token_kl(teacher: torch.Tensor, student: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) per answer token, averaged over the unmasked tokens.

    Both are logits [B, T, V]; the teacher is a constant (computed under `reference`)."""
    p_log = torch.log_softmax(teacher.float(), -1)
    q_log = torch.log_softmax(student.float(), -1)
    kl = (p_log.exp() * (p_log - q_log)).sum(-1)
    return (kl * mask).sum() / mask.sum().clamp(min=1)


@contextlib.contextmanager
def reference(fam: ModelFamily, name: str = lora.ADAPTER) -> Iterator[None]:
    """pi_0 for the duration: adapter `name` drops out of every forward, gradients are off.

    Exact (the adapter is skipped, not scaled or merged) and cheap (no copy of the model).
    PEFT's `set_adapter` would also flip requires_grad, so the active list is swapped directly.
    """
    saved = []
    for module in fam.model.modules():
        if isinstance(module, LoraLayer) and name in module.active_adapters:
            saved.append((module, module.active_adapter))
            module._active_adapter = [a for a in module.active_adapters if a != name]
    try:
        with torch.no_grad():
            yield
    finally:
        for module, active in saved:
            module._active_adapter = active


class RetainTerm:
    """weight * NLL on seeded retain batches; nothing when there is no retain set or weight 0."""

    def __init__(self, retain: list[Sample], weight: float, batch_size: int, seed: int):
        self.weight = weight
        self.batches = Batches(retain, batch_size, seed + 1) if retain and weight > 0 else None

    def __call__(self, fam: ModelFamily) -> torch.Tensor | float:
        if self.batches is None:
            return 0.0
        return self.weight * fam.answer_loss(self.batches.next())


def fit_lora(
    fam: ModelFamily,
    params: lora.LoraParams,
    step_loss: Callable[[int], torch.Tensor],
    progress: Progress | None = None,
    init: dict[str, torch.Tensor] | None = None,
) -> MethodResult:
    """Attach a LoRA (fresh, or from `init`'s exported tensors), train it on `step_loss`,
    leave it attached, export it (PEFT form)."""
    config = lora.lora_config(fam, params)
    lora.attach(fam, config, params.seed, init=init)
    losses = train(fam, step_loss, params, progress)
    tensors, cfg = lora.export(fam, config)
    return MethodResult("lora", tensors, cfg, losses)
