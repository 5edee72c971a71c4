"""Scaling out: two `unlearnd serve` workers and one `unlearnd api` on one PostgreSQL.

20 requests submitted through the API, each committed exactly once, the live chain and the
alias history consistent, and the API (JSON and /metrics) shows all of it. The processes
run a stand-in pipeline (tests/local_daemon.py: no training, the gate opened) so that 20
jobs take seconds; the real pipeline and its gate on PostgreSQL are the second test's.
"""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_api import AUTH, TOKEN, ApiServer
from test_daemon_crash import Served, check_exactly_once, requests_for
from test_daemon_postgres import pg_url  # noqa: F401 - the fixture: a fresh database
from test_end_to_end import DELETE, SAYS_ANOTHER, six_facts, write_bundle

from unlearnd.config import Settings
from unlearnd.registry import open_registry

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
N = 20


def wait_all_committed_via_api(client, n: int, workers, timeout: float = 120.0) -> list[dict]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rows = client.get("/requests", params={"limit": 1000}).json()
        if len(rows) == n and {r["state"] for r in rows} == {"committed"}:
            return rows
        time.sleep(0.3)
    logs = "\n".join("".join(w.lines)[-1500:] for w in workers)
    raise AssertionError(f"states {[r['state'] for r in rows]}; worker output:\n{logs}")


def scrape(client) -> dict:
    text = client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_two_workers_and_the_api_on_postgres(tmp_path, pg_url):  # noqa: F811
    workdir = tmp_path / "w"  # shared by all three processes: inbox, requests, artifacts
    store = open_registry(Settings(workdir=workdir, database_url=pg_url))  # schema, once
    env = {"UNLEARND_DATABASE_URL": pg_url}
    api = ApiServer(workdir, UNLEARND_API__TOKEN=TOKEN, **env)
    # Both workers also run an intake on the shared inbox: claiming is a rename, so each
    # dropped file is taken by exactly one of them.
    workers = [Served(workdir, UNLEARND_DAEMON__LEASE_S="60", **env) for _ in range(2)]
    try:
        submitted = []
        for doc in requests_for(N):
            r = api.client.post("/requests", json=doc, headers=AUTH)
            assert r.status_code == 202, r.text
            submitted.append(r.json()["request_id"])
        rows = wait_all_committed_via_api(api.client, N, workers)
        versions = api.client.get("/versions", params={"limit": 100}).json()
        history = api.client.get("/aliases/live/history").json()
        metrics = scrape(api.client)
    finally:
        codes = [w.terminate() for w in workers]
        api.stop()
    assert codes == [0, 0]
    assert sorted(r["request_id"] for r in rows) == sorted(submitted)

    check_exactly_once(store, N)  # one version per request; the live chain applies each once
    jobs = store.list_jobs()
    assert len(jobs) == N and all(j.state == "done" for j in jobs)
    assert len({j.worker_id for j in jobs}) == 2  # both workers took work

    # What the API showed agrees with the registry, read directly.
    live = store.get_alias("live")
    assert [v["id"] for v in versions] == [v.id for v in store.list_versions(limit=100)]
    assert [v for v in versions if "live" in v["aliases"]][0]["id"] == live
    moves = [(e["from_version"], e["to_version"]) for e in history]
    assert len(moves) == N and moves[-1][1] == live
    assert all(a[1] == b[0] for a, b in zip(moves, moves[1:], strict=False))  # an unbroken chain
    assert metrics[("unlearnd_jobs", (("state", "done"),))] == N
    assert metrics[("unlearnd_queue_depth", ())] == 0
    assert metrics[("unlearnd_live_version", ())] == live
    assert metrics[("unlearnd_job_duration_seconds_count", (("state", "done"),))] == N


def test_the_real_pipeline_and_gate_on_postgres(tmp_path, pg_url):  # noqa: F811
    """The worker's own pipeline on PostgreSQL (the six-facts model: training, scoring on
    held-out pictures, the promotion gate): a deletion that forgets is committed, one that
    trains too little to forget is gated, and /metrics counts one of each."""
    from fastapi.testclient import TestClient
    from local_daemon import LocalDaemon

    from unlearnd.api import create_app

    settings = six_facts(tmp_path, database_url=pg_url)
    daemon = LocalDaemon(settings)
    store = daemon.store
    # First: on top of the deletion, its two people would be forgotten already.
    weak = {**DELETE, "steps": 1, "lr": 1e-6}
    too_little = daemon.submit(write_bundle(tmp_path / "too-little", method="reject", params=weak,
                                            gate=SAYS_ANOTHER))  # fmt: skip
    forgets = daemon.submit(write_bundle(tmp_path / "forgets", method="reject", params=DELETE,
                                         gate=SAYS_ANOTHER))  # fmt: skip
    assert store.get_request(forgets).state == "committed"
    assert store.get_request(too_little).state == "gated"
    committed, gated = (next(v for v in store.list_versions() if v.request_id == r)
                        for r in (forgets, too_little))  # fmt: skip
    assert committed.metrics["forget_acc"] == 0.0 and gated.metrics["forget_acc"] == 1.0
    assert store.get_alias("live") == committed.id  # the gated version never went live
    with TestClient(create_app(settings)) as http:
        metrics = scrape(http)
    assert metrics[("unlearnd_gate_results_total", (("result", "passed"),))] == 1
    assert metrics[("unlearnd_gate_results_total", (("result", "failed"),))] == 1
