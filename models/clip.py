"""CLIP (CLIPModel): a classifier by text prompts; no text generation.

For the interface: the projector is `visual_projection` (vision features -> joint space) and
the FFN modules are the MLPs of the *text* encoder's blocks, the "language" side of CLIP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import CLIPModel

from unlearnd.models.base import ModelFamily, UnsupportedOperation

TEMPLATE = "a photo of a {}."


class Clip(ModelFamily):
    family = "clip"
    generates_text = False
    model_class = CLIPModel

    def __init__(self, model: nn.Module, processor: Any, device: torch.device, dtype: torch.dtype):
        self.model = model.to(device=device, dtype=dtype).eval()
        self.processor, self.tokenizer = processor, processor.tokenizer
        self.device, self.dtype = device, dtype

    def _pixels(self, images) -> torch.Tensor:
        return self.processor.image_processor(
            images=[i.convert("RGB") for i in images], return_tensors="pt"
        )["pixel_values"].to(self.device, self.dtype)

    def _tokens(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids that end in EOS, cut to the text model's length.

        CLIP pools the text at its EOS token: a tokenizer that does not add one (a plain word
        tokenizer) would otherwise be pooled at position 0, the same for every text.
        """
        eos = self.tokenizer.eos_token_id
        limit = self.model.config.text_config.max_position_embeddings
        rows = []
        for ids in self.tokenizer(texts).input_ids:
            if not ids or ids[-1] != eos:
                ids = [*ids, eos]
            rows.append(ids if len(ids) <= limit else [*ids[: limit - 1], eos])
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        width = max(len(r) for r in rows)
        input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        return {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)}

    def image_embeds(self, images) -> torch.Tensor:
        """Projected image features (with grad), [B, D_joint]."""
        out = self.model.get_image_features(pixel_values=self._pixels(images))
        return getattr(out, "pooler_output", out)

    def text_embeds(self, texts: list[str]) -> torch.Tensor:
        out = self.model.get_text_features(**self._tokens(texts))
        return getattr(out, "pooler_output", out)

    @torch.no_grad()
    def vision_features(self, images):
        return self.image_embeds(images).float().cpu()

    @torch.no_grad()
    def text_embedding(self, texts):
        return self.text_embeds(texts).float().cpu()

    @torch.no_grad()
    def classify(self, images, labels: list[str], template: str = TEMPLATE) -> torch.Tensor:
        """Zero-shot class probabilities [B, L] from the prompt `template` per label."""
        img = nn.functional.normalize(self.image_embeds(images).float(), dim=-1)
        txt = nn.functional.normalize(
            self.text_embeds([template.format(lbl) for lbl in labels]).float(), dim=-1
        )
        return (self.model.logit_scale.exp().float() * img @ txt.T).softmax(-1).cpu()

    def _no_text(self, *_: Any, **__: Any):
        raise UnsupportedOperation("a CLIP model classifies images; it does not answer questions")

    answer_logprobs = answer_logits = generate = text_to_visual_attention = _no_text

    def projector(self) -> nn.Module:
        return self.model.visual_projection

    def projector_path(self) -> str:
        return "visual_projection"

    def ffn_paths(self) -> list[str]:
        n = len(self.model.text_model.encoder.layers)
        return [f"text_model.encoder.layers.{i}.mlp" for i in range(n)]

    def ffn_modules(self) -> list[nn.Module]:
        return [self.model.get_submodule(p) for p in self.ffn_paths()]

    def save(self, path: str | Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.processor.save_pretrained(path)

    def info(self) -> dict[str, Any]:
        def count(m: nn.Module) -> int:
            return sum(p.numel() for p in m.parameters())

        vc = self.model.config.vision_config
        return {
            "family": self.family,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "parameters": {
                "total": count(self.model),
                "vision": count(self.model.vision_model),
                "projector": count(self.projector()),
                "language": count(self.model.text_model),
            },
            "vision": {
                "image_size": vc.image_size,
                "patch_size": vc.patch_size,
                "hidden_size": vc.hidden_size,
                "layers": vc.num_hidden_layers,
            },
            "projector": {n: list(p.shape) for n, p in self.projector().named_parameters()},
            "ffn": {
                "blocks": len(self.ffn_paths()),
                "per_block": {
                    n: list(p.shape) for n, p in self.ffn_modules()[0].named_parameters()
                },
            },
        }
