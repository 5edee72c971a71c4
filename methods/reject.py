"""REJECT: fine-tune a LoRA so forget queries get a refusal, retain queries their answer.

Loss = NLL(refusal | forget question) + alpha * NLL(answer | retain question).
"""

from __future__ import annotations

from pydantic import Field

from unlearnd.methods.shared import lora
from unlearnd.methods.shared.interface import MethodResult, Progress
from unlearnd.methods.shared.loop import Batches
from unlearnd.methods.shared.objectives import RetainTerm, fit_lora
from unlearnd.models.base import ModelFamily, Sample


class RejectParams(lora.LoraParams):
    refusal: str = Field("i cannot share that.", min_length=1, description="refusal answer")
    alpha: float = Field(1.0, ge=0, description="weight of the retain NLL")


class Reject(lora.LoraMethod):
    name = "reject"
    summary = "fine-tune a LoRA to answer forget queries with a refusal (+ retain NLL)"
    Params = RejectParams

    def fit(
        self,
        fam: ModelFamily,
        forget: list[Sample],
        retain: list[Sample],
        params: RejectParams,
        progress: Progress | None = None,
    ) -> MethodResult:
        self.check_family(fam)
        refusals = [Sample(s.question, params.refusal, s.image) for s in forget]
        forget_batches = Batches(refusals, params.batch_size, params.seed)
        keep = RetainTerm(retain, params.alpha, params.batch_size, params.seed)
        return fit_lora(
            fam, params, lambda _: fam.answer_loss(forget_batches.next()) + keep(fam), progress
        )
