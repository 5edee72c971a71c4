"""GradDiff: gradient ascent on the forget set, descent on the retain set (LoRA).

Loss = -NLL(D_f) + alpha * NLL(D_r), the ascent capped per token as in GA.
"""

from __future__ import annotations

from pydantic import Field

from unlearnd.methods.ga import GAParams
from unlearnd.methods.shared import lora
from unlearnd.methods.shared.interface import MethodResult, Progress
from unlearnd.methods.shared.loop import Batches
from unlearnd.methods.shared.objectives import RetainTerm, capped_ascent_loss, fit_lora
from unlearnd.models.base import ModelFamily, Sample


class GradDiffParams(GAParams):
    alpha: float = Field(1.0, ge=0, description="weight of the retain NLL")


class GradDiff(lora.LoraMethod):
    name = "graddiff"
    summary = "gradient ascent on the forget set + NLL on the retain set (LoRA)"
    Params = GradDiffParams

    def fit(
        self,
        fam: ModelFamily,
        forget: list[Sample],
        retain: list[Sample],
        params: GradDiffParams,
        progress: Progress | None = None,
    ) -> MethodResult:
        self.check_family(fam)
        forget_batches = Batches(forget, params.batch_size, params.seed)
        keep = RetainTerm(retain, params.alpha, params.batch_size, params.seed)

        def step_loss(_: int):
            return capped_ascent_loss(fam, forget_batches.next(), params.nll_cap) + keep(fam)

        return fit_lora(fam, params, step_loss, progress)
