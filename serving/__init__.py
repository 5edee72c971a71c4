"""unlearnd.serving: a version as a served model.

The deployment (model folder, pools), a version loaded onto the base model with its adapters
and expert switch (`load_version`), and answering or classifying through it
(`ServedVersion`). The daemon scores candidates through it; the API and the CLI answer
through it. Names load on first use: `serving.images` (checking untrusted image bytes) must
not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Answer": "answer",
    "ServedVersion": "answer",
    "Deployment": "deployment",
    "DeploymentError": "deployment",
    "RoutedModel": "version",
    "Router": "router",
    "load_version": "version",
}

if TYPE_CHECKING:
    from unlearnd.serving.answer import Answer, ServedVersion
    from unlearnd.serving.deployment import Deployment, DeploymentError
    from unlearnd.serving.router import Router
    from unlearnd.serving.version import RoutedModel, load_version


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'unlearnd.serving' has no attribute {name!r}")
    return getattr(importlib.import_module(f"unlearnd.serving.{_EXPORTS[name]}"), name)


__all__ = [
    "Answer",
    "Deployment",
    "DeploymentError",
    "RoutedModel",
    "Router",
    "ServedVersion",
    "load_version",
]
