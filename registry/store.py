"""The registry's interface: one method per operation (after MLflow's registry store).

`SqlStore` (sql_store.py) implements it on SQLite and PostgreSQL. Every method returns frozen
records (records.py), never live ORM rows. Errors: NotFound, Conflict, AliasMoved (a
Conflict), ArtifactCorrupt; bad arguments raise pydantic's ValidationError naming the field.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from unlearnd.registry.artifacts import ArtifactStore
from unlearnd.registry.records import (
    AliasEvent,
    ConceptRecord,
    EventRecord,
    ExpertRecord,
    JobRecord,
    RequestRecord,
    RevertOutcome,
    RevertPlan,
    VersionRecord,
)


class RegistryStore(ABC):
    artifacts: ArtifactStore

    # -- requests ---------------------------------------------------------------------------
    @abstractmethod
    def create_request(self, **fields: Any) -> tuple[RequestRecord, bool]:
        """Idempotent on content_sha256: (existing record, False) for the same content;
        Conflict when the id is taken by other content."""

    @abstractmethod
    def get_request(self, request_id: str) -> RequestRecord: ...

    @abstractmethod
    def list_requests(
        self, state: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[RequestRecord]:
        """Newest first."""

    @abstractmethod
    def set_request_state(self, request_id: str, state: str, error: str | None = None) -> None: ...

    # -- job queue --------------------------------------------------------------------------
    @abstractmethod
    def enqueue_job(
        self,
        request_id: str,
        priority: int = 0,
        max_attempts: int | None = None,
        kind: str = "deletion",
        data: dict[str, Any] | None = None,
    ) -> JobRecord:
        """One live (queued or running) job per request: returns the live one if there is.
        `kind="revert"`: the request's revert, replayed by the daemon (data: alias, who, why)."""

    @abstractmethod
    def claim_job(self, worker_id: str, lease_s: float) -> JobRecord | None:
        """Highest priority first, then oldest; None when the queue is empty."""

    @abstractmethod
    def heartbeat(self, job_id: int, worker_id: str, lease_s: float) -> bool: ...

    @abstractmethod
    def set_job_stage(self, job_id: int, worker_id: str, stage: str) -> None: ...

    @abstractmethod
    def release_job(self, job_id: int, worker_id: str) -> bool: ...

    @abstractmethod
    def fail_job(
        self,
        job_id: int,
        worker_id: str,
        error: str,
        retry: bool,
        max_attempts: int | None = None,
    ) -> JobRecord: ...

    @abstractmethod
    def reap_expired(self, max_attempts: int) -> list[int]: ...

    @abstractmethod
    def list_jobs(self, state: str | None = None, request_id: str | None = None) -> list[JobRecord]:
        """Oldest first."""

    # -- versions ---------------------------------------------------------------------------
    @abstractmethod
    def create_version(self, **fields: Any) -> VersionRecord: ...

    @abstractmethod
    def get_version(self, version_id: int) -> VersionRecord: ...

    @abstractmethod
    def list_versions(
        self, limit: int = 100, offset: int = 0, before: int | None = None
    ) -> list[VersionRecord]:
        """Newest first; `before`: only versions with a smaller id (keyset paging)."""

    @abstractmethod
    def mark_version_broken(self, version_id: int, reason: str) -> None: ...

    @abstractmethod
    def commit_result(
        self,
        *,
        job_id: int,
        worker_id: str,
        version: dict[str, Any],
        alias: str = "live",
        move_alias: bool,
        expected_alias_version: int | None,
        who: str,
        why: str,
        routing: dict[str, Any] | None = None,
    ) -> VersionRecord:
        """The job's last step, one transaction: lease check, version, alias CAS, job done;
        with `routing` ({"expert": {id, artifact_sha256, data}, "concepts": [{modality,
        vector, label}]}) also the refuser's expert and concept rows when the alias moves."""

    @abstractmethod
    def set_version_report(self, version_id: int, sha256: str) -> None:
        """Link a report blob (evaluation/report.py) to a version, newest link wins. Not in the
        manifest: children inherit manifests and revert replays them, a report is this
        version's own. GC keeps every linked blob."""

    @abstractmethod
    def get_version_report(self, version_id: int) -> str | None:
        """The sha256 of the version's newest report blob, or None (NotFound: no version)."""

    # -- aliases, rollback, revert ----------------------------------------------------------
    @abstractmethod
    def get_alias(self, name: str = "live") -> int | None: ...

    @abstractmethod
    def list_aliases(self) -> dict[str, int]: ...

    @abstractmethod
    def move_alias(
        self, name: str, to_version: int, *, expected_from: int | None, who: str, why: str
    ) -> bool:
        """Compare-and-set plus its alias_event, one transaction; False if the alias moved."""

    @abstractmethod
    def alias_history(self, name: str = "live", limit: int | None = None) -> list[AliasEvent]:
        """Oldest first; `limit`: only the newest `limit` events."""

    @abstractmethod
    def rollback(self, to_version: int, *, alias: str = "live", who: str, why: str) -> AliasEvent:
        """Point the alias at an existing committed version: O(1), no training."""

    @abstractmethod
    def revert_plan(self, request_id: str, alias: str = "live") -> RevertPlan: ...

    @abstractmethod
    def revert(self, request_id: str, *, alias: str = "live", who: str, why: str) -> VersionRecord:
        """Commit the plan's manifest as a new version and move the alias, when no replay is
        needed (Conflict otherwise: the daemon replays)."""

    def request_revert(
        self, request_id: str, *, alias: str = "live", who: str, why: str
    ) -> RevertOutcome:
        """What `unlearnd revert` and the API do: commit now when nothing later changed what
        the request changed, else queue a revert job that the daemon replays."""
        plan = self.revert_plan(request_id, alias=alias)
        if not plan.needs_replay:
            return RevertOutcome(plan=plan, version=self.revert(request_id, alias=alias,
                                                                who=who, why=why))  # fmt: skip
        data = {"alias": alias, "who": who, "why": why, "replay": plan.replay,
                "head_version_id": plan.head_version_id}  # fmt: skip
        priority = self.get_request(request_id).priority
        return RevertOutcome(plan=plan, job=self.enqueue_job(request_id, priority, kind="revert",
                                                             data=data))  # fmt: skip

    @abstractmethod
    def commit_revert(
        self,
        *,
        job_id: int,
        worker_id: str,
        version: dict[str, Any],
        alias: str,
        move_alias: bool,
        expected_alias_version: int,
        who: str,
        why: str,
        replayed: dict[str, dict[str, Any]],
    ) -> VersionRecord:
        """A revert job's last step, one transaction: lease check, the `revert` version, alias
        CAS, job done; when the alias moves, the reverted request's concepts go inactive, each
        replayed request's expert and concept rows are replaced by `replayed[request]` (as
        commit_result's `routing`), and the request becomes `reverted`. Gated: the version is
        kept, the deletion stays live."""

    # -- concepts, experts ------------------------------------------------------------------
    @abstractmethod
    def add_concepts(self, request_id: str, rows: list[dict[str, Any]]) -> list[int]: ...

    @abstractmethod
    def list_concepts(
        self, active_only: bool = True, request_id: str | None = None
    ) -> list[ConceptRecord]: ...

    @abstractmethod
    def create_expert(self, **fields: Any) -> ExpertRecord: ...

    @abstractmethod
    def update_expert(self, expert_id: str, **fields: Any) -> ExpertRecord: ...

    @abstractmethod
    def get_expert(self, expert_id: str) -> ExpertRecord: ...

    @abstractmethod
    def list_experts(self) -> list[ExpertRecord]: ...

    # -- audit, housekeeping ----------------------------------------------------------------
    @abstractmethod
    def add_event(
        self,
        kind: str,
        message: str,
        request_id: str | None = None,
        version_id: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> EventRecord: ...

    @abstractmethod
    def list_events(
        self,
        kind: str | None = None,
        request_id: str | None = None,
        version_id: int | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        """Newest first."""

    @abstractmethod
    def gc(self, dry_run: bool = False, min_age_s: float = 86400.0) -> list[str]:
        """Remove blobs no version, version report or expert references, older than
        min_age_s."""

    @abstractmethod
    def close(self) -> None: ...
