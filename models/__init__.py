"""Model families behind one interface (`base.ModelFamily`): llava, qwen2_vl, clip.

`load(path)` opens a local Hugging Face folder (the family comes from its config.json);
`tiny(family)` builds a small random model from a config. Nothing here touches a hub.
"""

from __future__ import annotations

import json
from pathlib import Path

from unlearnd.models.base import FAMILIES, ModelFamily, ModelLoadError, Sample, UnsupportedOperation
from unlearnd.models.device import resolve_device

__all__ = [
    "FAMILIES",
    "ModelFamily",
    "ModelLoadError",
    "Sample",
    "UnsupportedOperation",
    "detect_family",
    "load",
    "resolve_device",
    "tiny",
]

MODEL_TYPES = {"llava": "llava", "qwen2_vl": "qwen2_vl", "clip": "clip"}  # model_type -> family


def detect_family(path: str | Path) -> str:
    folder = Path(path)
    if not folder.exists():
        raise ModelLoadError(f"model folder not found: {folder}")
    if not folder.is_dir():
        raise ModelLoadError(f"not a folder: {folder}")
    config = folder / "config.json"
    if not config.is_file():
        raise ModelLoadError(f"{folder} is not a Hugging Face model folder (no config.json)")
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (json.JSONDecodeError, AttributeError) as e:
        raise ModelLoadError(f"{config} is not valid JSON: {e}") from e
    if model_type not in MODEL_TYPES:
        raise ModelLoadError(
            f"{folder} holds a {model_type!r} model; supported: {', '.join(MODEL_TYPES)}"
        )
    return MODEL_TYPES[model_type]


def _family_class(family: str):
    from unlearnd.models.clip import Clip
    from unlearnd.models.llava import Llava
    from unlearnd.models.qwen2_vl import Qwen2VL

    return {"llava": Llava, "qwen2_vl": Qwen2VL, "clip": Clip}[family]


def _processor(family: str, folder: Path):
    from transformers import AutoProcessor

    if family == "qwen2_vl":
        from unlearnd.models.qwen2_vl import Qwen2VLParts

        return Qwen2VLParts.from_pretrained(folder)
    return AutoProcessor.from_pretrained(folder, local_files_only=True)


def load(
    path: str | Path, *, device: str = "auto", dtype: str = "auto", family: str = "auto"
) -> ModelFamily:
    """Open a local model folder as its family; ModelLoadError says what is wrong."""
    folder = Path(path)
    detected = detect_family(folder)
    if family not in ("auto", detected):
        raise ModelLoadError(f"{folder} holds a {detected} model, not {family}")
    dev, dt = resolve_device(device, dtype)
    cls = _family_class(detected)
    quiet_transformers()
    try:
        model = cls.model_class.from_pretrained(folder, local_files_only=True, dtype=dt)
        processor = _processor(detected, folder)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise ModelLoadError(f"cannot load the {detected} model in {folder}: {e}") from e
    return cls(model, processor, dev, dt)


def quiet_transformers() -> None:
    """No progress bars or backend advice on stderr: our commands print their own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def tiny(family: str, tokenizer=None, seed: int = 0, **size_overrides) -> ModelFamily:
    from unlearnd.models.tiny import tiny as build

    quiet_transformers()
    return build(family, tokenizer, seed, **size_overrides)
