"""The one small interface every model family implements.

Methods and routing talk only to this interface, never to a transformers class, so a
method that works on the tiny LLaVA also works on a real LLaVA or Qwen2-VL folder.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image
from torch import nn

FAMILIES = ("llava", "qwen2_vl", "clip", "causal_lm")


class ModelLoadError(ValueError):
    """A folder is missing, unreadable, or not a supported model."""


class UnsupportedOperation(NotImplementedError):
    """The family cannot do this (e.g. a CLIP model cannot generate text)."""


@dataclass(frozen=True)
class Sample:
    """One (image, question, answer) example. `image` None is a text-only question. `facts`:
    what an answer must say to count as stating the sample (evaluation/metrics.py `stated`)."""

    question: str
    answer: str = ""
    image: Image.Image | None = None
    facts: tuple[str, ...] = ()


class ModelFamily(ABC):
    """A loaded model with its processor, on one device and dtype."""

    family: ClassVar[str]
    generates_text: ClassVar[bool] = True
    takes_images: ClassVar[bool] = True  # False: a text-only model (no tower, no projector)

    model: nn.Module
    device: torch.device
    dtype: torch.dtype

    # --- features used by routing -------------------------------------------------------
    @abstractmethod
    def vision_features(self, images: list[Image.Image]) -> torch.Tensor:
        """Pooled vision-tower features, shape [B, D_vision], float32 on CPU."""

    @abstractmethod
    def text_embedding(self, texts: list[str]) -> torch.Tensor:
        """One vector per string, shape [B, D_text], float32 on CPU."""

    def answer_distribution(self, batch: list[Sample]) -> torch.Tensor:
        """What the model is about to say: its probabilities for the answer's first token,
        per sample (image and question): [B, vocabulary], float32 on CPU."""
        raise UnsupportedOperation(f"a {self.family} model has no answer to read a state from")

    # --- training signals used by methods -----------------------------------------------
    @abstractmethod
    def answer_logprobs(self, batch: list[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log-probs of the answer tokens: (logp [B, T], mask [B, T]).

        Loss is on answer tokens only: prompt, image and padding positions have mask 0.
        Differentiable; callers build NLL, NPO, KL from it.
        """

    def answer_loss(self, batch: list[Sample]) -> torch.Tensor:
        """Mean NLL over the answer tokens of the batch (a scalar with grad)."""
        logp, mask = self.answer_logprobs(batch)
        return -(logp * mask).sum() / mask.sum().clamp(min=1)

    @abstractmethod
    def answer_logits(self, batch: list[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
        """Full-vocabulary logits at the answer positions: (logits [B, T, V], mask [B, T])."""

    # --- inference ----------------------------------------------------------------------
    @abstractmethod
    def generate(self, batch: list[Sample], max_new_tokens: int = 16) -> list[str]:
        """Greedy answers to the questions (answers in `batch` are ignored), batched."""

    @abstractmethod
    def text_to_visual_attention(self, batch: list[Sample]) -> torch.Tensor:
        """Attention from question tokens to visual tokens, averaged over heads, query
        tokens and layers: shape [B, N_visual_tokens], float32 on CPU."""

    # --- modules that methods attach adapters to ----------------------------------------
    @abstractmethod
    def projector(self) -> nn.Module:
        """The vision-language projector (CLIP: the visual projection)."""

    @abstractmethod
    def projector_path(self) -> str:
        """Dotted name of the projector inside `self.model` (for PEFT target_modules)."""

    @abstractmethod
    def ffn_modules(self) -> list[nn.Module]:
        """The FFN (MLP) module of every language block, in order."""

    @abstractmethod
    def ffn_paths(self) -> list[str]:
        """Dotted names of `ffn_modules()` inside `self.model`."""

    # --- bookkeeping --------------------------------------------------------------------
    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write an ordinary Hugging Face folder that `unlearnd.models.load` reopens."""

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Family, parameter counts, vision / projector / FFN shapes, dtype, device."""

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> ModelFamily:
        """Move the model (and, with `dtype`, cast it); returns self."""
        self.device = torch.device(device)
        self.dtype = dtype or self.dtype
        self.model.to(self.device, self.dtype)
        return self

    def fingerprint(self) -> str:
        """sha256 over parameter names, shapes and bytes: identifies the base model."""
        import hashlib

        h = hashlib.sha256()
        for name, tensor in sorted(self.model.state_dict().items()):
            h.update(name.encode())
            h.update(str(tuple(tensor.shape)).encode())
            flat = tensor.detach().to("cpu").contiguous().reshape(-1)
            h.update(flat.view(torch.uint8).numpy().tobytes())
        return h.hexdigest()
