"""Intake -> registry -> worker on a real SQLite registry with the (cheap, real) test pipeline."""

from __future__ import annotations

import json
import threading
import time

import pytest
from local_daemon import FingerprintPipeline
from test_intake import GOOD, png, wait_for

from unlearnd.config import Settings
from unlearnd.daemon.housekeeping import build_scheduler
from unlearnd.daemon.intake import Intake
from unlearnd.daemon.sink import RegistrySink
from unlearnd.daemon.worker import Worker
from unlearnd.evaluation import report
from unlearnd.registry import open_registry

PASS = {"max_forget_accuracy": 1.0}  # the test pipeline's stand-in metric is always < 1


def make(tmp_path, **daemon):
    s = Settings(workdir=tmp_path / "w")
    s.daemon.stable_checks = 1
    for key, value in daemon.items():
        setattr(s.daemon, key, value)
    store = open_registry(s)
    return s, store, Intake(s, RegistrySink(store, s.daemon.max_attempts))


def drop(intake, name, **changes):
    doc = {**GOOD, "gate": PASS, **changes}
    (intake.inbox.dir("new") / name).write_text(json.dumps(doc))


def job_of(store, request_id):
    (job,) = store.list_jobs(request_id=request_id)
    return job


class Recording(FingerprintPipeline):
    """Notes the request's state as each stage starts."""

    def run(self, job, request, store, progress):
        seen = self.seen = []

        class Watched:
            def stage(self, name):
                progress.stage(name)
                seen.append((name, store.get_request(request.request_id).state))

            def step(self, done, total, **metrics):
                progress.step(done, total, **metrics)

            def checkpoint(self, name):
                progress.checkpoint(name)

        return super().run(job, request, store, Watched())


def test_drop_to_committed_version_with_real_artifact(tmp_path):
    s, store, intake = make(tmp_path)
    folder = intake.inbox.dir("tmp") / "b"
    folder.mkdir()
    (folder / "a.png").write_bytes(png(color="green"))
    (folder / "request.json").write_text(
        json.dumps(
            {**GOOD, "gate": PASS, "forget": [{"image": "a.png", "question": "q", "answer": "a"}]}
        )
    )
    folder.rename(intake.inbox.dir("new") / "b")
    assert intake.scan_once() == 1
    (rid,) = intake.stats.accepted_ids
    assert store.get_request(rid).state == "queued"
    assert job_of(store, rid).state == "queued"

    pipeline = Recording(s)
    worker = Worker(s, store, pipeline)
    assert worker.run_one() and not worker.run_one()
    assert pipeline.seen == [("training", "running"), ("evaluating", "evaluating")]
    rec = store.get_request(rid)
    assert rec.state == "committed"
    live = store.get_alias("live")
    version = store.get_version(live)
    assert version.request_id == rid and version.parent_id is None
    tensors = store.artifacts.load_tensors(version.manifest["artifacts"][rid])
    green = tensors["fingerprint"][0, :3]  # mean RGB of the image, from the real pixels
    assert green.tolist() == pytest.approx([0.0, 128 / 255, 0.0], abs=1e-6)
    assert job_of(store, rid).state == "done"


def test_gate_failure_keeps_version_but_not_alias(tmp_path):
    s, store, intake = make(tmp_path)
    drop(intake, "g.json", gate={"max_forget_accuracy": 0.0})
    intake.scan_once()
    (rid,) = intake.stats.accepted_ids
    worker = Worker(s, store, FingerprintPipeline(s))
    worker.run_one()
    assert store.get_request(rid).state == "gated"
    assert store.get_alias("live") is None
    (version,) = store.list_versions()
    assert version.status == "gated" and version.metrics["gate"]["passed"] is False


def test_each_new_version_gets_its_report_stored_gated_ones_say_what_failed(tmp_path):
    s, store, intake = make(tmp_path)
    drop(intake, "ok.json", target={"name": "A"})
    drop(intake, "no.json", target={"name": "B"}, gate={"max_forget_accuracy": 0.0})
    intake.scan_once()
    worker = Worker(s, store, FingerprintPipeline(s))
    assert worker.run_one() and worker.run_one()
    by_status = {v.status: v for v in store.list_versions()}
    assert set(by_status) == {"committed", "gated"}
    for status, v in by_status.items():
        data, files = report.stored(store, v.id)
        assert data["summary"]["version"] == v.id and data["summary"]["status"] == status
        assert files["curve.png"].startswith(b"\x89PNG")
        # not in the manifest: children inherit manifests, revert replays them
        assert store.get_version_report(v.id) not in v.manifest["artifacts"].values()
    page = report.stored(store, by_status["gated"].id)[1]["report.html"].decode()
    assert "gate FAILED: forget_acc" in page and "not &lt;= 0.000" in page
    assert (
        "gate passed" in report.stored(store, by_status["committed"].id)[1]["report.html"].decode()
    )
    store.gc(min_age_s=0)  # linked: kept
    assert all(report.stored(store, v.id) for v in by_status.values())


def test_a_report_that_cannot_be_rendered_does_not_fail_the_job(tmp_path, monkeypatch, caplog):
    s, store, intake = make(tmp_path)
    drop(intake, "r.json")
    intake.scan_once()
    (rid,) = intake.stats.accepted_ids

    def broken(store, version_id):
        raise RuntimeError("no fonts on this machine")

    monkeypatch.setattr(report, "render", broken)
    worker = Worker(s, store, FingerprintPipeline(s))
    assert worker.run_one()
    assert store.get_request(rid).state == "committed" and job_of(store, rid).state == "done"
    live = store.get_alias("live")
    assert store.get_version(live).status == "committed"
    assert store.get_version_report(live) is None
    assert "report not stored" in caplog.text and "no fonts" in caplog.text


