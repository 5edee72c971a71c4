"""Rewriting a LLaVA model's visual tokens: CAGUL's external module (apply "visual_tokens").

A `Rewriter` (discriminator + encoder) is a child module of the projector. The rewrite
happens where the visual tokens enter the language model: a forward pre-hook on the top
model records input_ids and attention mask when the prompt holds image tokens (a training
forward, or the prefill call of generate: transformers 5 runs the projector before the
forward, decode steps carry no image), and a forward pre-hook on the language model takes
the visual tokens out of `inputs_embeds` at the image positions. A rewriter fires on an
image when its discriminator's probability exceeds its threshold; it then replaces the k
tokens the text attends to least with its encoder's output. Only when one fires does the
hook run the language model once more on the original embeddings (eager attention, each
layer's weights reduced as it runs: `models.generative.mean_attention`) to rank the tokens,
so an image no rewriter claims costs nothing and goes through the model bit for bit
untouched.

Stacking: rewriters apply in the order they were attached, each deciding and encoding from
the original tokens (an artifact behaves the same alone or stacked); where two fire on one
image, a later one wins the positions both rewrite. Importance is measured once per forward
on the original tokens and shared.

The base weights are never touched; inference tensors are non-persistent buffers (out of
state_dict, parameters and fingerprint) and move with `.to()`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlearnd.models.base import ModelFamily
from unlearnd.models.generative import mean_attention

PREFIX = "unlearnd_vt_"
_HOOKED = "_unlearnd_vt_hooked"  # set on the top model once both hooks are registered
_CALL = "_unlearnd_vt_call"  # on the language model while a prefill with an image runs
_OFF = "_unlearnd_vt_off"  # on the projector: every rewriter skipped (the frozen model)
_IMPORTANCE = "_unlearnd_vt_importance"  # on the projector: importance given by training
KEYS = ("mu", "sigma", "d1_w", "d1_b", "d2_w", "d2_b", "e1_w", "e1_b", "e2_w", "e2_b", "slots")


class Rewriter(nn.Module):
    """Discriminator z -> d2(gelu(d1(z))) on the standardised mean visual token z; encoder
    (x_j, z) -> x_j + e2(gelu(e1([(x_j - mu) / sigma, z]))) + slots[r] for the r-th chosen
    token in image order (one learned vector per slot, so the k new tokens can differ even
    where the image's tokens are alike)."""

    def __init__(self, tensors: dict[str, torch.Tensor], k: int, threshold: float, trainable=False):
        super().__init__()
        self.k, self.threshold, self.enabled = int(k), float(threshold), True
        for key in KEYS:
            value = tensors[key].detach().float().clone()
            if trainable and key not in ("mu", "sigma"):
                self.register_parameter(key, nn.Parameter(value))
            else:
                self.register_buffer(key, value, persistent=False)
        self.trainable = trainable

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in KEYS}

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mu) / self.sigma

    def disc_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """Discriminator logits [B] for mean visual tokens [B, D]."""
        h = F.gelu(F.linear(self.standardise(pooled), self.d1_w, self.d1_b))
        return F.linear(h, self.d2_w, self.d2_b).squeeze(-1)

    def gate(self, original: torch.Tensor) -> torch.Tensor:
        """1 where the rewriter fires, else 0: [B]. Trainable: straight-through, so the
        forward is the hard decision inference makes and the gradient reaches the
        discriminator through the sigmoid."""
        p = torch.sigmoid(self.disc_logits(original.float().mean(1)))
        hard = (p > self.threshold).float()
        return hard + p - p.detach() if self.trainable else hard

    def rewrite(
        self, original: torch.Tensor, current: torch.Tensor, importance: torch.Tensor, gate
    ) -> torch.Tensor:
        """`current` with the k least important tokens of each firing row replaced by the
        encoder's output on `original`."""
        x = original.float()
        k = min(self.k, x.shape[1])
        idx = importance.to(x.device).float().topk(k, dim=1, largest=False).indices
        idx = idx.sort(dim=1).values  # slot r: the r-th chosen token in image order
        idx = idx[..., None].expand(-1, -1, x.shape[-1])
        sel = x.gather(1, idx)
        z = self.standardise(x.mean(1))[:, None].expand(-1, k, -1)
        h = F.gelu(F.linear(torch.cat([self.standardise(sel), z], -1), self.e1_w, self.e1_b))
        new = sel + F.linear(h, self.e2_w, self.e2_b) + self.slots[:k]
        cur = current.float()
        mixed = cur.gather(1, idx) + gate[:, None, None] * (new - cur.gather(1, idx))
        out = cur.scatter(1, idx, mixed).to(current.dtype)
        if self.trainable:
            return out
        # Rows that do not fire keep their tokens bit for bit.
        return torch.where(gate.bool()[:, None, None], out, current)


def rewriters(projector: nn.Module) -> list[Rewriter]:
    return [c for c in projector.children() if isinstance(c, Rewriter) and c.enabled]


def _record_call(paths: tuple[str, str], model: nn.Module, args: tuple, kwargs: dict) -> None:
    projector_path, lm_path = paths
    input_ids = kwargs.get("input_ids", args[0] if args else None)
    if input_ids is None or not rewriters(model.get_submodule(projector_path)):
        return
    if bool((input_ids == model.config.image_token_id).any()):  # prefill: the image is here
        call = (model, input_ids, kwargs.get("attention_mask"))
        object.__setattr__(model.get_submodule(lm_path), _CALL, call)


def _forget_call(paths: tuple[str, str], model: nn.Module, args, kwargs, out) -> None:
    model.get_submodule(paths[1]).__dict__.pop(_CALL, None)  # no model kept alive


