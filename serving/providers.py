"""Who fills `[model]` for a deployment that names no model path.

A provider writes a deployment's files (model folder, pools, probe sets) and sets the keys
that name them. The command line registers the built-in world's (cli/main.py); the product
itself never imports the world. Without a provider, such a deployment is an error that says
to set `[model] path`.
"""

from __future__ import annotations

from collections.abc import Callable

from unlearnd.config import Settings

Provider = Callable[[Settings], None]
_default: Provider | None = None


def set_default_provider(provider: Provider | None) -> None:
    global _default
    _default = provider


def provide_default(settings: Settings) -> None:
    """Fill `settings.model` from the default provider when no path is set (else nothing)."""
    if not settings.model.path and _default is not None:
        _default(settings)