class Flaky(FingerprintPipeline):
    """Fails its first run: the job is retried and succeeds on the second attempt."""

    failures = 1

    def run(self, job, request, store, progress):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("GPU fell off the bus")
        return super().run(job, request, store, progress)


def test_failure_is_retried_then_committed(tmp_path):
    s, store, intake = make(tmp_path)
    drop(intake, "f.json")
    intake.scan_once()
    (rid,) = intake.stats.accepted_ids
    worker = Worker(s, store, Flaky(s))
    worker.run_one()
    job = job_of(store, rid)
    assert job.state == "queued" and "GPU fell off the bus" in job.error
    worker.run_one()
    assert store.get_request(rid).state == "committed"
    assert job_of(store, rid).attempts == 2


def test_attempt_limit_fails_the_request(tmp_path):
    s, store, intake = make(tmp_path, max_attempts=2)
    drop(intake, "f.json")
    intake.scan_once()
    (rid,) = intake.stats.accepted_ids
    pipeline = Flaky(s)
    pipeline.failures = 5
    worker = Worker(s, store, pipeline)
    while worker.run_one():
        pass
    assert store.get_request(rid).state == "failed"
    assert job_of(store, rid).attempts == 2


class Gated(FingerprintPipeline):
    """Holds every run after training until `go` is set, so two workers share one parent."""

    def __init__(self, settings, started, go):
        super().__init__(settings)
        self.started, self.go = started, go

    def run(self, job, request, store, progress):
        result = super().run(job, request, store, progress)
        self.started.release()
        assert self.go.wait(10)
        return result


def test_alias_moved_is_rebased_on_the_new_head(tmp_path):
    s, store, intake = make(tmp_path)
    drop(intake, "a.json", target={"name": "A"})
    drop(intake, "b.json", target={"name": "B"})
    intake.scan_once()
    started, go = threading.Semaphore(0), threading.Event()
    workers = [Worker(s, store, Gated(s, started, go), worker_id=f"w{i}") for i in range(2)]
    threads = [threading.Thread(target=w.run_one) for w in workers]
    for t in threads:
        t.start()
    assert started.acquire(timeout=10) and started.acquire(timeout=10)  # both on parent None
    go.set()
    for t in threads:
        t.join(20)
    head = store.get_version(store.get_alias("live"))
    parent = store.get_version(head.parent_id)
    assert parent.parent_id is None  # a chain of two, not two siblings
    assert set(head.manifest["artifacts"]) == set(intake.stats.accepted_ids)
    assert {r.state for r in store.list_requests()} == {"committed"}
    assert len(store.list_versions()) == 2  # the first, stale result was never written


class Slow(FingerprintPipeline):
    steps = 50

    def __init__(self, settings, step_s=0.05):
        super().__init__(settings)
        self.step_s = step_s


def test_graceful_stop_releases_the_job_without_counting_an_attempt(tmp_path):
    s, store, intake = make(tmp_path)
    drop(intake, "s.json")
    intake.scan_once()
    (rid,) = intake.stats.accepted_ids
    worker = Worker(s, store, Slow(s))
    t = threading.Thread(target=worker.run_one)
    t.start()
    assert wait_for(lambda: worker.current is not None and worker.current.done >= 2)
    worker.stop()
    t.join(10)
    job = job_of(store, rid)
    assert job.state == "queued" and job.attempts == 0
    assert store.list_versions() == []
    Worker(s, store, FingerprintPipeline(s)).run_one()
    assert store.get_request(rid).state == "committed"


def test_heartbeat_keeps_a_long_job_leased_while_reaping(tmp_path):
    s, store, intake = make(tmp_path, lease_s=1.2, heartbeat_s=0.1)
    drop(intake, "h.json")
    intake.scan_once()
    (rid,) = intake.stats.accepted_ids
    worker = Worker(s, store, Slow(s, step_s=0.06))  # 3 s of work: 2.5 lease lengths
    t = threading.Thread(target=worker.run_one)
    t.start()
    reaped = []
    while t.is_alive():
        reaped += store.reap_expired(s.daemon.max_attempts)
        time.sleep(0.1)
    assert reaped == []
    assert store.get_request(rid).state == "committed"
    assert job_of(store, rid).attempts == 1


def test_housekeeping_scheduler_reaps_rescans_and_collects(tmp_path):
    s, store, intake = make(
        tmp_path, lease_s=0.3, reap_interval_s=0.1, rescan_interval_s=0.1, gc_interval_s=0.1
    )
    drop(intake, "k.json")
    evaluations = []
    s.daemon.reevaluate_interval_s = 0.1
    scheduler = build_scheduler(
        s,
        store,
        rescan=intake.scan_once,
        reevaluate=lambda st: evaluations.append(st.get_alias("live")),
        gc_min_age_s=0.0,
    )
    orphan = store.artifacts.put_bytes(b"nobody refers to me")
    scheduler.start()
    try:
        assert wait_for(lambda: intake.stats.accepted == 1)  # the rescan task took the drop
        job = store.claim_job("crashed-worker", s.daemon.lease_s)  # claimed, never finished
        assert job is not None
        assert wait_for(lambda: job_of(store, job.request_id).state == "queued")  # reaped
        assert wait_for(lambda: not store.artifacts.exists(orphan))  # garbage collected
        assert wait_for(lambda: len(evaluations) >= 1)
    finally:
        scheduler.shutdown()
