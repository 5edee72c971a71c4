"""What the store takes and returns: validated inputs and frozen, JSON-able records.

Inputs are checked here, before any table row is built (table models skip validation);
a bad value raises pydantic's ValidationError, which names the field.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, computed_field

from unlearnd.refusals import TargetType

REQUEST_STATES = (
    "received",
    "validated",
    "queued",
    "running",
    "evaluating",
    "committed",
    "rejected",
    "failed",
    "gated",
    "reverting",  # a revert job is queued or running; the deletion stays live until it commits
    "reverted",
)
JOB_STATES = ("queued", "running", "done", "failed")
JOB_KINDS = ("deletion", "revert")
VERSION_KINDS = ("base", "deletion", "rollback", "revert")
VERSION_STATUSES = ("committed", "gated", "broken")

RequestState = Literal[REQUEST_STATES]  # type: ignore[valid-type]
VersionKind = Literal[VERSION_KINDS]  # type: ignore[valid-type]
VersionStatus = Literal[VERSION_STATUSES]  # type: ignore[valid-type]

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


def _json_safe(value: Any) -> Any:
    """Reject what the JSON columns cannot hold (NaN, sets, objects) with a clear message."""
    if value is not None:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"not JSON-serialisable ({e})") from None
    return value


JsonDict = Annotated[dict[str, Any] | None, AfterValidator(_json_safe)]


def utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything we stored was UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


# -- inputs ---------------------------------------------------------------------------------


class RequestInput(_Input):
    request_id: Name
    content_sha256: Sha256
    kind: Name
    method: Name
    spec: Annotated[dict[str, Any], AfterValidator(_json_safe)]
    source_name: Annotated[str, StringConstraints(max_length=500)]
    requested_by: Annotated[str, StringConstraints(max_length=200)] | None = None
    reason: str | None = None
    priority: int = 0


class Manifest(_Input):
    """What a version is made of: expert id -> blob, named artifacts -> blob, index snapshot."""

    experts: dict[Name, Sha256] = Field(default_factory=dict)
    artifacts: dict[Name, Sha256] = Field(default_factory=dict)
    concept_index: Sha256 | None = None
    # Expert id -> the type of the target its refusals speak of, where not a person
    # (serving/version.py TARGET_TYPES); None: every expert's target is a person.
    target_types: dict[Name, TargetType] | None = None

    def blobs(self) -> set[str]:
        found = set(self.experts.values()) | set(self.artifacts.values())
        return found | ({self.concept_index} if self.concept_index else set())


class VersionInput(_Input):
    base_fingerprint: Name
    parent_id: int | None = None
    request_id: Name | None = None
    kind: VersionKind = "deletion"
    manifest: Manifest
    method: Name | None = None
    params: JsonDict = None
    metrics: JsonDict = None
    timings: JsonDict = None
    status: VersionStatus = "committed"


class ConceptInput(_Input):
    modality: Annotated[str, StringConstraints(pattern=r"^(visual|textual|[a-z_]{1,20})$")]
    vector: bytes | list[float]
    expert_id: Name | None = None
    label: Annotated[str, StringConstraints(max_length=500)] | None = None


class AliasMoveInput(_Input):
    name: Name
    who: Name
    why: Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


# -- records --------------------------------------------------------------------------------


class RequestRecord(_Record):
    request_id: str
    content_sha256: str
    kind: str
    method: str
    spec: dict[str, Any]
    source_name: str
    requested_by: str | None
    reason: str | None
    priority: int
    state: str
    error: str | None
    created_at: datetime
    updated_at: datetime


class JobRecord(_Record):
    id: int
    request_id: str
    kind: str
    data: dict[str, Any] | None
    state: str
    priority: int
    stage: str | None
    attempts: int
    max_attempts: int
    worker_id: str | None
    lease_expires_at: datetime | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class VersionRecord(_Record):
    id: int
    parent_id: int | None
    request_id: str | None
    kind: str
    base_fingerprint: str
    manifest: dict[str, Any]
    method: str | None
    params: dict[str, Any] | None
    metrics: dict[str, Any] | None
    timings: dict[str, Any] | None
    status: str
    broken_reason: str | None
    created_at: datetime


class AliasEvent(_Record):
    id: int
    alias: str
    from_version: int | None
    to_version: int
    who: str
    why: str
    at: datetime


class ConceptRecord(_Record):
    id: int
    request_id: str
    modality: str
    dim: int
    vector: bytes
    expert_id: str | None
    label: str | None
    active: bool
    created_at: datetime


class ExpertRecord(_Record):
    id: str
    kind: str
    created_by_request: str | None
    artifact_sha256: str | None
    uses: int
    data: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class EventRecord(_Record):
    id: int
    kind: str
    message: str
    request_id: str | None
    version_id: int | None
    data: dict[str, Any] | None
    at: datetime


class RevertPlan(_Record):
    """The live version minus one request: what to commit, and what must be re-trained first.

    `manifest` is ready for create_version when `replay` is empty. Otherwise the entries in
    `restored` are the state before the request and the requests in `replay` (oldest first)
    must be re-run on top of it. `rebuild_concept_index`: the request had concepts, so the
    new manifest has no index snapshot; rebuild it from the active concepts.
    """

    request_id: str
    alias: str
    head_version_id: int
    reverted_version_id: int
    manifest: dict[str, Any]
    dropped: dict[str, list[str]]
    restored: dict[str, dict[str, str]]
    concepts_removed: list[int]
    replay: list[str]
    rebuild_concept_index: bool

    @computed_field
    @property
    def needs_replay(self) -> bool:
        return bool(self.replay)


class RevertOutcome(_Record):
    """A revert as asked: committed now (`version`), or queued for the daemon (`job`)."""

    plan: RevertPlan
    version: VersionRecord | None = None
    job: JobRecord | None = None


def check_choice(value: str, allowed: tuple[str, ...], field: str) -> str:
    """`value` when it is one of `allowed`, else a ValueError naming the field."""
    if value not in allowed:
        raise ValueError(f"{field}: {value!r} is not one of {', '.join(allowed)}")
    return value


def to_record(cls: type[_Record], row: Any) -> Any:
    """A frozen record from an ORM row or a result mapping, times made UTC-aware.

    Rows were validated on the way in, so they are not validated again on the way out:
    re-validating the JSON columns was most of the cost of listing versions.
    """
    data = dict(row._mapping) if hasattr(row, "_mapping") else row.model_dump()
    fields = {}
    for key in cls.model_fields:
        value = data.get(key)
        fields[key] = utc(value) if isinstance(value, datetime) else value
    return cls.model_construct(**fields)