@torch.no_grad()
def attention_importance(
    model: nn.Module, lm_path: str, input_ids, attention_mask, embeds: torch.Tensor
) -> torch.Tensor:
    """Text-to-visual attention of the language model on the original input embeddings,
    averaged over layers, heads and the text tokens after the image: [B_images, N] (the
    same reduction as GenerativeFamily.text_to_visual_attention, on left-padded prompts)."""
    image = input_ids == model.config.image_token_id
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    lm = model.get_submodule(lm_path)

    def run():
        return lm(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=positions,
                  use_cache=False)  # fmt: skip

    mean = mean_attention(model, lm, run)
    out = []
    for i in image.any(1).nonzero().squeeze(-1).tolist():
        visual = image[i].nonzero().squeeze(-1)
        query = torch.arange(int(visual.min()) + 1, input_ids.shape[1], device=input_ids.device)
        query = query[~image[i, query] & attention_mask[i, query].bool()]
        out.append(mean[i][query][:, visual].mean(0))
    return torch.stack(out)


def _rewrite(paths: tuple[str, str], lm: nn.Module, args: tuple, kwargs: dict):
    # Popped: the importance pass below re-enters this hook and must run untouched.
    call = lm.__dict__.pop(_CALL, None)
    embeds = kwargs.get("inputs_embeds")
    if call is None or embeds is None:
        return None
    model, input_ids, mask = call
    projector = model.get_submodule(paths[0])
    active = rewriters(projector)
    if not active or projector.__dict__.get(_OFF) or embeds.shape[1] != input_ids.shape[1]:
        return None
    image = input_ids == model.config.image_token_id
    counts = image.sum(1)[image.any(1)]
    if bool((counts != counts[0]).any()):
        raise RuntimeError("visual token rewriting expects one image per prompt")
    original = embeds[image].view(len(counts), int(counts[0]), embeds.shape[-1])
    if mask is None:
        mask = torch.ones_like(input_ids)
    tokens, importance = original, projector.__dict__.get(_IMPORTANCE)
    for r in active:
        gate = r.gate(original)
        if not r.trainable and not bool(gate.any()):
            continue
        if importance is None:
            importance = attention_importance(model, paths[1], input_ids, mask, embeds)
        tokens = r.rewrite(original, tokens, importance, gate)
    if tokens is original:
        return None  # nothing fired: the forward goes on untouched
    embeds = embeds.masked_scatter(image[..., None], tokens.to(embeds.dtype))
    return args, {**kwargs, "inputs_embeds": embeds}


def add(fam: ModelFamily, name: str, rewriter: Rewriter) -> Rewriter:
    projector = fam.projector()
    if hasattr(projector, PREFIX + name):
        raise ValueError(f"visual token rewriter {name!r} is already attached")
    if not getattr(fam.model, _HOOKED, False):
        paths = (fam.projector_path(), fam.language_model_path)
        fam.model.register_forward_pre_hook(
            functools.partial(_record_call, paths), with_kwargs=True
        )
        fam.model.register_forward_hook(
            functools.partial(_forget_call, paths), with_kwargs=True, always_call=True
        )
        fam.language_model().register_forward_pre_hook(
            functools.partial(_rewrite, paths), with_kwargs=True
        )
        setattr(fam.model, _HOOKED, True)
    projector.add_module(PREFIX + name, rewriter.to(fam.device))
    return rewriter


def remove(fam: ModelFamily, name: str) -> None:
    delattr(fam.projector(), PREFIX + name)  # the hooks stay: with no rewriter they do nothing


@contextlib.contextmanager
def _projector_state(fam: ModelFamily, key: str, value: Any) -> Iterator[None]:
    # A plain attribute (not a module or buffer): out of the state_dict and fingerprint.
    projector = fam.projector()
    object.__setattr__(projector, key, value)
    try:
        yield
    finally:
        projector.__dict__.pop(key, None)


def frozen_tokens(fam: ModelFamily) -> contextlib.AbstractContextManager[None]:
    """Every rewriter skipped: the projector's tokens as the base model makes them (a
    text-only model has no projector, so no rewriter)."""
    if not fam.takes_images:
        return contextlib.nullcontext()
    return _projector_state(fam, _OFF, True)


def given_importance(
    fam: ModelFamily, importance: torch.Tensor
) -> contextlib.AbstractContextManager[None]:
    """Use `importance` [B_images, N] instead of measuring it (training: computed once per
    sample on the prompt alone, where a training forward also carries the answer)."""
    return _projector_state(fam, _IMPORTANCE, importance)


def width(fam: ModelFamily) -> int:
    """The visual tokens' width: the language model's (what the projector maps into)."""
    return int(fam.model.config.text_config.hidden_size)


def export(rewriter: Rewriter) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in rewriter.tensors().items()}
    config = {"k": rewriter.k, "threshold": rewriter.threshold, "width": int(rewriter.mu.numel())}
    return tensors, config


def apply(
    fam: ModelFamily, tensors: dict[str, torch.Tensor], config: dict[str, Any], name: str
) -> None:
    """The applier of `apply: "visual_tokens"` artifacts (registered in methods/__init__.py)."""
    if fam.family != "llava":
        raise ValueError(f"visual token rewriters apply to a llava model, not {fam.family}")
    if config.get("width") != width(fam) or any(k not in tensors for k in KEYS):
        raise ValueError("visual token artifact does not fit this model's projector")
    add(fam, name, Rewriter(tensors, config["k"], config["threshold"]))
