"""LoRA adapters through PEFT, in PEFT's own file layout.

Adapters are injected in place into `fam.model` (the family keeps working unchanged), their
tensors are PEFT's `adapter_model.safetensors` keys and their config is PEFT's
`adapter_config.json`, so `PeftModel.from_pretrained(base, folder)` loads an exported artifact.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from peft import (
    LoraConfig,
    get_peft_model_state_dict,
    inject_adapter_in_model,
    set_peft_model_state_dict,
)
from peft.tuners.lora import LoraLayer
from peft.tuners.tuners_utils import set_adapter
from pydantic import Field
from torch import nn

from unlearnd.methods.shared.interface import Method, MethodParams
from unlearnd.models.base import ModelFamily

ADAPTER = "default"


class LoraParams(MethodParams):
    lora_rank: int = Field(8, ge=1, le=256, description="LoRA rank r")
    lora_alpha: float = Field(16.0, gt=0, description="LoRA alpha (scale = alpha / r)")
    target: str = Field(
        "blocks",
        pattern=r"^(blocks|ffn|projector|blocks\+projector|ffn\+projector)$",
        description="where the adapter sits: blocks (attention + FFN of every language block), "
        "ffn, projector, or one of the first two + projector",
    )


def linear_paths(model: nn.Module, roots: list[str]) -> list[str]:
    """Full names of every linear layer at or under the given module paths.

    A layer that already carries adapters counts once, by its own name (not its base_layer
    or lora_A/lora_B children), so a new adapter can be added beside earlier ones.
    """
    names = []
    for name, module in model.named_modules():
        inside = any(name == r or name.startswith(r + ".") for r in roots)
        parts = name.split(".")
        wrapped = any(p == "base_layer" or p.startswith("lora_") for p in parts)
        if inside and not wrapped and isinstance(module, nn.Linear | LoraLayer):
            names.append(name)
    return names


def target_paths(fam: ModelFamily, target: str) -> list[str]:
    roots: list[str] = []
    if "ffn" in target:
        roots += fam.ffn_paths()
    if "blocks" in target:  # a block is the parent of its FFN
        roots += [path.rsplit(".", 1)[0] for path in fam.ffn_paths()]
    if "projector" in target and fam.takes_images:  # a text-only model has none: blocks only
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


def adapter_names(model: nn.Module) -> list[str]:
    names: set[str] = set()
    for module in model.modules():
        if isinstance(module, LoraLayer):
            names.update(module.lora_A.keys())
    return sorted(names)


def _activate_all(model: nn.Module, trainable: str | None = None) -> None:
    """Every adapter takes part in the forward pass; only `trainable` (if any) gets grads.

    Several versions' adapters stack this way without ever merging into the base weights.
    """
    set_adapter(model, adapter_names(model), inference_mode=True, layer_cls=LoraLayer)
    for name, p in model.named_parameters():
        is_new = trainable is not None and "lora_" in name and f".{trainable}." in name
        if is_new:
            p.data = p.data.float()  # adapters train in fp32 even on a bf16 base
        p.requires_grad_(is_new)


def attach(
    fam: ModelFamily,
    config: LoraConfig,
    seed: int = 0,
    name: str = ADAPTER,
    init: dict[str, torch.Tensor] | None = None,
) -> None:
    """Inject a trainable LoRA into fam.model; every other parameter is frozen. `init`: start
    from these exported tensors (an earlier version of the same adapter) instead of zero."""
    if name in adapter_names(fam.model):
        raise ValueError(f"adapter {name!r} is already attached")
    torch.manual_seed(seed)
    _inject(config, fam.model, name)
    if init is not None:
        _load_state(fam.model, init, name)
    _activate_all(fam.model, trainable=name)


def _inject(config: LoraConfig, model: nn.Module, name: str) -> None:
    # Several adapters side by side is the design (one per version or expert): PEFT's
    # warning about an existing peft_config says only that.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        inject_adapter_in_model(config, model, adapter_name=name)


def _load_state(model: nn.Module, tensors: dict[str, torch.Tensor], name: str) -> None:
    state = {k.removeprefix("base_model.model."): v for k, v in tensors.items()}
    result = set_peft_model_state_dict(model, state, adapter_name=name)
    unexpected = [k for k in result.unexpected_keys if "lora_" in k]
    if unexpected:
        raise ValueError(f"adapter tensors do not fit this model: {unexpected[:3]}")


def set_weights(model: nn.Module, weights: dict[str, float]) -> None:
    """Scale each named adapter's contribution (1 = as trained, 0 = off), exactly: PEFT keeps
    the branch separate from the base weight, so no merge is ever undone."""
    for module in model.modules():
        if isinstance(module, LoraLayer):
            for name, weight in weights.items():
                if name in module.lora_A:
                    module.set_scale(name, weight)


@contextlib.contextmanager
def all_off(model: nn.Module) -> Iterator[None]:
    """Every adapter's contribution 0 for the duration, each scale restored after."""
    saved = [(m, dict(m.scaling)) for m in model.modules() if isinstance(m, LoraLayer)]
    for module, scaling in saved:
        for name in scaling:
            module.scaling[name] = 0.0
    try:
        yield
    finally:
        for module, scaling in saved:
            module.scaling.update(scaling)


def export(
    fam: ModelFamily, config: LoraConfig, name: str = ADAPTER
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(adapter_model tensors, adapter_config dict) in PEFT's on-disk form."""
    state = get_peft_model_state_dict(fam.model, adapter_name=name)
    # PEFT's saved keys carry the PeftModel prefix; keep that layout for from_pretrained.
    tensors = {f"base_model.model.{k}": v.detach().cpu().contiguous() for k, v in state.items()}
    return tensors, config_to_json(config)


def config_to_json(config: LoraConfig) -> dict[str, Any]:
    data = config.to_dict()
    return json.loads(
        json.dumps(data, default=lambda v: sorted(v) if isinstance(v, set) else str(v))
    )


def apply(
    fam: ModelFamily, tensors: dict[str, torch.Tensor], config: dict[str, Any], name: str
) -> None:
    """Load a stored adapter into fam.model in place, frozen, active beside the others."""
    fields = LoraConfig.__dataclass_fields__
    cfg = LoraConfig(**{k: v for k, v in config.items() if k in fields and k != "peft_type"})
    _inject(cfg, fam.model, name)
    _load_state(fam.model, tensors, name)
    _activate_all(fam.model)
    fam.model.eval()


class LoraMethod(Method):
    """A method whose result is one PEFT LoRA adapter (apply recipe "lora")."""

    Params = LoraParams
    appliers = {"lora": apply}
