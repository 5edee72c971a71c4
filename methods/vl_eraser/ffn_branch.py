"""Low-rank branches parallel to a block's FFN: FFN'(x) = FFN(x) + scale * B (A x).

VL-Eraser subtracts its distilled knowledge this way (scale < 0). A branch is a child module
of the FFN, added to its output by one forward hook per FFN, so the base weights are never
touched (exact in any dtype, any number of branches side by side, removable). Inference
branches hold their factors as non-persistent buffers: they move with `.to()` but stay out
of the model's state_dict, parameters and fingerprint.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from unlearnd.models.base import ModelFamily

PREFIX = "unlearnd_branch_"
_HOOKED = "_unlearnd_branch_hook"  # set on an FFN once its hook is registered


class FfnBranch(nn.Module):
    """x -> out + scale * (x A^T) B^T, computed in float32 and cast back to the FFN's dtype."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, scale: float, trainable: bool = False):
        super().__init__()
        self.scale = float(scale)
        for key, value in (("a", a), ("b", b)):
            value = value.detach().float().clone()
            if trainable:
                self.register_parameter(key, nn.Parameter(value))
            else:
                self.register_buffer(key, value, persistent=False)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A [r, d_in], B [d_out, r]) as applied."""
        a, b = self.a, self.b
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
        return a, b

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.factors()
        return (self.scale * ((x.float() @ a.T) @ b.T)).to(x.dtype)

    def forward(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return out + self.delta(x)


def _add_branches(ffn: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
    # Looks its branches up on the module it is called with, so a deep copy uses its own.
    for child in ffn.children():
        if isinstance(child, FfnBranch):
            out = child(args[0], out)
    return out


def add(fam: ModelFamily, name: str, branches: list[FfnBranch]) -> None:
    """Put one branch beside every FFN of `fam`, under `name`."""
    ffns = fam.ffn_modules()
    if len(branches) != len(ffns):
        raise ValueError(f"{len(branches)} branches for {len(ffns)} FFN blocks")
    for ffn, branch in zip(ffns, branches, strict=True):
        if hasattr(ffn, PREFIX + name):
            raise ValueError(f"FFN branch {name!r} is already attached")
        if not getattr(ffn, _HOOKED, False):
            ffn.register_forward_hook(_add_branches)
            setattr(ffn, _HOOKED, True)
        branch.to(fam.device)
        ffn.add_module(PREFIX + name, branch)


@contextlib.contextmanager
def all_off(fam: ModelFamily) -> Iterator[None]:
    """Every branch's scale 0 for the duration (the FFNs as the base model has them)."""
    branches = [m for ffn in fam.ffn_modules() for m in ffn.children() if isinstance(m, FfnBranch)]
    scales = [b.scale for b in branches]
    for b in branches:
        b.scale = 0.0
    try:
        yield
    finally:
        for b, scale in zip(branches, scales, strict=True):
            b.scale = scale


def remove(fam: ModelFamily, name: str) -> None:
    for ffn in fam.ffn_modules():
        delattr(ffn, PREFIX + name)  # the hook stays: with no branch it adds nothing


def export(
    fam: ModelFamily, branches: list[FfnBranch]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors `<ffn path>.a` / `.b` per block and the config the applier needs."""
    tensors: dict[str, torch.Tensor] = {}
    for path, branch in zip(fam.ffn_paths(), branches, strict=True):
        a, b = branch.factors()
        tensors[f"{path}.a"] = a.detach().float().cpu().contiguous()
        tensors[f"{path}.b"] = b.detach().float().cpu().contiguous()
    scale = branches[0].scale
    return tensors, {"scale": scale, "paths": fam.ffn_paths()}


def apply(
    fam: ModelFamily, tensors: dict[str, torch.Tensor], config: dict[str, Any], name: str
) -> None:
    """The applier of `apply: "ffn_branch"` artifacts (registered in methods/__init__.py)."""
    paths = fam.ffn_paths()
    if list(config.get("paths", [])) != paths:
        raise ValueError("FFN branch artifact does not fit this model's blocks")
    branches = []
    for path in paths:
        a, b = tensors[f"{path}.a"], tensors[f"{path}.b"]
        width = _width(fam.model.get_submodule(path))
        if b.shape[1] != a.shape[0] or a.shape[1] != width or b.shape[0] != width:
            raise ValueError(f"FFN branch tensors of {path} do not fit this model")
        branches.append(FfnBranch(a, b, config["scale"]))
    add(fam, name, branches)


def _width(ffn: nn.Module) -> int:
    """The residual width an FFN reads and writes (the input size of its first linear)."""
    return next(m for m in ffn.modules() if isinstance(m, nn.Linear)).in_features
