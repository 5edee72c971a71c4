"""Several writers at once: claim exactly once across processes, CAS under contention,
alias history complete after random moves. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_registry_support import add_request, version

from unlearnd.registry import open_store

pytest_plugins = ["test_registry_support"]  # the db_url and store fixtures

CLAIMER = textwrap.dedent(
    """
    import json, sys, time
    from unlearnd.registry import open_store
    store = open_store(sys.argv[1], sys.argv[2])
    worker, claimed = sys.argv[3], []
    print("ready", flush=True)
    sys.stdin.readline()  # both processes start claiming at the same moment
    while True:
        job = store.claim_job(worker, lease_s=60)
        if job is None:
            break
        claimed.append(job.id)
        time.sleep(0.002)  # a little work, so the two processes interleave
    print(json.dumps(claimed))
    """
)


@pytest.mark.slow
def test_two_processes_claim_each_job_exactly_once(db_url, tmp_path):
    store = open_store(db_url, tmp_path / "a")
    for i in range(60):
        add_request(store, f"r{i:02d}", priority=i % 3)
        store.enqueue_job(f"r{i:02d}", priority=i % 3)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, db_url, str(tmp_path / "a"), f"w{n}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.close()
    claimed = [json.loads(p.stdout.read()) for p in procs]
    for p in procs:
        p.wait(timeout=120)
    assert all(p.returncode == 0 for p in procs)
    everything = claimed[0] + claimed[1]
    assert len(everything) == len(set(everything)) == 60  # no job twice, none left out
    assert claimed[0] and claimed[1]  # both took work: the claims really raced
    jobs = store.list_jobs()
    assert all(j.state == "running" and j.attempts == 1 for j in jobs)
    assert {j.worker_id for j in jobs if j.id in claimed[0]} == {"w0"}
    assert store.claim_job("late", 60) is None
    store.close()


def test_two_writers_never_lose_an_alias_move(db_url, tmp_path):
    """Two stores (two connection pools) race to extend the live chain by compare-and-set."""
    stores = [open_store(db_url, tmp_path / "a") for _ in range(2)]
    base = version(stores[0], kind="base")
    stores[0].move_alias("live", base.id, expected_from=None, who="setup", why="base")
    per_writer, errors = 15, []

    def writer(store, name):
        try:
            done = 0
            while done < per_writer:
                head = store.get_alias()
                new = version(store, parent=head)
                if store.move_alias("live", new.id, expected_from=head, who=name, why="next"):
                    done += 1
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(s, f"w{i}")) for i, s in enumerate(stores)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert errors == []
    history = stores[0].alias_history()
    assert len(history) == 1 + 2 * per_writer
    for before, after in zip(history, history[1:], strict=False):
        assert after.from_version == before.to_version  # an unbroken chain: no lost update
    head = stores[0].get_version(stores[0].get_alias())
    depth = 0
    while head.parent_id is not None:  # the live chain contains every successful move
        head, depth = stores[0].get_version(head.parent_id), depth + 1
    assert depth == 2 * per_writer
    for s in stores:
        s.close()


@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(moves=st.lists(st.tuples(st.integers(0, 7), st.booleans()), min_size=100, max_size=100))
def test_alias_history_is_complete_after_100_random_moves(store, moves):
    ids = [version(store).id for _ in range(8)]
    alias = f"a{len(store.list_aliases())}"  # a fresh alias per example
    current, expected_history = None, []
    for target, stale in moves:
        to = ids[target]
        if stale and current is not None:  # a stale compare-and-set must change nothing
            assert not store.move_alias(alias, to, expected_from=-1, who="h", why="stale")
            continue
        if to == current:
            continue
        if current is not None and target % 2:
            event = store.rollback(to, alias=alias, who="h", why=f"rb {target}")
            assert event.from_version == current
        else:
            assert store.move_alias(alias, to, expected_from=current, who="h", why=f"mv {target}")
        expected_history.append((current, to))
        current = to
    history = store.alias_history(alias)
    assert [(e.from_version, e.to_version) for e in history] == expected_history
    assert store.get_alias(alias) == current
