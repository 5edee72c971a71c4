"""NPO: negative preference optimisation on the forget set (LoRA).

L = (2 / beta) * E_{D_f}[ log(1 + (pi_theta(y|x) / pi_0(y|x)) ^ beta) ] + alpha * NLL(D_r),
with pi(y|x) the probability of the whole answer. Unlike GA the pull fades as the answer
becomes unlikely, so it does not need a cap. pi_0 is computed on the fly (`reference`).
"""

from __future__ import annotations

import torch.nn.functional as F
from pydantic import Field

from unlearnd.methods.shared import lora
from unlearnd.methods.shared.interface import MethodResult, Progress
from unlearnd.methods.shared.loop import Batches
from unlearnd.methods.shared.objectives import RetainTerm, fit_lora, reference, sequence_logprob
from unlearnd.models.base import ModelFamily, Sample


class NPOParams(lora.LoraParams):
    steps: int = Field(30, ge=1, le=100_000, description="optimizer steps")
    lr: float = Field(1e-3, gt=0, le=1.0, description="learning rate")
    beta: float = Field(0.1, gt=0, description="NPO inverse temperature")
    alpha: float = Field(1.0, ge=0, description="weight of the retain NLL (0: forget term only)")


class NPO(lora.LoraMethod):
    name = "npo"
    summary = "negative preference optimisation against the frozen model (+ retain NLL; LoRA)"
    Params = NPOParams

    def fit(
        self,
        fam: ModelFamily,
        forget: list[Sample],
        retain: list[Sample],
        params: NPOParams,
        progress: Progress | None = None,
    ) -> MethodResult:
        self.check_family(fam)
        forget_batches = Batches(forget, params.batch_size, params.seed)
        keep = RetainTerm(retain, params.alpha, params.batch_size, params.seed)

        def step_loss(_: int):
            batch = forget_batches.next()
            with reference(fam):
                ref = sequence_logprob(fam, batch)
            ratio = sequence_logprob(fam, batch) - ref  # log(pi_theta / pi_0)
            npo = (2 / params.beta) * F.softplus(params.beta * ratio).mean()
            return npo + keep(fam)

        return fit_lora(fam, params, step_loss, progress)
