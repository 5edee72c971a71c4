"""Tiny random models of each family, built from configs (tests, the world, benchmarks)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import (
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPModel,
    CLIPProcessor,
    CLIPTextConfig,
    CLIPVisionConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
)

from unlearnd.models.base import ModelFamily
from unlearnd.models.causal_lm import CausalLM
from unlearnd.models.clip import Clip
from unlearnd.models.llava import Llava
from unlearnd.models.loading import quiet_transformers
from unlearnd.models.qwen2_vl import IMAGE_PAD, VISION_END, VISION_START, Qwen2VL, Qwen2VLParts
from unlearnd.models.tokenizer import IMAGE, build_word_tokenizer

DEFAULT_WORDS = (
    "what",
    "where",
    "who",
    "is",
    "this",
    "the",
    "a",
    "of",
    "in",
    "photo",
    "person",
    "live",
    "does",
    "do",
    "yes",
    "no",
    "red",
    "green",
    "blue",
    "cat",
    "dog",
)

LLAVA = dict(
    image_size=48,
    patch_size=8,
    vision_hidden=96,
    vision_layers=3,
    vision_heads=4,
    text_hidden=192,
    text_layers=3,
    text_heads=4,
    text_intermediate=0,  # 0: 4 x text_hidden (LLaMA-7B's is 11008 at 4096)
    vision_feature_layer=-1,
)
QWEN2_VL = dict(
    image_size=48,
    patch_size=8,
    vision_hidden=64,
    vision_layers=2,
    vision_heads=4,
    text_hidden=128,
    text_layers=2,
    text_heads=4,
    text_intermediate=0,
)
CAUSAL_LM = dict(text_hidden=128, text_layers=2, text_heads=4, text_intermediate=0)
CLIP = dict(
    image_size=48,
    patch_size=8,
    vision_hidden=96,
    vision_layers=3,
    vision_heads=4,
    text_hidden=96,
    text_layers=3,
    text_heads=4,
    projection_dim=64,
)


def _sizes(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise ValueError(f"unknown size overrides {sorted(unknown)}; known: {sorted(defaults)}")
    return {**defaults, **overrides}


def _ids(tok) -> dict[str, int]:
    return {
        "pad_token_id": tok.pad_token_id,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
    }


def _clip_vision(s: dict[str, Any], **extra: Any) -> CLIPVisionConfig:
    """The CLIP vision tower both llava and clip use (llava's starts from CLIP's, as in LLaVA)."""
    return CLIPVisionConfig(
        image_size=s["image_size"],
        patch_size=s["patch_size"],
        hidden_size=s["vision_hidden"],
        intermediate_size=4 * s["vision_hidden"],
        num_hidden_layers=s["vision_layers"],
        num_attention_heads=s["vision_heads"],
        **extra,
    )


def _clip_images(s: dict[str, Any]) -> CLIPImageProcessorPil:
    side = {"height": s["image_size"], "width": s["image_size"]}
    return CLIPImageProcessorPil(size={"shortest_edge": s["image_size"]}, crop_size=side)


def _decoder(tok, s: dict[str, Any]) -> dict[str, Any]:
    """Sizes of the language model both generative families share."""
    return dict(
        vocab_size=len(tok),
        hidden_size=s["text_hidden"],
        intermediate_size=s["text_intermediate"] or 4 * s["text_hidden"],
        num_hidden_layers=s["text_layers"],
        num_attention_heads=s["text_heads"],
        num_key_value_heads=s["text_heads"],
        **_ids(tok),
    )


def tiny_llava(tok, s) -> Llava:
    vision = _clip_vision(s)
    text = LlamaConfig(max_position_embeddings=512, **_decoder(tok, s))
    tokens = (s["image_size"] // s["patch_size"]) ** 2
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tok.convert_tokens_to_ids(IMAGE),
        image_seq_length=tokens,
        vision_feature_layer=s["vision_feature_layer"],
    )
    processor = LlavaProcessor(
        image_processor=_clip_images(s),
        tokenizer=tok,
        patch_size=s["patch_size"],
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token=IMAGE,
    )
    return Llava(LlavaForConditionalGeneration(config), processor, *_cpu())


def tiny_qwen2_vl(tok, s) -> Qwen2VL:
    head_dim = s["text_hidden"] // s["text_heads"]
    third = head_dim // 2 // 4
    config = Qwen2VLConfig(
        text_config=dict(
            max_position_embeddings=1024,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [head_dim // 2 - 2 * third, third, third],
            },
            **_decoder(tok, s),
        ),
        vision_config=dict(
            depth=s["vision_layers"],
            embed_dim=s["vision_hidden"],
            hidden_size=s["text_hidden"],
            num_heads=s["vision_heads"],
            patch_size=s["patch_size"],
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        image_token_id=tok.convert_tokens_to_ids(IMAGE_PAD),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids(VISION_START),
        vision_end_token_id=tok.convert_tokens_to_ids(VISION_END),
    )
    pixels = s["image_size"] ** 2
    images = Qwen2VLImageProcessorPil(
        min_pixels=pixels,
        max_pixels=pixels,
        patch_size=s["patch_size"],
        merge_size=2,
        temporal_patch_size=2,
    )
    return Qwen2VL(Qwen2VLForConditionalGeneration(config), Qwen2VLParts(tok, images), *_cpu())


def tiny_clip(tok, s) -> Clip:
    text = CLIPTextConfig(
        vocab_size=len(tok),
        hidden_size=s["text_hidden"],
        intermediate_size=4 * s["text_hidden"],
        num_hidden_layers=s["text_layers"],
        num_attention_heads=s["text_heads"],
        max_position_embeddings=64,
        projection_dim=s["projection_dim"],
        **_ids(tok),
    )
    vision = _clip_vision(s, projection_dim=s["projection_dim"])
    config = CLIPConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        projection_dim=s["projection_dim"],
    )
    processor = CLIPProcessor(image_processor=_clip_images(s), tokenizer=tok)
    return Clip(CLIPModel(config), processor, *_cpu())


def tiny_causal_lm(tok, s) -> CausalLM:
    config = LlamaConfig(max_position_embeddings=512, **_decoder(tok, s))
    return CausalLM(LlamaForCausalLM(config), tok, *_cpu())


def _cpu() -> tuple[torch.device, torch.dtype]:
    return torch.device("cpu"), torch.float32


BUILDERS = {
    "llava": (tiny_llava, LLAVA),
    "qwen2_vl": (tiny_qwen2_vl, QWEN2_VL),
    "clip": (tiny_clip, CLIP),
    "causal_lm": (tiny_causal_lm, CAUSAL_LM),
}


def tiny(family: str, tokenizer=None, seed: int = 0, **size_overrides: Any) -> ModelFamily:
    """A small random model of `family` on the CPU in fp32, with its processor; `save(path)`
    writes a folder that `load(path)` reopens. Sizes: see LLAVA, QWEN2_VL, CLIP, CAUSAL_LM
    (overrides by those names). Without `tokenizer`, a word tokenizer over DEFAULT_WORDS."""
    quiet_transformers()
    if family not in BUILDERS:
        raise ValueError(f"unknown family {family!r}; supported: {', '.join(BUILDERS)}")
    build, defaults = BUILDERS[family]
    tok = tokenizer or build_word_tokenizer(DEFAULT_WORDS, wrap=family == "clip")
    torch.manual_seed(seed)
    return build(tok, _sizes(defaults, size_overrides))
