"""The registry's errors: callers catch these, never SQLAlchemy's."""

from __future__ import annotations


class RegistryError(Exception):
    """Base class of every error the registry raises on purpose."""


class NotFound(RegistryError, LookupError):
    """An unknown request, job, version, alias, expert or artifact."""


class Conflict(RegistryError):
    """The operation contradicts the stored state (lease not ours, id taken, blob missing...)."""


class AliasMoved(Conflict):
    """Compare-and-set failed: the alias no longer points to the expected version."""


class ArtifactCorrupt(RegistryError):
    """A blob's bytes no longer hash to its name; it was not deserialised."""

    def __init__(self, sha256: str, actual: str | None, path: str):
        self.sha256, self.actual, self.path = sha256, actual, path
        found = "missing" if actual is None else f"hashes to {actual}"
        super().__init__(f"artifact {sha256} is corrupt: {path} {found}")
