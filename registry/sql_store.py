"""RegistryStore on SQL: requests, the job queue, concepts, experts, events.

Versions, aliases, rollback, revert and GC are in sql_versions.py (a mixin of this class).
Writes run in write transactions (db.transaction): BEGIN IMMEDIATE on SQLite, row locks
(FOR UPDATE, SKIP LOCKED for the queue) on PostgreSQL. Times come from this process's clock
(UTC): keep the clocks of several worker machines in sync (NTP).
"""

from __future__ import annotations

import array
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Select, exc, insert, select, update

from unlearnd.registry import tables as t
from unlearnd.registry.artifacts import ArtifactStore
from unlearnd.registry.db import make_engine, transaction, upgrade
from unlearnd.registry.errors import Conflict, NotFound
from unlearnd.registry.records import (
    JOB_STATES,
    REQUEST_STATES,
    ConceptInput,
    ConceptRecord,
    EventRecord,
    ExpertRecord,
    JobRecord,
    RequestInput,
    RequestRecord,
    to_record,
)
from unlearnd.registry.sql_versions import VersionsMixin
from unlearnd.registry.store import RegistryStore

R, J = t.Request.__table__, t.Job.__table__
C, X, E = t.Concept.__table__, t.Expert.__table__, t.Event.__table__
LIVE_JOB = ("queued", "running")


