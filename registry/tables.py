"""SQLModel tables: the registry's schema (changes go through an Alembic migration).

Table models skip pydantic validation, so rows are only ever built from the validated
inputs in `records.py`. Times are UTC; SQLite hands them back naive (see records.utc).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, LargeBinary, String, text
from sqlmodel import Field, SQLModel


def now() -> datetime:
    return datetime.now(UTC)


def _time(**kw: Any) -> Any:
    # Core inserts do not see pydantic defaults: the column's own default fills it.
    return Field(default_factory=now, sa_column=Column(DateTime(timezone=True), default=now, **kw))


def _default(value: Any, **kw: Any) -> Any:
    return Field(default=value, sa_column_kwargs={"default": value}, **kw)


def _json(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=nullable))


class Request(SQLModel, table=True):
    __tablename__ = "request"
    request_id: str = Field(primary_key=True, max_length=200)
    content_sha256: str = Field(max_length=64, unique=True)
    kind: str = Field(max_length=50)
    method: str = Field(max_length=100)
    spec: dict = Field(sa_column=Column(JSON, nullable=False))
    source_name: str = Field(max_length=500)
    requested_by: str | None = Field(default=None, max_length=200)
    reason: str | None = None
    priority: int = _default(0)
    state: str = _default("received", max_length=20, index=True)
    error: str | None = None
    created_at: datetime = _time(nullable=False, index=True)
    updated_at: datetime = _time(nullable=False)


class Job(SQLModel, table=True):
    __tablename__ = "job"
    __table_args__ = (
        Index("ix_job_claim", "state", "priority", "id"),
        # at most one live (queued or running) job per request, enforced by the database
        Index(
            "uq_job_live_request",
            "request_id",
            unique=True,
            sqlite_where=text("state IN ('queued', 'running')"),
            postgresql_where=text("state IN ('queued', 'running')"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(foreign_key="request.request_id", index=True, max_length=200)
    kind: str = Field(  # what the job does: "deletion", or "revert" (a replay, daemon/revert.py)
        default="deletion",
        sa_column=Column(String(20), nullable=False, server_default="deletion"),
    )
    data: dict | None = _json()  # a revert's alias, who and why
    state: str = _default("queued", max_length=20)
    priority: int = _default(0)
    stage: str | None = Field(default=None, max_length=200)
    attempts: int = _default(0)
    max_attempts: int = _default(3)
    worker_id: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    error: str | None = None
    created_at: datetime = _time(nullable=False)
    started_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class Expert(SQLModel, table=True):
    __tablename__ = "expert"
    id: str = Field(primary_key=True, max_length=100)
    kind: str = _default("refuser", max_length=50)
    created_by_request: str | None = Field(
        default=None, foreign_key="request.request_id", max_length=200
    )
    artifact_sha256: str | None = Field(default=None, max_length=64)
    uses: int = _default(0)
    data: dict | None = _json()
    created_at: datetime = _time(nullable=False)
    updated_at: datetime = _time(nullable=False)


class Concept(SQLModel, table=True):
    __tablename__ = "concept"
    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(foreign_key="request.request_id", index=True, max_length=200)
    modality: str = Field(max_length=20)
    dim: int
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # float32, little-endian
    expert_id: str | None = Field(default=None, foreign_key="expert.id", max_length=100)
    label: str | None = Field(default=None, max_length=500)
    active: bool = _default(True, index=True)
    created_at: datetime = _time(nullable=False)


class Artifact(SQLModel, table=True):
    """A blob some version references (blobs not yet referenced have no row)."""

    __tablename__ = "artifact"
    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    created_at: datetime = _time(nullable=False)


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_version"
    id: int | None = Field(default=None, primary_key=True)
    parent_id: int | None = Field(default=None, foreign_key="model_version.id", index=True)
    request_id: str | None = Field(
        default=None, foreign_key="request.request_id", index=True, max_length=200
    )
    kind: str = Field(max_length=20)
    base_fingerprint: str = Field(max_length=200)
    manifest: dict = Field(sa_column=Column(JSON, nullable=False))
    method: str | None = Field(default=None, max_length=100)
    params: dict | None = _json()
    metrics: dict | None = _json()
    timings: dict | None = _json()
    status: str = Field(max_length=20)
    broken_reason: str | None = None
    created_at: datetime = _time(nullable=False)


class VersionArtifact(SQLModel, table=True):
    """Which blobs a version references: what GC keeps, what create_version checked."""

    __tablename__ = "version_artifact"
    version_id: int = Field(foreign_key="model_version.id", primary_key=True)
    sha256: str = Field(foreign_key="artifact.sha256", primary_key=True, index=True, max_length=64)


class Alias(SQLModel, table=True):
    __tablename__ = "alias"
    name: str = Field(primary_key=True, max_length=100)
    version_id: int = Field(foreign_key="model_version.id")
    updated_at: datetime = _time(nullable=False)


class AliasEventRow(SQLModel, table=True):
    __tablename__ = "alias_event"
    __table_args__ = (Index("ix_alias_event_alias_id", "alias", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    alias: str = Field(max_length=100)
    from_version: int | None = Field(default=None, foreign_key="model_version.id")
    to_version: int = Field(foreign_key="model_version.id")
    who: str = Field(max_length=200)
    why: str
    at: datetime = _time(nullable=False)


class Event(SQLModel, table=True):
    __tablename__ = "event"
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=100, index=True)
    message: str
    request_id: str | None = Field(default=None, max_length=200, index=True)
    version_id: int | None = Field(default=None, index=True)
    data: dict | None = _json()
    at: datetime = _time(nullable=False)
