"""Model families behind one interface (`base.ModelFamily`): llava, qwen2_vl, clip.

`load(path)` opens a local Hugging Face folder (the family comes from its config.json);
`tiny(family)` builds a small random model from a config. Nothing here touches a hub.
"""

from __future__ import annotations

from unlearnd.models.base import FAMILIES, ModelFamily, ModelLoadError, Sample, UnsupportedOperation
from unlearnd.models.device import resolve_device
from unlearnd.models.loading import copy_to, detect_family, load

# Imported last and by name: importing the submodule `unlearnd.models.tiny` sets the package
# attribute `tiny` to the module; this line binds the function over it, once and for all.
from unlearnd.models.tiny import tiny  # noqa: E402

__all__ = [
    "FAMILIES",
    "ModelFamily",
    "ModelLoadError",
    "Sample",
    "UnsupportedOperation",
    "copy_to",
    "detect_family",
    "load",
    "resolve_device",
    "tiny",
]
