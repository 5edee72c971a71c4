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

    def _encode_prompt(self, prompt, image):
        # The processor expands the one <image> into as many tokens as the tower has patches.
        images = [image.convert("RGB")] if image is not None else None
        enc = self.processor(text=[prompt], images=images, return_tensors="pt")
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
        """Mean of the patch features the projector reads (the configured tower layer, CLS
        dropped under the "default" strategy), so a delta on the projector does not move
        them: [B, vision hidden size]."""
        pixels = self.processor.image_processor(
            images=[i.convert("RGB") for i in images], return_tensors="pt"
        )["pixel_values"].to(self.device, self.dtype)
        hidden = self.vision_tower()(pixel_values=pixels, output_hidden_states=True).hidden_states
        cfg = self.model.config
        layers = cfg.vision_feature_layer
        layers = [layers] if isinstance(layers, int) else list(layers)
        feats = torch.cat([hidden[i] for i in layers], dim=-1)
        if cfg.vision_feature_select_strategy == "default":
            feats = feats[:, 1:]
        return feats.mean(1).float().cpu()

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
