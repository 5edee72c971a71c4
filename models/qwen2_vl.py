"""Qwen2-VL (Qwen2VLForConditionalGeneration): ViT with patch merger -> Qwen2 with M-RoPE.

The image tokens are expanded here from the image processor's grid rather than through
Qwen2VLProcessor, which in transformers 5 also wants a video processor (torchvision).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import Qwen2VLForConditionalGeneration

from unlearnd.models.generative import GenerativeFamily

VISION_START, IMAGE_PAD, VISION_END = "<|vision_start|>", "<|image_pad|>", "<|vision_end|>"


class Qwen2VL(GenerativeFamily):
    family = "qwen2_vl"
    model_class = Qwen2VLForConditionalGeneration
    image_placeholder = VISION_START + IMAGE_PAD + VISION_END

    def __init__(self, model: nn.Module, processor: Any, device: torch.device, dtype: torch.dtype):
        super().__init__(model, processor, device, dtype)
        self.image_token_id = model.config.image_token_id
        self.merge = processor.image_processor.merge_size

    def _image_inputs(self, images) -> dict[str, torch.Tensor]:
        return dict(
            self.processor.image_processor(
                images=[i.convert("RGB") for i in images], return_tensors="pt"
            )
        )

    def _encode_prompt(self, prompt, image):
        text, vision = prompt, {}
        if image is not None:
            vision = self._image_inputs([image])
            tokens = int(vision["image_grid_thw"][0].prod()) // self.merge**2
            text = text.replace(IMAGE_PAD, IMAGE_PAD * tokens, 1)
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        return ids, {k: vision[k] for k in ("pixel_values", "image_grid_thw") if k in vision}

    def _inputs(self, enc, generating=False):
        # M-RoPE needs to know which positions hold image tokens (1) and which text (0).
        inputs = super()._inputs(enc)
        inputs["mm_token_type_ids"] = (enc.input_ids == self.image_token_id).long()
        return inputs

    @torch.no_grad()
    def vision_features(self, images):
        """Mean of each image's patch features before the merger (the projector), so that a
        delta on the projector does not move them: [B, embed_dim]."""
        vis = self._image_inputs(images)
        grid = vis["image_grid_thw"]
        out = self.vision_tower()(
            vis["pixel_values"].to(self.device, self.dtype), grid_thw=grid.to(self.device)
        )
        patches = out.last_hidden_state  # all images' patches, one after another
        sizes = grid.prod(-1).tolist()
        return torch.stack([p.mean(0) for p in torch.split(patches, sizes)]).float().cpu()

    def vision_tower(self) -> nn.Module:
        return self.model.model.visual

    def projector_path(self) -> str:
        return "model.visual.merger"

    def vision_shape(self) -> dict[str, Any]:
        c = self.model.config.vision_config
        return {
            "patch_size": c.patch_size,
            "embed_dim": c.embed_dim,
            "depth": c.depth,
            "spatial_merge_size": c.spatial_merge_size,
            "out_hidden_size": c.hidden_size,
        }


class Qwen2VLParts:
    """Tokenizer + image processor + chat template: what Qwen2VLProcessor holds, minus video.

    Qwen2VLProcessor cannot be built without torchvision (its video processor needs it).
    """

    def __init__(self, tokenizer: Any, image_processor: Any, chat_template: str | None = None):
        self.tokenizer, self.image_processor = tokenizer, image_processor
        self.chat_template = chat_template

    def save_pretrained(self, path) -> None:
        self.tokenizer.save_pretrained(path)
        self.image_processor.save_pretrained(path)
        if self.chat_template:
            (Path(path) / "chat_template.jinja").write_text(self.chat_template)

    @classmethod
    def from_pretrained(cls, path) -> Qwen2VLParts:
        from transformers import AutoImageProcessor, AutoTokenizer

        folder = Path(path)
        template = None  # None: the tokenizer's own template, if any, is used
        if (folder / "chat_template.jinja").is_file():
            template = (folder / "chat_template.jinja").read_text()
        elif (folder / "chat_template.json").is_file():
            template = json.loads((folder / "chat_template.json").read_text())["chat_template"]
        return cls(
            AutoTokenizer.from_pretrained(folder, local_files_only=True),
            AutoImageProcessor.from_pretrained(folder, local_files_only=True),
            template,
        )
