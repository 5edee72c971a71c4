"""LLaVA (LlavaForConditionalGeneration): CLIP vision tower -> MLP projector -> Llama."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import LlavaForConditionalGeneration

from unlearnd.models.generative import GenerativeFamily


class Llava(GenerativeFamily):
    family = "llava"
    model_class = LlavaForConditionalGeneration
    image_placeholder = "<image>"

    def __init__(self, model: nn.Module, processor: Any, device: torch.device, dtype: torch.dtype):
        super().__init__(model, processor, device, dtype)
        self.image_token_id = model.config.image_token_id
        self.image_placeholder = getattr(processor, "image_token", "<image>")

    def _encode_prompt(self, sample):
        images = [sample.image.convert("RGB")] if sample.image is not None else None
        enc = self.processor(text=[self.prompt_text(sample)], images=images, return_tensors="pt")
        vision = {"pixel_values": enc["pixel_values"]} if images else {}
        return enc["input_ids"][0].tolist(), vision

    def _inputs(self, enc, generating=False):
        inputs = super()._inputs(enc)
        if not generating:  # generate derives positions from the mask itself
            # Positions from the mask, so left- and right-padded rows give equal logits.
            inputs["position_ids"] = (enc.attention_mask.cumsum(-1) - 1).clamp(min=0)
        return inputs

    @torch.no_grad()
    def vision_features(self, images):
        pixels = self.processor.image_processor(
            images=[i.convert("RGB") for i in images], return_tensors="pt"
        )["pixel_values"].to(self.device, self.dtype)
        return self.vision_tower()(pixel_values=pixels).pooler_output.float().cpu()

    def vision_tower(self) -> nn.Module:
        return self.model.model.vision_tower

    def projector_path(self) -> str:
        return "model.multi_modal_projector"

    def vision_shape(self) -> dict[str, Any]:
        c = self.model.config.vision_config
        return {
            "image_size": c.image_size,
            "patch_size": c.patch_size,
            "hidden_size": c.hidden_size,
            "layers": c.num_hidden_layers,
            "tokens_per_image": (c.image_size // c.patch_size) ** 2,
        }
