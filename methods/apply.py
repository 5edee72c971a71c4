"""Applying stored method results to a model at inference: one recipe per `apply` name.

An artifact carries its recipe in its safetensors metadata (`apply`, `config`), so a version's
manifest is enough to rebuild the served model: base weights + every adapter, never merged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch

from unlearnd.methods import ffn_branch, lora, vision_prompts, visual_tokens
from unlearnd.methods.base import MethodResult
from unlearnd.models.base import ModelFamily

Applier = Callable[[ModelFamily, dict[str, torch.Tensor], dict[str, Any], str], None]
APPLIERS: dict[str, Applier] = {
    "lora": lora.apply,
    "ffn_branch": ffn_branch.apply,
    "vision_prompts": vision_prompts.apply,
    "visual_tokens": visual_tokens.apply,
}


def artifact_metadata(result: MethodResult, method: str) -> dict[str, str]:
    """The string metadata stored beside the tensors: enough to apply them later."""
    return {"apply": result.apply, "config": json.dumps(result.config), "method": method}


def apply_artifact(
    fam: ModelFamily, tensors: dict[str, torch.Tensor], metadata: dict[str, str], name: str
) -> None:
    recipe = metadata.get("apply")
    if recipe not in APPLIERS:
        raise ValueError(f"artifact {name!r}: unknown apply recipe {recipe!r}")
    APPLIERS[recipe](fam, tensors, json.loads(metadata.get("config", "{}")), name)
