# ruff: noqa: F811  (pytest fixtures imported from test_registry_support)
"""Requests, the job queue and the job's final transaction, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError
from test_registry_support import add_request, blob, db_url, store, version  # noqa: F401

from unlearnd.registry import AliasMoved, Conflict, NotFound


def test_create_request_is_idempotent_on_content(store):
    first = store.get_request(add_request(store, "r1"))
    again, created = store.create_request(
        request_id="other-name",
        content_sha256=first.content_sha256,
        kind="forget",
        method="ga",
        spec={},
        source_name="x.json",
    )
    assert not created and again.request_id == "r1" and again.state == "received"
    assert [r.request_id for r in store.list_requests()] == ["r1"]


def test_request_id_taken_by_other_content_is_a_conflict(store):
    add_request(store, "r1")
    with pytest.raises(Conflict, match="r1"):
        store.create_request(
            request_id="r1",
            content_sha256="b" * 64,
            kind="forget",
            method="ga",
            spec={},
            source_name="y.json",
        )


def test_bad_input_names_the_field_and_writes_nothing(store):
    with pytest.raises(ValidationError, match="content_sha256"):
        store.create_request(
            request_id="r1",
            content_sha256="not-a-hash",
            kind="forget",
            method="ga",
            spec={},
            source_name="y.json",
        )
    with pytest.raises(ValidationError, match="spec"):
        store.create_request(
            request_id="r1",
            content_sha256="c" * 64,
            kind="forget",
            method="ga",
            spec={"x": float("nan")},
            source_name="y.json",
        )
    with pytest.raises(ValueError, match="state"):
        store.set_request_state("r1", "flying")
    assert store.list_requests() == []


def test_unknown_request_is_not_found(store):
    with pytest.raises(NotFound, match="nope"):
        store.get_request("nope")
    with pytest.raises(NotFound):
        store.set_request_state("nope", "queued")
    with pytest.raises(NotFound):
        store.enqueue_job("nope")


def test_claim_order_priority_then_fifo_and_one_live_job_per_request(store):
    for name, priority in [("low", 0), ("high", 5), ("low2", 0)]:
        add_request(store, name)
        store.enqueue_job(name, priority)
    assert store.enqueue_job("low").id == store.list_jobs(request_id="low")[0].id
    assert len(store.list_jobs()) == 3
    claimed = [store.claim_job("w", 30).request_id for _ in range(3)]
    assert claimed == ["high", "low", "low2"]
    assert store.claim_job("w", 30) is None
    job = store.list_jobs(request_id="high")[0]
    assert (job.state, job.attempts, job.worker_id) == ("running", 1, "w")
    assert store.get_request("high").state == "running"


def test_heartbeat_stage_release_and_fail(store):
    add_request(store, "r1")
    store.enqueue_job("r1", max_attempts=2)
    job = store.claim_job("w1", 30)
    assert store.heartbeat(job.id, "w1", 30)
    assert not store.heartbeat(job.id, "intruder", 30)
    store.set_job_stage(job.id, "w1", "training")
    assert store.list_jobs()[0].stage == "training"
    with pytest.raises(Conflict):
        store.set_job_stage(job.id, "intruder", "x")

    assert store.release_job(job.id, "w1")  # graceful stop: the attempt does not count
    job = store.list_jobs()[0]
    assert (job.state, job.attempts) == ("queued", 0)
    assert store.get_request("r1").state == "queued"

    job = store.claim_job("w1", 30)
    assert store.fail_job(job.id, "w1", "boom", retry=True).state == "queued"
    job = store.claim_job("w2", 30)
    assert job.attempts == 2
    failed = store.fail_job(job.id, "w2", "boom again", retry=True)
    assert (failed.state, failed.error) == ("failed", "boom again")
    assert store.get_request("r1").state == "failed"
    with pytest.raises(Conflict):
        store.fail_job(job.id, "w2", "late", retry=True)


def test_expired_leases_are_reaped_then_fail_at_the_limit(store):
    add_request(store, "r1")
    store.enqueue_job("r1")
    job = store.claim_job("dead-worker", lease_s=0.05)
    assert store.reap_expired(max_attempts=2) == []  # lease still running
    time.sleep(0.1)
    assert store.reap_expired(max_attempts=2) == [job.id]
    assert store.list_jobs()[0].state == "queued"
    assert not store.heartbeat(job.id, "dead-worker", 30)  # the lease is gone

    job = store.claim_job("dead-again", lease_s=0.05)
    time.sleep(0.1)
    assert store.reap_expired(max_attempts=2) == [job.id]
    assert store.list_jobs()[0].state == "failed"
    assert store.get_request("r1").state == "failed"
    assert store.list_events(kind="lease_expired")


def _claimed_job(store, request_id="r1"):
    add_request(store, request_id)
    store.enqueue_job(request_id)
    return store.claim_job("w1", 30)


def _version_fields(store, request_id="r1", parent_id=None):
    sha = blob(store, len(request_id) + 0.5)
    return {
        "base_fingerprint": "base-1",
        "parent_id": parent_id,
        "request_id": request_id,
        "manifest": {"experts": {"e1": sha}, "artifacts": {}, "concept_index": None},
        "method": "ga",
        "metrics": {"forget_acc": 0.1},
    }


def test_commit_result_moves_alias_and_finishes_job(store):
    job = _claimed_job(store)
    v = store.commit_result(
        job_id=job.id,
        worker_id="w1",
        version=_version_fields(store),
        move_alias=True,
        expected_alias_version=None,
        who="w1",
        why="request r1",
    )
    assert store.get_alias("live") == v.id
    assert store.list_jobs()[0].state == "done"
    assert store.get_request("r1").state == "committed"
    [event] = store.alias_history("live")
    assert (event.from_version, event.to_version, event.who) == (None, v.id, "w1")
    assert v.model_dump_json()  # records are JSON-able


def test_commit_result_gated_leaves_alias(store):
    job = _claimed_job(store)
    fields = {**_version_fields(store), "status": "gated"}
    v = store.commit_result(
        job_id=job.id,
        worker_id="w1",
        version=fields,
        move_alias=False,
        expected_alias_version=None,
        who="w1",
        why="gated",
    )
    assert v.status == "gated" and store.get_alias() is None
    assert store.get_request("r1").state == "gated"


def test_commit_result_refuses_lost_lease_and_moved_alias_writing_nothing(store):
    base = version(store, experts={"m": blob(store, 1.0)})
    store.move_alias("live", base.id, expected_from=None, who="t", why="base")
    job = _claimed_job(store)
    kwargs = dict(move_alias=True, who="w1", why="r1", version=_version_fields(store, "r1"))
    with pytest.raises(Conflict, match="lease"):
        store.commit_result(
            job_id=job.id, worker_id="other", expected_alias_version=base.id, **kwargs
        )
    with pytest.raises(AliasMoved):
        store.commit_result(job_id=job.id, worker_id="w1", expected_alias_version=None, **kwargs)
    assert [v.id for v in store.list_versions()] == [base.id]
    assert store.list_jobs()[0].state == "running"
    assert len(store.alias_history()) == 1
    v = store.commit_result(job_id=job.id, worker_id="w1", expected_alias_version=base.id, **kwargs)
    assert store.get_alias() == v.id
    with pytest.raises(Conflict):  # exactly once: the job is done, a second commit is refused
        store.commit_result(job_id=job.id, worker_id="w1", expected_alias_version=v.id, **kwargs)


def test_events_and_experts_and_concepts(store):
    add_request(store, "r1")
    store.add_event("note", "hello", request_id="r1", data={"k": 1})
    assert store.list_events(kind="note")[0].data == {"k": 1}
    e = store.create_expert(expert_id="e1", created_by_request="r1")
    with pytest.raises(Conflict):
        store.create_expert(expert_id="e1")
    sha = blob(store, 7.0)
    assert store.update_expert("e1", artifact_sha256=sha, add_uses=2).uses == e.uses + 2
    with pytest.raises(NotFound):
        store.update_expert("nope", data={})
    ids = store.add_concepts(
        "r1", [{"modality": "visual", "vector": [0.5, 1.0], "expert_id": "e1"}]
    )
    [concept] = store.list_concepts()
    assert concept.id == ids[0] and concept.dim == 2 and len(concept.vector) == 8
    with pytest.raises(ValueError, match=r"concepts\[0\]"):
        store.add_concepts("r1", [{"modality": "visual"}])
