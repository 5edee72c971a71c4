"""Opening a local Hugging Face model folder as its family. Nothing here touches a hub."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from transformers import AutoProcessor, AutoTokenizer

from unlearnd.models.base import FAMILIES, ModelFamily, ModelLoadError
from unlearnd.models.causal_lm import CausalLM, is_causal_lm
from unlearnd.models.clip import Clip
from unlearnd.models.device import resolve_device
from unlearnd.models.llava import Llava
from unlearnd.models.qwen2_vl import Qwen2VL, Qwen2VLParts

MODEL_TYPES = {"llava": "llava", "qwen2_vl": "qwen2_vl", "clip": "clip"}  # model_type -> family
SUPPORTED = ", ".join([*MODEL_TYPES, "any *ForCausalLM (causal_lm)"])


def detect_family(path: str | Path) -> str:
    """The family of a local model folder, from its config.json's `model_type`."""
    folder = Path(path)
    if not folder.exists():
        raise ModelLoadError(f"model folder not found: {folder}")
    if not folder.is_dir():
        raise ModelLoadError(f"not a folder: {folder}")
    if not any(folder.iterdir()):
        raise ModelLoadError(f"model folder is empty: {folder}")
    config = folder / "config.json"
    if not config.is_file():
        raise ModelLoadError(f"{folder} is not a Hugging Face model folder (no config.json)")
    try:
        data = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{config} is not valid JSON: {e}") from e
    model_type = data.get("model_type") if isinstance(data, dict) else None
    if model_type is None:
        raise ModelLoadError(f"{config} has no 'model_type'; supported: {SUPPORTED}")
    if model_type in MODEL_TYPES:
        return MODEL_TYPES[model_type]
    if is_causal_lm(data):
        return "causal_lm"
    raise ModelLoadError(f"{folder} holds a {model_type!r} model; supported: {SUPPORTED}")


CLASSES: dict[str, type[ModelFamily]] = {
    "llava": Llava,
    "qwen2_vl": Qwen2VL,
    "clip": Clip,
    "causal_lm": CausalLM,
}


def _processor(family: str, folder: Path):
    if family == "qwen2_vl":
        return Qwen2VLParts.from_pretrained(folder)
    if family == "causal_lm":
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return AutoProcessor.from_pretrained(folder, local_files_only=True)


def load(
    path: str | Path, *, device: str = "auto", dtype: str = "auto", family: str = "auto"
) -> ModelFamily:
    """Open a local model folder as its family; ModelLoadError says what is wrong."""
    folder = Path(path)
    if family not in ("auto", *FAMILIES):
        raise ModelLoadError(f"unknown family {family!r}; supported: auto, {', '.join(FAMILIES)}")
    detected = detect_family(folder)
    if family not in ("auto", detected):
        raise ModelLoadError(f"{folder} holds a {detected} model, not {family}")
    dev, dt = resolve_device(device, dtype)
    cls = CLASSES[detected]
    quiet_transformers()
    try:
        model = cls.model_class.from_pretrained(folder, local_files_only=True, dtype=dt)
        processor = _processor(detected, folder)
    except Exception as e:  # noqa: BLE001 - any failure here means the folder is broken
        raise ModelLoadError(f"cannot load the {detected} model in {folder}: {e}") from e
    return cls(model, processor, dev, dt)


def copy_to(fam: ModelFamily, device: str = "auto", dtype: str = "auto") -> ModelFamily:
    """An independent copy of `fam` (its weights copied, its processor shared: read-only) on
    `device`: what loading the same folder again gives, without reading the disk."""
    dev, dt = resolve_device(device, dtype)
    return type(fam)(copy.deepcopy(fam.model), fam.processor, dev, dt)


def quiet_transformers() -> None:
    """No progress bars or backend advice on stderr: our commands print their own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def check_model_folder(folder: Path) -> str:
    """The family of a model folder that looks loadable, without loading its weights (a 7B
    model takes minutes and tens of GB): config, weight headers and processor must open.
    Raises ModelLoadError saying what is wrong."""
    from transformers import AutoConfig

    family = detect_family(folder)  # what `unlearnd model info` and the daemon use
    quiet_transformers()
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    if not weights:
        raise ModelLoadError(f"{folder} has no weights (*.safetensors or *.bin)")
    try:
        AutoConfig.from_pretrained(folder, local_files_only=True)
        if any(w.suffix == ".safetensors" for w in weights):
            from safetensors import safe_open

            for w in weights:
                if w.suffix == ".safetensors":
                    with safe_open(w, framework="pt") as f:  # reads the header only
                        f.keys()
        _processor(family, folder)
    except Exception as e:  # noqa: BLE001 - any failure here means the folder is broken
        raise ModelLoadError(f"cannot load the {family} model in {folder}: {e}") from e
    return family
