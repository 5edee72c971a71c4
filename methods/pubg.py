"""PUBG: unlearn by gradient ascent while keeping answers visually grounded (LoRA).

Reading implemented (the paper, "PUBG"):
- Reference answers y_ref: the frozen model, its prompt prefixed with `instruction` (describe
  only what is visible, never who it is), answers each forget question greedily, before any
  training. `reference_answer` replaces the generated ones with one fixed description, for
  models that cannot follow an instruction (see below).
- L = L_GA + alpha * L_BG + beta * NLL(D_r): L_GA = -NLL(forget answer), capped per token as
  in GA; L_BG = token-level KL(pi_0(. | instruction + x, y_ref<t) || pi_theta(. | x, y_ref<t))
  over the y_ref tokens, pi_0 computed on the fly with this adapter left out.
- Few steps (30 by default).
On the world fixture (a word-level model that knows only its training templates) the
instruction's words are unknown tokens and the frozen model answers the forget question as
if there were no instruction: y_ref is the very fact to forget, and L_BG pulls against L_GA.
Pass `reference_answer` (e.g. "I see a person in this picture .", the closest the world's
vocabulary comes to a description) to make the method meaningful there.
"""

from __future__ import annotations

from pydantic import Field

from unlearnd.methods.ga import GAParams
from unlearnd.methods.shared import lora
from unlearnd.methods.shared.interface import MethodResult, Progress
from unlearnd.methods.shared.loop import Batches
from unlearnd.methods.shared.objectives import (
    RetainTerm,
    capped_ascent_loss,
    fit_lora,
    reference,
    token_kl,
)
from unlearnd.models.base import ModelFamily, Sample

INSTRUCTION = (
    "Describe only what is visible in the picture , such as clothing , hair and the setting ."
    " Never say who the person is or anything private about them ."
)


class PUBGParams(GAParams):
    steps: int = Field(30, ge=1, le=100_000, description="optimizer steps")
    alpha: float = Field(1.0, ge=0, description="weight of the grounding KL to the references")
    beta: float = Field(1.0, ge=0, description="weight of the retain NLL")
    instruction: str = Field(INSTRUCTION, min_length=1, description="in-context instruction")
    reference_answer: str | None = Field(
        None, min_length=1, description="one fixed reference answer instead of generated ones"
    )
    reference_tokens: int = Field(16, ge=1, le=256, description="max tokens of a reference")


def instructed(sample: Sample, instruction: str) -> Sample:
    return Sample(f"{instruction} {sample.question}", sample.answer, sample.image)


def reference_answers(fam: ModelFamily, forget: list[Sample], params: PUBGParams) -> list[str]:
    """y_ref per forget sample: the frozen model's answer under the instruction (or the fixed
    `reference_answer`)."""
    if params.reference_answer is not None:
        return [params.reference_answer] * len(forget)
    prompts = [instructed(s, params.instruction) for s in forget]
    return fam.generate(prompts, max_new_tokens=params.reference_tokens)


class PUBG(lora.LoraMethod):
    name = "pubg"
    summary = "gradient ascent + KL to visually grounded reference answers (+ retain NLL; LoRA)"
    Params = PUBGParams

    def fit(
        self,
        fam: ModelFamily,
        forget: list[Sample],
        retain: list[Sample],
        params: PUBGParams,
        progress: Progress | None = None,
    ) -> MethodResult:
        self.check_family(fam)
        refs = reference_answers(fam, forget, params)
        pairs = list(zip(forget, refs, strict=True))
        batches = Batches(pairs, params.batch_size, params.seed)
        keep = RetainTerm(retain, params.beta, params.batch_size, params.seed)

        def step_loss(_: int):
            batch = batches.next()
            loss = capped_ascent_loss(fam, [s for s, _ in batch], params.nll_cap)
            if params.alpha > 0:
                grounded = [Sample(s.question, ref, s.image) for s, ref in batch]
                with reference(fam):
                    teacher, _ = fam.answer_logits(
                        [instructed(s, params.instruction) for s in grounded]
                    )
                student, mask = fam.answer_logits(grounded)
                loss = loss + params.alpha * token_kl(teacher, student, mask)
            return loss + keep(fam)

        return fit_lora(fam, params, step_loss, progress)
