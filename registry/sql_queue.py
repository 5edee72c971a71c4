"""The job queue of SqlStore: one live job per request, leases, heartbeats, retries.

A worker claims the oldest job of the highest priority with a lease (SKIP LOCKED on
PostgreSQL, so several workers never claim one job twice); a job whose lease runs out is
requeued by the reaper up to its attempt limit, then failed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import exc, insert, select, update

from unlearnd.registry import tables as t
from unlearnd.registry.errors import Conflict, NotFound
from unlearnd.registry.records import JOB_KINDS, JOB_STATES, JobRecord, check_choice, to_record

J = t.Job.__table__
LIVE_JOB = ("queued", "running")


def request_state(job: JobRecord, phase: str) -> str:
    """What the job's request reads while the job is `phase` (queued, running, failed): a
    revert leaves the deletion live until its commit, and a failed revert leaves it live."""
    if job.kind != "revert":
        return phase
    return "committed" if phase == "failed" else "reverting"


class QueueMixin:
    """Needs the store's _write, _read, _locked, _get_request, _set_request_state and
    _add_event (sql_store.SqlStore)."""

    max_attempts: int

    def enqueue_job(
        self, request_id, priority=0, max_attempts=None, kind="deletion", data=None
    ) -> JobRecord:
        """The request's live job (a second call returns the first one's job)."""
        limit = max_attempts or self.max_attempts
        check_choice(kind, JOB_KINDS, "kind")
        try:
            with self._write() as conn:
                self._get_request(conn, request_id)
                live = self._live_job(conn, request_id)
                if live is not None:
                    return live
                values = dict(request_id=request_id, priority=priority, max_attempts=limit)
                conn.execute(insert(J).values(**values, kind=kind, data=data))
                job = self._live_job(conn, request_id)
                if kind == "revert":
                    self._set_request_state(conn, request_id, "reverting")
                    why = f"revert of {request_id} queued (job {job.id})"
                    self._add_event(conn, "revert_queued", why, request_id=request_id, data=data)
                return job
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
                select(J.c.id)
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
            job = self._get_job(conn, row.id)
            self._set_request_state(conn, job.request_id, request_state(job, "running"))
            return job

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
            self._set_request_state(conn, job.request_id, request_state(job, "queued"))
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
        state = request_state(job, "queued" if requeue else "failed")
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
            query = query.where(J.c.state == check_choice(state, JOB_STATES, "state"))
        if request_id is not None:
            query = query.where(J.c.request_id == request_id)
        with self._read() as conn:
            return [to_record(JobRecord, r) for r in conn.execute(query).all()]
