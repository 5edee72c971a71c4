"""KL: gradient ascent on the forget set, the retain outputs held to the frozen model (LoRA).

Loss = -NLL(D_f) + alpha * KL(pi_0 || pi_theta) on D_r, token-level over the answer positions
(full vocabulary). pi_0 is this model with the adapter being trained left out, computed on
the fly on each retain batch (no stored logits: a real vocabulary would not fit).
"""

from __future__ import annotations

from pydantic import Field

from unlearnd.methods.ga import GAParams
from unlearnd.methods.shared import lora
from unlearnd.methods.shared.interface import MethodResult, Progress
from unlearnd.methods.shared.loop import Batches
from unlearnd.methods.shared.objectives import capped_ascent_loss, fit_lora, reference, token_kl
from unlearnd.models.base import ModelFamily, Sample


class KLParams(GAParams):
    alpha: float = Field(1.0, ge=0, description="weight of the retain KL to the frozen model")


class KL(lora.LoraMethod):
    name = "kl"
    summary = "gradient ascent on the forget set + KL to the frozen model on the retain set (LoRA)"
    Params = KLParams

    def fit(
        self,
        fam: ModelFamily,
        forget: list[Sample],
        retain: list[Sample],
        params: KLParams,
        progress: Progress | None = None,
    ) -> MethodResult:
        self.check_family(fam)
        forget_batches = Batches(forget, params.batch_size, params.seed)
        use_retain = bool(retain) and params.alpha > 0
        retain_batches = Batches(retain, params.batch_size, params.seed + 1) if use_retain else None

        def step_loss(_: int):
            loss = capped_ascent_loss(fam, forget_batches.next(), params.nll_cap)
            if retain_batches is not None:
                batch = retain_batches.next()
                with reference(fam):
                    teacher, _ = fam.answer_logits(batch)
                student, mask = fam.answer_logits(batch)
                loss = loss + params.alpha * token_kl(teacher, student, mask)
            return loss

        return fit_lora(fam, params, step_loss, progress)
