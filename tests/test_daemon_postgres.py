"""Two worker processes on one PostgreSQL queue: 20 requests, each committed exactly once.

A test of the queue: the workers run a stand-in pipeline (tests/local_daemon.py: no training,
the gate opened). The real pipeline and gate on PostgreSQL: tests/test_api_workers.py."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from test_daemon_crash import Served, check_exactly_once, requests_for, wait_all_committed

from unlearnd.config import Settings
from unlearnd.daemon.intake import Intake
from unlearnd.daemon.sink import RegistrySink
from unlearnd.registry import open_registry

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url():
    """A fresh database for this test (created with the role's CREATEDB), dropped after."""
    base = os.environ.get("UNLEARND_TEST_PG_URL")
    if not base:
        if os.environ.get("CI"):
            pytest.fail("UNLEARND_TEST_PG_URL is not set")
        pytest.skip("UNLEARND_TEST_PG_URL is not set")
    import psycopg

    admin = base.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL unreachable: {e}")
    name = f"unlearnd_daemon_{uuid.uuid4().hex[:10]}"
    conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@pytest.mark.slow
def test_two_worker_processes_share_the_queue(tmp_path, pg_url):
    workdir = tmp_path / "w"  # shared: artifacts and request folders (shared storage)
    settings = Settings(workdir=workdir, database_url=pg_url)
    settings.daemon.stable_checks = 1
    store = open_registry(settings)
    intake = Intake(settings, RegistrySink(store))
    for i, doc in enumerate(requests_for(20)):
        (intake.inbox.dir("new") / f"r{i}.json").write_text(json.dumps(doc))
    assert intake.scan_once() == 20 and len(store.list_jobs(state="queued")) == 20

    env = {"UNLEARND_DATABASE_URL": pg_url, "UNLEARND_DAEMON__LEASE_S": "60"}
    workers = [Served(workdir, "--no-intake", **env) for _ in range(2)]
    try:
        wait_all_committed(store, 20, workers[0], timeout=120)
    finally:
        codes = [w.terminate() for w in workers]
    assert codes == [0, 0]
    check_exactly_once(store, 20)
    jobs = store.list_jobs()
    # Exactly once is about commits (checked above). A job may be retried by design, e.g. a
    # worker starved of CPU that loses the alias race MAX_REBASES times; it must still end done
    # within its attempt limit, and the retry must not have committed a second version.
    assert len(jobs) == 20
    assert all(j.state == "done" and j.attempts <= j.max_attempts for j in jobs), [
        (j.request_id, j.state, j.attempts, j.error) for j in jobs if j.attempts != 1
    ]
    assert len({j.worker_id for j in jobs}) == 2  # both processes took work
