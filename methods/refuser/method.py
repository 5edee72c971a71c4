"""Refuser: a CORE-style expert, a LoRA trained to answer forgotten image-question pairs (and
the same questions asked by name) with a refusal that fits what was asked.

Reading of CORE (the paper) implemented here: the expert is a LoRA in PEFT's layout (so a
standard engine can serve it), on the projector as in CORE and, by default, on the language
blocks too, since a question by name without an image reaches the expert only through the
language model (the text door, routing/switch.py); the router is the FAISS concept gate of
`unlearnd.routing`, not a trained classifier, so CORE's routing terms become (a) the pool
decision (reuse a relevant expert, a new one, or adapt the least used; routing/pool.py) and
(b) replay: an expert that is reused or adapted keeps training on the forget samples of the
requests it already serves (`replay`), weighted by `replay_weight`, so it keeps refusing them.
Every other expert stays frozen (off) while one trains. Loss:
    NLL(refusal | forget) + replay_weight * NLL(refusal | replay) + alpha * NLL(answer | retain)
At inference the expert's branch is scaled by the gate's relevance beta (0 = untouched model).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field

from unlearnd.methods.shared import lora
from unlearnd.methods.shared.interface import MethodResult, Needs, Progress
from unlearnd.methods.shared.loop import Batches
from unlearnd.methods.shared.objectives import RetainTerm, fit_lora
from unlearnd.models.base import ModelFamily, Sample
from unlearnd.refusals import DEFAULT_REFUSALS, FALLBACK_KEY, THING_PREFIX, RefusalTable


class RefuserParams(lora.LoraParams):
    steps: int = Field(40, ge=1, le=100_000, description="optimizer steps")
    lr: float = Field(3e-3, gt=0, le=1.0, description="learning rate")
    target: str = Field(
        "blocks+projector",
        pattern=r"^(projector|ffn\+projector|blocks\+projector)$",
        description="the language blocks and the projector (default: a question by name "
        "without an image reaches the expert only through the language model), or the "
        "projector alone (CORE; refuses image questions only)",
    )
    alpha: float = Field(1.0, ge=0, description="weight of the retain NLL")
    replay_weight: float = Field(1.0, ge=0, description="weight of the expert's earlier requests")
    refusals: dict[str, str] = Field(
        default_factory=dict,
        description="category -> refusal text, over the deployment's `[refusals]` "
        f"({', '.join(DEFAULT_REFUSALS)}; '{FALLBACK_KEY}': a question of no category; "
        f"'{THING_PREFIX}<category>': of a target that is not a person); categories are "
        "found by weighted question cues (core/refusals.py)",
    )
    # Set by the job from the request (`target.type`, else its kind), not by a user.
    target_type: Literal["person", "thing"] = Field(
        "person", description="whom the refusals speak of: a person, or a thing ('that')"
    )


def as_refusals(samples: Sequence[Sample], params: RefuserParams) -> list[Sample]:
    refuse = RefusalTable(params.refusals)
    return [Sample(s.question, refuse(s.question, params.target_type), s.image) for s in samples]


class Refuser(lora.LoraMethod):
    name = "refuser"
    summary = "CORE-style refuser expert: a LoRA, category-aware refusals, switched on by concept"
    Params = RefuserParams
    needs = Needs(routing=True, text_variants=True)

    def fit(
        self,
        fam: ModelFamily,
        forget: list[Sample],
        retain: list[Sample],
        params: RefuserParams,
        progress: Progress | None = None,
        init: dict[str, torch.Tensor] | None = None,
        replay: Sequence[Sample] = (),
    ) -> MethodResult:
        """`init`: the expert's current tensors when it is reused or adapted; `replay`: the
        forget samples of the requests it already serves."""
        self.check_family(fam)
        forget_batches = Batches(as_refusals(forget, params), params.batch_size, params.seed)
        # Replay is a second retain-like term: earlier requests' refusals, kept.
        kept = RetainTerm(as_refusals(replay, params), params.replay_weight, params.batch_size,
                          params.seed + 1)  # fmt: skip
        keep = RetainTerm(retain, params.alpha, params.batch_size, params.seed)

        def step_loss(_: int):
            return fam.answer_loss(forget_batches.next()) + kept(fam) + keep(fam)

        return fit_lora(fam, params, step_loss, progress, init=init)
