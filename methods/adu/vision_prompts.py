"""Deep vision prompts on a CLIP vision encoder, optionally instance-wise (ADU's InstaPG).

Each prompted layer gets a child `LayerPrompts` module and one forward pre-hook: the first
layer appends the artifact's prompt tokens after the patch tokens, each later prompted layer
replaces that artifact's tokens with fresh ones. Layers past the prompt depth carry them
along. CLIP pools its CLS token (position 0), so the prompts act only through attention.
The base weights are never touched; inference prompts are non-persistent buffers (out of
the state_dict and fingerprint), so several artifacts stack (each owns its token slots).

InstaPG: the layer's learned prompts are the queries of a one-head cross-attention over the
patch tokens entering that layer (keys/values, layer-normed); its output, projected, is
added to the prompts. The output projection starts at zero, so training starts at plain
deep prompts.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlearnd.models.base import ModelFamily

PREFIX = "unlearnd_prompts_"
_HOOKED = "_unlearnd_prompts_hook"  # set on a layer once its hook is registered
INSTAPG = ("q", "k", "v", "o")


class LayerPrompts(nn.Module):
    """The tokens one artifact feeds into one vision layer."""

    def __init__(
        self,
        prompts: torch.Tensor,
        instapg: dict[str, torch.Tensor] | None,
        n_patches: int,
        offset: int,
        first: bool,
        trainable: bool = False,
    ):
        super().__init__()
        self.n_patches, self.offset, self.first = n_patches, offset, first
        self.n_tokens = prompts.shape[0]
        self.instance_wise = instapg is not None
        tensors = {"prompts": prompts, **(instapg or {})}
        for key, value in tensors.items():
            value = value.detach().float().clone()
            if trainable:
                self.register_parameter(key, nn.Parameter(value))
            else:
                self.register_buffer(key, value, persistent=False)

    def tensors(self) -> dict[str, torch.Tensor]:
        keys = ("prompts", *(INSTAPG if self.instance_wise else ()))
        return {k: getattr(self, k) for k in keys}

    def tokens(self, patches: torch.Tensor) -> torch.Tensor:
        """Prompt tokens [B, n, W] for a batch of patch tokens [B, P, W]."""
        t = self.tensors()
        p = t["prompts"].expand(patches.shape[0], -1, -1)
        if self.instance_wise:
            x = F.layer_norm(patches.float(), patches.shape[-1:])
            q, k, v = p @ t["q"].T, x @ t["k"].T, x @ t["v"].T
            att = (q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])).softmax(-1)
            p = p + (att @ v) @ t["o"].T
        return p.to(patches.dtype)


def _feed(layer: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    # Looks its prompts up on the layer it is called with, so a deep copy uses its own.
    hidden = args[0] if args else kwargs["hidden_states"]
    for child in layer.children():
        if not isinstance(child, LayerPrompts):
            continue
        patches = hidden[:, 1 : 1 + child.n_patches]
        tokens = child.tokens(patches)
        start = 1 + child.n_patches + child.offset
        if child.first:
            if hidden.shape[1] != start:
                raise RuntimeError("vision prompts attached out of order")
            hidden = torch.cat([hidden, tokens], 1)
        else:
            hidden = torch.cat([hidden[:, :start], tokens, hidden[:, start + child.n_tokens :]], 1)
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def layers(fam: ModelFamily) -> nn.ModuleList:
    return fam.model.vision_model.encoder.layers


def n_patches(fam: ModelFamily) -> int:
    vc = fam.model.config.vision_config
    return (vc.image_size // vc.patch_size) ** 2


def used_slots(fam: ModelFamily) -> int:
    """Prompt tokens already appended by attached artifacts (all start at the first layer)."""
    return sum(c.n_tokens for c in layers(fam)[0].children() if isinstance(c, LayerPrompts))


def new_tensors(fam: ModelFamily, n_tokens: int, depth: int, instapg: bool, gen) -> list[dict]:
    """Fresh per-layer tensors for training: small random prompts, InstaPG output at zero."""
    width = fam.model.config.vision_config.hidden_size
    out = []
    for _ in range(depth):
        t = {"prompts": torch.randn(n_tokens, width, generator=gen) * 0.02}
        if instapg:
            for key in ("q", "k", "v"):
                t[key] = torch.randn(width, width, generator=gen) / math.sqrt(width)
            t["o"] = torch.zeros(width, width)
        out.append(t)
    return out


def add(fam: ModelFamily, name: str, per_layer: list[dict], trainable: bool = False) -> list:
    """Attach one artifact's prompts (tensors per prompted layer, from the first) as `name`."""
    blocks = layers(fam)
    if not 1 <= len(per_layer) <= len(blocks):
        raise ValueError(f"{len(per_layer)} prompted layers for {len(blocks)} vision layers")
    offset, patches = used_slots(fam), n_patches(fam)
    modules = []
    for i, tensors in enumerate(per_layer):
        layer = blocks[i]
        if hasattr(layer, PREFIX + name):
            raise ValueError(f"vision prompts {name!r} are already attached")
        instapg = {k: tensors[k] for k in INSTAPG} if "q" in tensors else None
        module = LayerPrompts(tensors["prompts"], instapg, patches, offset, i == 0, trainable)
        if not getattr(layer, _HOOKED, False):
            layer.register_forward_pre_hook(_feed, with_kwargs=True)
            setattr(layer, _HOOKED, True)
        layer.add_module(PREFIX + name, module.to(fam.device))
        modules.append(module)
    return modules


def remove(fam: ModelFamily, name: str) -> None:
    """Detach `name`'s prompts (only the last attached: later artifacts' slots follow it)."""
    for layer in layers(fam):
        if hasattr(layer, PREFIX + name):
            delattr(layer, PREFIX + name)  # the hook stays: with no prompts it adds nothing


def export(modules: list[LayerPrompts]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors `layers.<i>.<key>` and the config the applier checks."""
    tensors = {
        f"layers.{i}.{key}": value.detach().float().cpu().contiguous()
        for i, m in enumerate(modules)
        for key, value in m.tensors().items()
    }
    first = modules[0]
    config = {
        "depth": len(modules),
        "n_tokens": first.n_tokens,
        "instapg": first.instance_wise,
        "width": int(first.tensors()["prompts"].shape[1]),
    }
    return tensors, config


def apply(
    fam: ModelFamily, tensors: dict[str, torch.Tensor], config: dict[str, Any], name: str
) -> None:
    """The applier of `apply: "vision_prompts"` artifacts (registered in methods/__init__.py)."""
    if fam.family != "clip":
        raise ValueError(f"vision prompts apply to a CLIP model, not {fam.family}")
    width = fam.model.config.vision_config.hidden_size
    if config.get("width") != width or config.get("depth", 0) > len(layers(fam)):
        raise ValueError("vision prompt artifact does not fit this model's vision encoder")
    keys = ("prompts", *(INSTAPG if config.get("instapg") else ()))
    per_layer = [{k: tensors[f"layers.{i}.{k}"] for k in keys} for i in range(config["depth"])]
    add(fam, name, per_layer)
