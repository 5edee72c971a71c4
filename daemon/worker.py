"""The worker loop: claim a job with a lease, keep it alive, run the pipeline, commit once.

Exactly-once comes from the registry: `commit_result` checks the lease, creates the version,
moves the alias (compare-and-set) and closes the job in one transaction. A crash before it
leaves nothing visible (the lease expires, the job is retried); a crash after it leaves a
finished job. When another worker moved the alias first we re-run on the new head. After the
commit the new version's report is rendered and stored (evaluation/report.py); a failure
there is logged and leaves the version as it is.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any

from unlearnd.config import Settings
from unlearnd.daemon.pipeline import (
    Interrupted,
    LeaseLost,
    Permanent,
    Pipeline,
    PipelineResult,
    WorkItem,
    pause_point,
)
from unlearnd.daemon.request_store import load_request, requests_root
from unlearnd.registry import AliasMoved, Conflict, RegistryStore

log = logging.getLogger("unlearnd.daemon.worker")

MAX_REBASES = 8  # re-runs on a moved alias before the job is failed (and retried later)
IDLE_POLL_S = 0.5
PROGRESS_EVERY_S = 1.0  # how often step progress is written to the job row


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class JobProgress:
    """Reported by the pipeline; checked for stop requests and a lost lease at each call."""

    worker: Worker
    job_id: int
    request_id: str
    kind: str = "deletion"
    stage_name: str = "claimed"
    done: int = 0
    total: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    reported_at: float = 0.0

    def stage(self, name: str) -> None:
        self.stage_name = name
        store = self.worker.store
        store.set_job_stage(self.job_id, self.worker.worker_id, name)
        if name == "evaluating" and self.kind == "deletion":  # running -> evaluating -> committed
            store.set_request_state(self.request_id, "evaluating")
        log.info("job %s: %s", self.job_id, name, extra={"job_id": self.job_id, "stage": name})
        self.checkpoint(f"during_{name}")

    def step(self, done: int, total: int, **metrics: float) -> None:
        self.done, self.total, self.metrics = done, total, metrics
        now = time.monotonic()
        if now - self.reported_at >= PROGRESS_EVERY_S or done == total:
            # e.g. "training 12/40": what `unlearnd request show` displays while it runs
            self.reported_at = now
            stage = f"{self.stage_name} {done}/{total}"
            self.worker.store.set_job_stage(self.job_id, self.worker.worker_id, stage)
        self.checkpoint("step")

    def checkpoint(self, name: str) -> None:
        pause_point(name)
        self.worker.check_running(self.job_id)


class _Heartbeat(threading.Thread):
    def __init__(self, worker: Worker, job_id: int):
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.worker, self.job_id = worker, job_id
        self.done = threading.Event()
        self.lost = False

    def run(self) -> None:
        d = self.worker.settings.daemon
        while not self.done.wait(d.heartbeat_s):
            try:
                if not self.worker.store.heartbeat(self.job_id, self.worker.worker_id, d.lease_s):
                    if self.done.wait(1.0):  # a beat that raced the job's own commit: not lost
                        return
                    self.lost = True
                    log.error("job %s: lease lost", self.job_id, extra={"job_id": self.job_id})
                    return
            except Exception:  # noqa: BLE001 - a DB hiccup: try again next beat
                log.exception("job %s: heartbeat failed", self.job_id)


class Worker:
    def __init__(
        self,
        settings: Settings,
        store: RegistryStore,
        pipeline: Pipeline,
        worker_id: str | None = None,
        reports: bool = True,
    ):
        self.settings = settings
        self.reports = reports  # store each new version's report (evaluation/report.py)
        self.store = store
        self.pipeline = pipeline
        self.worker_id = worker_id or new_worker_id()
        self.stopping = threading.Event()
        self.current: JobProgress | None = None
        self._heartbeat: _Heartbeat | None = None
        self.processed = 0

    def check_running(self, job_id: int) -> None:
        if self._heartbeat is not None and self._heartbeat.lost:
            raise LeaseLost(f"job {job_id}: lease lost")
        if self.stopping.is_set():
            raise Interrupted(f"job {job_id}: service stopping")

    def run_forever(self) -> None:
        log.info("worker %s started", self.worker_id)
        while not self.stopping.is_set():
            try:
                worked = self.run_one()
            except Exception:  # noqa: BLE001 - e.g. the database is briefly unreachable
                log.exception("worker pass failed")
                worked = False
            if not worked:
                self.stopping.wait(IDLE_POLL_S)
        log.info("worker %s stopped", self.worker_id)

    def run_one(self) -> bool:
        """Claim and process one job; False if the queue was empty."""
        job = self.store.claim_job(self.worker_id, self.settings.daemon.lease_s)
        if job is None:
            return False
        self._heartbeat = _Heartbeat(self, job.id)
        self._heartbeat.start()
        self.current = JobProgress(self, job.id, job.request_id, job.kind)
        version = None
        try:
            version = self._process(job)
        finally:
            self._heartbeat.done.set()  # the job is closed: no more beats
            self._heartbeat = None
            if version is not None and self.reports:
                self._store_report(version)
            self.current = None
            self.processed += 1
        return True

    def _store_report(self, version: Any) -> None:
        """The new version's report, stored and linked to it. After the commit, so a failure
        here leaves a valid version without a stored report (`unlearnd report` renders it)."""
        from unlearnd.evaluation import report

        started = time.monotonic()
        try:
            sha = report.store_report(self.store, version.id)
        except Exception:  # noqa: BLE001 - never fail a committed job over its report
            log.exception("version %s: report not stored", version.id)
            return
        log.info(
            "version %s: report %s stored in %.2f s",
            version.id,
            sha[:12],
            time.monotonic() - started,
            extra={"version_id": version.id},
        )

    def _process(self, job: Any) -> Any:
        """The committed (or gated) version, or None when the job did not finish."""
        ids = {"job_id": job.id, "request_id": job.request_id}
        progress = self.current
        try:
            progress.checkpoint("after_claim")
            request, folder = load_request(requests_root(self.settings), job.request_id)
            version = self._run_and_commit(job, request, folder, progress)
        except Interrupted:
            self.store.release_job(job.id, self.worker_id)
            log.info("job %s released: service stopping", job.id, extra=ids)
        except LeaseLost:
            log.error("job %s abandoned: lease lost (it will be retried)", job.id, extra=ids)
        except Exception as e:  # noqa: BLE001 - any pipeline failure fails this job only
            error = f"{type(e).__name__}: {e}"
            log.error("job %s failed: %s\n%s", job.id, error, traceback.format_exc(), extra=ids)
            try:
                retry = not isinstance(e, Permanent)
                self.store.fail_job(job.id, self.worker_id, error, retry=retry)
            except Conflict:  # the lease expired meanwhile: the reaper retries it, not us
                log.error("job %s: lease no longer ours; left to the reaper", job.id, extra=ids)
        else:
            log.info(
                "job %s committed version %s (%s)",
                job.id,
                version.id,
                version.status,
                extra={**ids, "version_id": version.id},
            )
            return version
        return None

    def _run_and_commit(self, job, request, folder, progress: JobProgress):
        alias = (job.data or {}).get("alias", "live")
        run = self.pipeline.run
        if job.kind == "revert":
            run = getattr(self.pipeline, "revert", None)
            if run is None:
                raise Permanent(f"pipeline {type(self.pipeline).__name__} cannot run reverts")
        for rebase in range(MAX_REBASES + 1):
            parent = self.store.get_alias(alias)
            item = WorkItem(job.request_id, request, folder, parent, self.settings)
            result: PipelineResult = run(job, item, self.store, progress)
            # The work is done: a stop request no longer interrupts, the commit goes ahead.
            pause_point("before_alias")
            if self._heartbeat is not None and self._heartbeat.lost:
                raise LeaseLost(f"job {job.id}: lease lost")
            status = "committed" if result.passed_gate else "gated"  # rollback refuses gated
            version = {**result.version, "parent_id": parent, "request_id": job.request_id,
                       "status": status}  # fmt: skip
            commit = dict(job_id=job.id, worker_id=self.worker_id, version=version, alias=alias,
                          move_alias=result.passed_gate, expected_alias_version=parent)  # fmt: skip
            try:
                if job.kind == "revert":
                    asked = job.data or {}
                    return self.store.commit_revert(
                        **commit,
                        who=f"{asked.get('who', 'unknown')} (replayed by {self.worker_id})",
                        why=f"revert of {job.request_id}: {asked.get('why', '')}",
                        replayed=result.routing or {},
                    )
                return self.store.commit_result(
                    **commit,
                    who=self.worker_id,
                    why=f"request {job.request_id}",
                    routing=result.routing,
                )
            except AliasMoved:
                log.info(
                    "job %s: alias moved during the run; re-basing (%d/%d)",
                    job.id,
                    rebase + 1,
                    MAX_REBASES,
                    extra={"job_id": job.id},
                )
        raise RuntimeError(f"the alias kept moving; gave up after {MAX_REBASES} re-bases")

    def stop(self) -> None:
        """Ask the loop to stop: the running job stops at its next step and is released."""
        self.stopping.set()
