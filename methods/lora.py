"""LoRA adapters through PEFT, in PEFT's own file layout.

Adapters are injected in place into `fam.model` (the family keeps working unchanged), their
tensors are PEFT's `adapter_model.safetensors` keys and their config is PEFT's
`adapter_config.json`, so `PeftModel.from_pretrained(base, folder)` loads an exported artifact.
"""

from __future__ import annotations

import json
from typing import Any

import torch
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model
from peft import set_peft_model_state_dict
from pydantic import Field
from torch import nn

from unlearnd.methods.base import MethodParams
from unlearnd.models.base import ModelFamily

ADAPTER = "default"


class LoraParams(MethodParams):
    lora_rank: int = Field(8, ge=1, le=256, description="LoRA rank r")
    lora_alpha: float = Field(16.0, gt=0, description="LoRA alpha (scale = alpha / r)")
    target: str = Field("ffn", pattern="^(ffn|projector|ffn+projector)$",
                        description="where the adapter sits: ffn, projector or ffn+projector")


def linear_paths(model: nn.Module, roots: list[str]) -> list[str]:
    """Full names of every nn.Linear at or under the given module paths."""
    names = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and any(
            name == r or name.startswith(r + ".") for r in roots
        ):
            names.append(name)
    return names


def target_paths(fam: ModelFamily, target: str) -> list[str]:
    roots: list[str] = []
    if "ffn" in target:
        roots += fam.ffn_paths()
    if "projector" in target:
        roots.append(fam.projector_path())
    return linear_paths(fam.model, roots)


def lora_config(fam: ModelFamily, params: LoraParams) -> LoraConfig:
    return LoraConfig(
        r=params.lora_rank,
        lora_alpha=params.lora_alpha,
        lora_dropout=0.0,
        target_modules=target_paths(fam, params.target),
        bias="none",
    )


def attach(fam: ModelFamily, config: LoraConfig, seed: int = 0) -> None:
    """Inject a trainable LoRA into fam.model; every other parameter is frozen."""
    torch.manual_seed(seed)
    for p in fam.model.parameters():
        p.requires_grad_(False)
    inject_adapter_in_model(config, fam.model, adapter_name=ADAPTER)
    for name, p in fam.model.named_parameters():
        if "lora_" in name:
            p.data = p.data.float()  # adapters train in fp32 even on a bf16 base
            p.requires_grad_(True)


def export(fam: ModelFamily, config: LoraConfig) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(adapter_model tensors, adapter_config dict) in PEFT's on-disk form."""
    state = get_peft_model_state_dict(fam.model, adapter_name=ADAPTER)
    # PEFT's saved keys carry the PeftModel prefix; keep that layout for from_pretrained.
    tensors = {f"base_model.model.{k}": v.detach().cpu().contiguous() for k, v in state.items()}
    return tensors, config_to_json(config)


def config_to_json(config: LoraConfig) -> dict[str, Any]:
    data = config.to_dict()
    return json.loads(json.dumps(data, default=lambda v: sorted(v) if isinstance(v, set) else str(v)))


def apply(fam: ModelFamily, tensors: dict[str, torch.Tensor], config: dict[str, Any],
          adapter_name: str = ADAPTER) -> None:
    """Load a stored adapter into fam.model in place (inference only)."""
    cfg = LoraConfig(**{k: v for k, v in config.items() if k in LoraConfig.__dataclass_fields__})
    inject_adapter_in_model(cfg, fam.model, adapter_name=adapter_name)
    state = {k.removeprefix("base_model.model."): v for k, v in tensors.items()}
    result = set_peft_model_state_dict(fam.model, state, adapter_name=adapter_name)
    missing = [k for k in result.unexpected_keys if "lora_" in k]
    if missing:
        raise ValueError(f"adapter tensors do not fit this model: {missing[:3]}")
    fam.model.eval()