def concept_values(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validated concept rows with their vector as float32 bytes."""
    values = []
    for i, raw in enumerate(rows):
        try:
            row = ConceptInput(**raw)
        except ValueError as e:
            raise ValueError(f"concepts[{i}]: {e}") from None
        vector = (
            row.vector if isinstance(row.vector, bytes) else array.array("f", row.vector).tobytes()
        )
        if not vector or len(vector) % 4:
            raise ValueError(f"concepts[{i}].vector: {len(vector)} bytes is not float32 data")
        values.append({**row.model_dump(), "vector": vector, "dim": len(vector) // 4})
    return values


class SqlStore(VersionsMixin, RegistryStore):
    def __init__(self, url: str, artifacts_dir: str | Path, *, max_attempts: int = 3):
        self.engine = make_engine(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self.max_attempts = max_attempts
        upgrade(self.engine)
        self.artifacts = ArtifactStore(artifacts_dir, on_corrupt=self.mark_blob_broken)

    def close(self) -> None:
        self.engine.dispose()

    def _write(self):
        return transaction(self.engine, write=True)

    def _read(self):
        return transaction(self.engine, write=False)

    def _locked(self, query: Select, skip_locked: bool = False) -> Select:
        """Row locks on PostgreSQL; on SQLite the write transaction already holds the lock."""
        return query.with_for_update(skip_locked=skip_locked) if self.is_postgres else query

    # -- requests ---------------------------------------------------------------------------

    def create_request(self, **fields: Any) -> tuple[RequestRecord, bool]:
        spec = RequestInput(**fields)
        try:
            with self._write() as conn:
                found = self._request_by_content(conn, spec.content_sha256)
                if found is not None:
                    return found, False
                if conn.execute(
                    select(R.c.request_id).where(R.c.request_id == spec.request_id)
                ).first():
                    raise Conflict(
                        f"request id {spec.request_id!r} is taken by a request with other content"
                    )
                conn.execute(insert(R).values(**spec.model_dump(), state="received"))
                return self._get_request(conn, spec.request_id), True
        except exc.IntegrityError:  # PostgreSQL: another worker inserted it meanwhile
            with self._read() as conn:
                found = self._request_by_content(conn, spec.content_sha256)
            if found is None:
                raise
            return found, False

    def _request_by_content(self, conn, content_sha256: str) -> RequestRecord | None:
        row = conn.execute(select(R).where(R.c.content_sha256 == content_sha256)).first()
        return to_record(RequestRecord, row) if row else None

    def _get_request(self, conn, request_id: str) -> RequestRecord:
        row = conn.execute(select(R).where(R.c.request_id == request_id)).first()
        if row is None:
            raise NotFound(f"unknown request {request_id!r}")
        return to_record(RequestRecord, row)

    def get_request(self, request_id: str) -> RequestRecord:
        with self._read() as conn:
            return self._get_request(conn, request_id)

    def list_requests(self, state=None, limit=100, offset=0) -> list[RequestRecord]:
        query = select(R).order_by(R.c.created_at.desc(), R.c.request_id.desc())
        if state is not None:
            query = query.where(R.c.state == _check(state, REQUEST_STATES, "state"))
        with self._read() as conn:
            rows = conn.execute(query.limit(limit).offset(offset)).all()
        return [to_record(RequestRecord, r) for r in rows]

    def set_request_state(self, request_id: str, state: str, error: str | None = None) -> None:
        _check(state, REQUEST_STATES, "state")
        with self._write() as conn:
            self._set_request_state(conn, request_id, state, error)

    def _set_request_state(self, conn, request_id, state, error=None) -> None:
        done = conn.execute(
            update(R)
            .where(R.c.request_id == request_id)
            .values(state=state, error=error, updated_at=t.now())
        )
        if done.rowcount != 1:
            raise NotFound(f"unknown request {request_id!r}")

    # -- job queue --------------------------------------------------------------------------

    def enqueue_job(self, request_id, priority=0, max_attempts=None) -> JobRecord:
        limit = max_attempts or self.max_attempts
        try:
            with self._write() as conn:
                self._get_request(conn, request_id)
                live = self._live_job(conn, request_id)
                if live is not None:
                    return live
                conn.execute(
                    insert(J).values(request_id=request_id, priority=priority, max_attempts=limit)
                )
                return self._live_job(conn, request_id)
        except exc.IntegrityError:  # PostgreSQL: a concurrent enqueue won (uq_job_live_request)
            with self._read() as conn:
                return self._live_job(conn, request_id)

    def _live_job(self, conn, request_id: str) -> JobRecord | None:
        query = select(J).where(J.c.request_id == request_id, J.c.state.in_(LIVE_JOB))
        row = conn.execute(query).first()
        return to_record(JobRecord, row) if row else None

    def _get_job(self, conn, job_id: int, lock: bool = False) -> JobRecord:
        query = select(J).where(J.c.id == job_id)
        row = conn.execute(self._locked(query) if lock else query).first()
        if row is None:
            raise NotFound(f"unknown job {job_id}")
        return to_record(JobRecord, row)

    def claim_job(self, worker_id: str, lease_s: float) -> JobRecord | None:
        with self._write() as conn:
            query = (
                select(J.c.id, J.c.request_id)
                .where(J.c.state == "queued")
                .order_by(J.c.priority.desc(), J.c.id)
                .limit(1)
            )
            row = conn.execute(self._locked(query, skip_locked=True)).first()
            if row is None:
                return None
            now = t.now()
            conn.execute(
                update(J)
                .where(J.c.id == row.id)
                .values(
                    state="running",
                    stage="claimed",
                    worker_id=worker_id,
                    lease_expires_at=now + timedelta(seconds=lease_s),
                    attempts=J.c.attempts + 1,
                    started_at=now,
                )
            )
            self._set_request_state(conn, row.request_id, "running")
            return self._get_job(conn, row.id)

    def _ours(self, job_id: int, worker_id: str):
        return (J.c.id == job_id, J.c.worker_id == worker_id, J.c.state == "running")

    def heartbeat(self, job_id: int, worker_id: str, lease_s: float) -> bool:
        expires = t.now() + timedelta(seconds=lease_s)
        with self._write() as conn:
            done = conn.execute(
                update(J).where(*self._ours(job_id, worker_id)).values(lease_expires_at=expires)
            )
        return done.rowcount == 1

    def set_job_stage(self, job_id: int, worker_id: str, stage: str) -> None:
        with self._write() as conn:
            done = conn.execute(
                update(J).where(*self._ours(job_id, worker_id)).values(stage=stage[:200])
            )
        if done.rowcount != 1:
            raise Conflict(f"job {job_id}: the lease is no longer held by {worker_id}")

    def release_job(self, job_id: int, worker_id: str) -> bool:
        """Back to the queue after a graceful stop; this attempt does not count."""
        with self._write() as conn:
            job = self._get_job(conn, job_id, lock=True)
            if job.state != "running" or job.worker_id != worker_id:
                return False
            conn.execute(
                update(J)
                .where(J.c.id == job_id)
                .values(
                    state="queued",
                    stage=None,
                    worker_id=None,
                    lease_expires_at=None,
                    attempts=J.c.attempts - 1,
                )
            )
            self._set_request_state(conn, job.request_id, "queued")
        return True

    def fail_job(self, job_id, worker_id, error, retry, max_attempts=None) -> JobRecord:
        with self._write() as conn:
            job = self._get_job(conn, job_id, lock=True)
            if job.state != "running" or job.worker_id != worker_id:
                raise Conflict(f"job {job_id}: the lease is no longer held by {worker_id}")
            limit = max_attempts or job.max_attempts
            self._end_attempt(conn, job, error, requeue=retry and job.attempts < limit)
            return self._get_job(conn, job_id)

    def _end_attempt(self, conn, job: JobRecord, error: str, requeue: bool) -> None:
        values: dict[str, Any] = {"worker_id": None, "lease_expires_at": None, "error": error}
        if requeue:
            values.update(state="queued", stage=None)
        else:
            values.update(state="failed", finished_at=t.now())
        conn.execute(update(J).where(J.c.id == job.id).values(**values))
        state = "queued" if requeue else "failed"
        self._set_request_state(conn, job.request_id, state, None if requeue else error)

    def reap_expired(self, max_attempts: int) -> list[int]:
        """Jobs whose lease ran out (worker died): back to the queue, or failed at the limit."""
        with self._write() as conn:
            query = select(J).where(J.c.state == "running", J.c.lease_expires_at < t.now())
            rows = conn.execute(self._locked(query, skip_locked=True)).all()
            for row in rows:
                job = to_record(JobRecord, row)
                requeue = job.attempts < max_attempts
                note = f"lease of {job.worker_id} expired (attempt {job.attempts}/{max_attempts})"
                self._end_attempt(conn, job, note, requeue)
                self._add_event(conn, "lease_expired", note, request_id=job.request_id)
        return [row.id for row in rows]

    def list_jobs(self, state=None, request_id=None) -> list[JobRecord]:
        query = select(J).order_by(J.c.id)
        if state is not None:
            query = query.where(J.c.state == _check(state, JOB_STATES, "state"))
        if request_id is not None:
            query = query.where(J.c.request_id == request_id)
        with self._read() as conn:
            return [to_record(JobRecord, r) for r in conn.execute(query).all()]

    # -- concepts and experts (routing fills them; the registry only stores) -----------------

    def add_concepts(self, request_id: str, rows: list[dict[str, Any]]) -> list[int]:
        values = concept_values(rows)
        with self._write() as conn:
            self._get_request(conn, request_id)
            return self._insert_concepts(conn, request_id, values)

    def _insert_concepts(self, conn, request_id: str, values: list[dict[str, Any]]) -> list[int]:
        ids = []
        for value in values:
            result = conn.execute(insert(C).values(request_id=request_id, **value))
            ids.append(result.inserted_primary_key[0])
        return ids

    def _record_routing(self, conn, request_id: str, routing: dict[str, Any]) -> None:
        """A committed refuser request's expert (created, or its new artifact and one more
        use) and its concept rows, inside the commit's transaction."""
        expert = routing["expert"]
        values = concept_values([{**c, "expert_id": expert["id"]} for c in routing["concepts"]])
        exists = conn.execute(select(X.c.id).where(X.c.id == expert["id"])).first()
        now = t.now()
        if exists:
            conn.execute(
                update(X)
                .where(X.c.id == expert["id"])
                .values(
                    artifact_sha256=expert["artifact_sha256"],
                    uses=X.c.uses + 1,
                    data=expert.get("data"),
                    updated_at=now,
                )  # fmt: skip
            )
        else:
            conn.execute(
                insert(X).values(
                    id=expert["id"],
                    kind="refuser",
                    created_by_request=request_id,
                    artifact_sha256=expert["artifact_sha256"],
                    uses=1,
                    data=expert.get("data"),
                    created_at=now,
                    updated_at=now,
                )  # fmt: skip
            )
        self._insert_concepts(conn, request_id, values)

    def list_concepts(self, active_only=True, request_id=None) -> list[ConceptRecord]:
        query = select(C).order_by(C.c.id)
        if active_only:
            query = query.where(C.c.active.is_(True))
        if request_id is not None:
            query = query.where(C.c.request_id == request_id)
        with self._read() as conn:
            return [to_record(ConceptRecord, r) for r in conn.execute(query).all()]

    def create_expert(
        self,
        *,
        expert_id: str,
        kind: str = "refuser",
        created_by_request: str | None = None,
        artifact_sha256: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> ExpertRecord:
        if not expert_id or len(expert_id) > 100:
            raise ValueError("expert_id: 1 to 100 characters")
        with self._write() as conn:
            if conn.execute(select(X.c.id).where(X.c.id == expert_id)).first():
                raise Conflict(f"expert {expert_id!r} exists")
            conn.execute(
                insert(X).values(
                    id=expert_id,
                    kind=kind,
                    created_by_request=created_by_request,
                    artifact_sha256=artifact_sha256,
                    data=data,
                )
            )
            return self._get_expert(conn, expert_id)

    def update_expert(self, expert_id: str, **fields: Any) -> ExpertRecord:
        """Set artifact_sha256 and/or data; `uses=+n` style counting via add_uses."""
        allowed = {"artifact_sha256", "data", "kind", "add_uses"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"update_expert: unknown field(s) {sorted(unknown)}")
        values: dict[str, Any] = {k: v for k, v in fields.items() if k != "add_uses"}
        if "add_uses" in fields:
            values["uses"] = X.c.uses + int(fields["add_uses"])
        with self._write() as conn:
            done = conn.execute(
                update(X).where(X.c.id == expert_id).values(**values, updated_at=t.now())
            )
            if done.rowcount != 1:
                raise NotFound(f"unknown expert {expert_id!r}")
            return self._get_expert(conn, expert_id)

    def _get_expert(self, conn, expert_id: str) -> ExpertRecord:
        row = conn.execute(select(X).where(X.c.id == expert_id)).first()
        if row is None:
            raise NotFound(f"unknown expert {expert_id!r}")
        return to_record(ExpertRecord, row)

    def get_expert(self, expert_id: str) -> ExpertRecord:
        with self._read() as conn:
            return self._get_expert(conn, expert_id)

    def list_experts(self) -> list[ExpertRecord]:
        with self._read() as conn:
            rows = conn.execute(select(X).order_by(X.c.created_at, X.c.id)).all()
        return [to_record(ExpertRecord, r) for r in rows]

    # -- audit ------------------------------------------------------------------------------

    def add_event(self, kind, message, request_id=None, version_id=None, data=None) -> EventRecord:
        with self._write() as conn:
            event_id = self._add_event(conn, kind, message, request_id, version_id, data)
            row = conn.execute(select(E).where(E.c.id == event_id)).one()
        return to_record(EventRecord, row)

    def _add_event(self, conn, kind, message, request_id=None, version_id=None, data=None) -> int:
        result = conn.execute(
            insert(E).values(
                kind=kind, message=message, request_id=request_id, version_id=version_id, data=data
            )
        )
        return result.inserted_primary_key[0]

    def list_events(self, kind=None, request_id=None, version_id=None, limit=100):
        query = select(E).order_by(E.c.id.desc()).limit(limit)
        for column, value in ((E.c.kind, kind), (E.c.request_id, request_id)):
            if value is not None:
                query = query.where(column == value)
        if version_id is not None:
            query = query.where(E.c.version_id == version_id)
        with self._read() as conn:
            return [to_record(EventRecord, r) for r in conn.execute(query).all()]


def _check(value: str, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise ValueError(f"{field}: {value!r} is not one of {', '.join(allowed)}")
    return value
