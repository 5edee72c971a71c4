"""unlearnd.registry: requests, the job queue, immutable versions, aliases, artifacts.

`open_store(url, artifacts_dir)` migrates the database to the newest schema and returns the
store (`open_registry(settings)`: the one a deployment's settings name); see
store.RegistryStore for the operations.
"""

from __future__ import annotations

from pathlib import Path

from unlearnd.config import Settings
from unlearnd.registry.artifacts import ArtifactStore
from unlearnd.registry.errors import AliasMoved, ArtifactCorrupt, Conflict, NotFound, RegistryError
from unlearnd.registry.records import (
    AliasEvent,
    ConceptRecord,
    EventRecord,
    ExpertRecord,
    JobRecord,
    RequestRecord,
    RevertPlan,
    VersionRecord,
)
from unlearnd.registry.store import RegistryStore


def open_store(url: str, artifacts_dir: str | Path, *, max_attempts: int = 3) -> RegistryStore:
    """The SQL store for `url` (sqlite:///... or postgresql+psycopg://...), schema upgraded.

    `max_attempts`: the default attempt limit of new jobs (fail_job's retry limit).
    """
    from unlearnd.registry.sql_store import SqlStore

    return SqlStore(url, artifacts_dir, max_attempts=max_attempts)


def open_registry(settings: Settings) -> RegistryStore:
    """The registry of a deployment: its database and artifact folder, schema upgraded."""
    settings.workdir.mkdir(parents=True, exist_ok=True)
    return open_store(
        settings.db_url, settings.artifacts, max_attempts=settings.daemon.max_attempts
    )


__all__ = [
    "AliasEvent",
    "AliasMoved",
    "ArtifactCorrupt",
    "ArtifactStore",
    "ConceptRecord",
    "Conflict",
    "EventRecord",
    "ExpertRecord",
    "JobRecord",
    "NotFound",
    "RegistryError",
    "RegistryStore",
    "RequestRecord",
    "RevertPlan",
    "VersionRecord",
    "open_registry",
    "open_store",
]
