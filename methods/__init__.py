"""Unlearning methods, registered here (the one place): one module or package per method.

`METHODS` names every method; `APPLIERS` every recipe a stored artifact can name in its
metadata (`apply`), gathered from the methods that produce them, so a version's manifest is
enough to rebuild the served model: base weights + every adapter, never merged.
Shared training code (the interface, the loop, loss terms, LoRA) is in `methods/shared/`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import torch

from unlearnd.methods.adu import ADU
from unlearnd.methods.cagul import CAGUL, visual_tokens
from unlearnd.methods.ga import GA
from unlearnd.methods.graddiff import GradDiff
from unlearnd.methods.kl import KL
from unlearnd.methods.npo import NPO
from unlearnd.methods.pubg import PUBG
from unlearnd.methods.refuser import Refuser
from unlearnd.methods.reject import Reject
from unlearnd.methods.shared import lora
from unlearnd.methods.shared.interface import (
    Applier,
    Method,
    MethodParams,
    MethodResult,
    Needs,
    ParamError,
    artifact_metadata,
)
from unlearnd.methods.vl_eraser import VLEraser, ffn_branch
from unlearnd.models.base import ModelFamily

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        ADU(),
        CAGUL(),
        GA(),
        GradDiff(),
        KL(),
        NPO(),
        PUBG(),
        Refuser(),
        Reject(),
        VLEraser(),
    )
}

APPLIERS: dict[str, Applier] = {
    recipe: applier for m in METHODS.values() for recipe, applier in m.appliers.items()
}


class UnknownMethod(KeyError):
    def __str__(self) -> str:
        return f"unknown method {self.args[0]!r}; registered: {', '.join(sorted(METHODS))}"


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise UnknownMethod(name) from None


def apply_artifact(
    fam: ModelFamily, tensors: dict[str, torch.Tensor], metadata: dict[str, str], name: str
) -> None:
    """Attach a stored method result to `fam` in place, under adapter name `name`."""
    recipe = metadata.get("apply")
    if recipe not in APPLIERS:
        raise ValueError(f"artifact {name!r}: unknown apply recipe {recipe!r}")
    APPLIERS[recipe](fam, tensors, json.loads(metadata.get("config", "{}")), name)


@contextlib.contextmanager
def suspended(fam: ModelFamily) -> Iterator[None]:
    """A vision-language model as its base weights make it: every attached result (LoRA
    adapters and experts, FFN branches, token rewriters) off for the duration, restored
    after. The expert switch embeds queries this way, so later method versions do not move
    the vectors earlier requests were routed on."""
    with lora.all_off(fam.model), ffn_branch.all_off(fam), visual_tokens.frozen_tokens(fam):
        yield


__all__ = [
    "APPLIERS",
    "METHODS",
    "Method",
    "MethodParams",
    "MethodResult",
    "Needs",
    "ParamError",
    "apply_artifact",
    "artifact_metadata",
    "get_method",
    "suspended",
]
