"""A version as a model: the base weights plus every adapter its manifest names.

Used by the pipeline (train on top of the parent) and by `unlearnd generate` / the demo
(answer through a version). Every artifact is verified by the store before it is applied.
"""

from __future__ import annotations

from typing import Any

from unlearnd.methods.apply import apply_artifact
from unlearnd.models import ModelFamily

ADAPTER_PREFIX = "adapter:"  # manifest["artifacts"] keys of method adapters: adapter:<request>


def base_manifest() -> dict[str, Any]:
    return {"experts": {}, "artifacts": {}, "concept_index": None}


def apply_manifest(fam: ModelFamily, manifest: dict[str, Any], artifacts: Any) -> list[str]:
    """Apply every adapter of the manifest to `fam` in place; returns their names."""
    applied = []
    for key, sha in sorted((manifest.get("artifacts") or {}).items()):
        if not key.startswith(ADAPTER_PREFIX):
            continue
        name = f"a{len(applied)}"  # PEFT adapter names must be attribute-safe
        apply_artifact(fam, artifacts.load_tensors(sha), artifacts.load_metadata(sha), name)
        applied.append(key)
    return applied


def load_version(deployment: Any, store: Any, version_id: int | None) -> ModelFamily:
    """The model as of `version_id` (None: the base model)."""
    fam = deployment.load_base()
    if version_id is not None:
        apply_manifest(fam, store.get_version(version_id).manifest, store.artifacts)
    return fam
