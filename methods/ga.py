"""GA: gradient ascent on the forget set through a LoRA: minimise -NLL(D_f).

Unbounded ascent diverges, so steps are few by default, gradients are clipped, and the
per-token NLL is capped (`nll_cap`): past it a token is forgotten enough and stops pulling.
"""

from __future__ import annotations

from pydantic import Field

from unlearnd.methods.shared import lora
from unlearnd.methods.shared.interface import MethodResult, Progress
from unlearnd.methods.shared.loop import Batches
from unlearnd.methods.shared.objectives import capped_ascent_loss, fit_lora
from unlearnd.models.base import ModelFamily, Sample


class GAParams(lora.LoraParams):
    steps: int = Field(20, ge=1, le=100_000, description="optimizer steps")
    lr: float = Field(5e-4, gt=0, le=1.0, description="learning rate")
    nll_cap: float = Field(20.0, gt=0, description="per-token NLL beyond which ascent stops")


class GA(lora.LoraMethod):
    name = "ga"
    summary = "gradient ascent on the forget set (LoRA), capped per token"
    Params = GAParams

    def fit(
        self,
        fam: ModelFamily,
        forget: list[Sample],
        retain: list[Sample],
        params: GAParams,
        progress: Progress | None = None,
    ) -> MethodResult:
        self.check_family(fam)
        batches = Batches(forget, params.batch_size, params.seed)
        return fit_lora(
            fam,
            params,
            lambda _: capped_ascent_loss(fam, batches.next(), params.nll_cap),
            progress,
        )
