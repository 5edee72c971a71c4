"""A text-only causal language model (Llama/SmolLM2, Qwen2, Mistral, Gemma, Phi, ...): any
local Hugging Face folder whose architecture ends in `ForCausalLM`, with its tokenizer.

Served, trained and exported like the vision-language families: the same prompts, batches,
answer masks and generation (`models/generative.py`), with no image, no vision tower and no
projector (a method's `projector` target part is ignored on it, `methods/shared/lora.py`).
"""

from __future__ import annotations

from typing import Any

from transformers import AutoModelForCausalLM

from unlearnd.models.base import Sample, UnsupportedOperation
from unlearnd.models.generative import GenerativeFamily

NO_IMAGES = "a causal_lm model takes text only: leave `image` out of its samples"


class CausalLM(GenerativeFamily):
    family = "causal_lm"
    model_class = AutoModelForCausalLM
    takes_images = False
    image_placeholder = ""
    image_token_id = -1  # no token is an image

    def prompt_text(self, sample: Sample) -> str:
        if sample.image is not None:
            raise UnsupportedOperation(NO_IMAGES)
        template = self.chat_template()
        if not template:
            return super().prompt_text(sample)
        # Plain LLM templates take a message's content as a string, not a list of parts.
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": sample.question}],
            chat_template=template,
            add_generation_prompt=True,
            tokenize=False,
        )

    def _encode_prompt(self, prompt, image):
        return self.tokenizer(prompt, add_special_tokens=False).input_ids, {}

    def _inputs(self, enc, generating=False):
        inputs = super()._inputs(enc)
        if not generating:  # positions from the mask: left- and right-padded rows agree
            inputs["position_ids"] = (enc.attention_mask.cumsum(-1) - 1).clamp(min=0)
        return inputs

    def vision_features(self, images):
        raise UnsupportedOperation(NO_IMAGES)

    def text_to_visual_attention(self, batch):
        raise UnsupportedOperation(NO_IMAGES)

    def projector_path(self) -> str:
        raise UnsupportedOperation("a causal_lm model has no vision-language projector")

    @property
    def language_model_path(self) -> str:  # type: ignore[override]
        return self.model.base_model_prefix  # "model" for Llama, Qwen2, Mistral, Gemma, Phi

    def info(self) -> dict[str, Any]:
        first_ffn = self.ffn_modules()[0]
        return {
            "family": self.family,
            "architecture": type(self.model).__name__,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "parameters": {
                "total": self._count(self.model),
                "language": self._count(self.language_model()),
            },
            "ffn": {
                "blocks": len(self.ffn_paths()),
                "per_block": {n: list(p.shape) for n, p in first_ffn.named_parameters()},
            },
            "chat_template": self.chat_template() is not None,
        }


def is_causal_lm(config: dict[str, Any]) -> bool:
    """Does a config.json describe a text-only causal LM (by its declared architecture)?"""
    return any(str(a).endswith("ForCausalLM") for a in config.get("architectures") or [])
