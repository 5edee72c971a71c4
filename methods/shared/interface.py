"""What every unlearning method is: declared families and needs, validated params, a `fit`.

A method trains on the forget set (and usually the retain set) of one request and returns
tensors for the artifact store plus the recipe to apply them at inference (`apply`, one of
the method's `appliers`). What it asks of the pipeline beyond its samples it declares in
`needs`, so the pipeline never asks which method it runs.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unlearnd.models.base import ModelFamily, Sample

Progress = Callable[[int, int, float], None]  # (step, total_steps, loss)
# Attaches stored tensors to a model in place: (fam, tensors, config, adapter name).
Applier = Callable[[ModelFamily, dict[str, torch.Tensor], dict[str, Any], str], None]


class ParamError(ValueError):
    """A request's `params` do not fit its method; the message names each bad param."""


class MethodParams(BaseModel):
    """Params every method takes. Subclasses add their own; unknown params are errors."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(40, ge=1, le=100_000, description="optimizer steps")
    lr: float = Field(1e-3, gt=0, le=1.0, description="learning rate")
    batch_size: int = Field(8, ge=1, le=1024, description="samples per micro-batch")
    grad_accum: int = Field(1, ge=1, le=1024, description="micro-batches per optimizer step")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    seed: int = Field(0, description="seed for sampling and initialisation")


@dataclass
class MethodResult:
    """What `fit` hands to the artifact store and to inference.

    `apply` names how the tensors are used at inference ("lora": PEFT LoRA added to the base;
    methods with other recipes name theirs). `config` is JSON (for LoRA: PEFT's adapter_config).
    """

    apply: str
    tensors: dict[str, torch.Tensor]
    config: dict[str, Any]
    losses: list[float] = field(default_factory=list)


def artifact_metadata(result: MethodResult, method: str) -> dict[str, str]:
    """The string metadata stored beside the tensors: enough to apply them later."""
    return {"apply": result.apply, "config": json.dumps(result.config), "method": method}


@dataclass(frozen=True)
class Needs:
    """What a method asks of the pipeline beyond the request's forget and retain samples."""

    # A routed expert (CORE): the pipeline decomposes the request into concepts, picks the
    # expert (new, reused or adapted), passes its current tensors (`init`) and the forget
    # samples of the requests it already serves (`replay`) to `fit`, and the version switches
    # the expert on per query by concept instead of applying it to every query.
    routing: bool = False
    # Also trains on the forget questions asked by name with no image (evaluation/doors.py),
    # so a text-only question about the target is refused too.
    text_variants: bool = False


class Method(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]
    families: ClassVar[tuple[str, ...]] = ("llava", "qwen2_vl", "causal_lm")
    Params: ClassVar[type[MethodParams]] = MethodParams
    needs: ClassVar[Needs] = Needs()
    # apply recipe -> its applier, for every recipe this method's results name
    appliers: ClassVar[dict[str, Applier]] = {}

    def validate_params(self, raw: dict[str, Any] | None) -> MethodParams:
        try:
            return self.Params.model_validate(raw or {})
        except ValidationError as e:
            problems = []
            for err in e.errors():
                key = ".".join(str(p) for p in err["loc"])
                msg = "unknown param" if err["type"] == "extra_forbidden" else err["msg"]
                problems.append(f"params.{key}: {msg}")
            raise ParamError(f"method {self.name!r}: " + "; ".join(problems)) from e

    def check_family(self, fam: ModelFamily) -> None:
        if fam.family not in self.families:
            raise ParamError(
                f"method {self.name!r} supports {', '.join(self.families)}, "
                f"not a {fam.family} model"
            )

    @abstractmethod
    def fit(
        self,
        fam: ModelFamily,
        forget: list[Sample],
        retain: list[Sample],
        params: MethodParams,
        progress: Progress | None = None,
    ) -> MethodResult:
        """Train on `fam` (modified in place: the adapter stays attached) and return the result."""

    def describe(self) -> dict[str, Any]:
        """Name, families and params with defaults, for `unlearnd methods`."""
        params = {
            name: {
                "default": f.get_default(call_default_factory=True),
                "type": getattr(f.annotation, "__name__", str(f.annotation)),
                "help": f.description or "",
            }
            for name, f in self.Params.model_fields.items()
        }
        return {
            "name": self.name,
            "summary": self.summary,
            "families": list(self.families),
            "params": params,
        }
