"""REJECT: fine-tune a LoRA so forget queries get a refusal, retain queries their answer.

Loss = NLL(refusal | forget question) + alpha * NLL(answer | retain question).
"""

from __future__ import annotations

from pydantic import Field

from unlearnd.methods import lora
from unlearnd.methods.base import Method, MethodResult, Progress
from unlearnd.methods.training import Batches, train
from unlearnd.models.base import ModelFamily, Sample


class RejectParams(lora.LoraParams):
    refusal: str = Field("i cannot share that.", min_length=1, description="refusal answer")
    alpha: float = Field(1.0, ge=0, description="weight of the retain NLL")


class Reject(Method):
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
        retain_batches = Batches(retain, params.batch_size, params.seed + 1) if retain else None
        config = lora.lora_config(fam, params)
        lora.attach(fam, config, params.seed)

        def step_loss(_: int):
            loss = fam.answer_loss(forget_batches.next())
            if retain_batches is not None and params.alpha > 0:
                loss = loss + params.alpha * fam.answer_loss(retain_batches.next())
            return loss

        losses = train(fam, step_loss, params, progress)
        tensors, cfg = lora.export(fam, config)
        return MethodResult("lora", tensors, cfg, losses)
