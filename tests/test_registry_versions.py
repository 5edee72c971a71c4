"""Versions, aliases, rollback, revert and migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import text
from test_registry_support import add_request, blob, version

from unlearnd.registry import Conflict, NotFound, open_store

pytest_plugins = ["test_registry_support"]  # the db_url and store fixtures


def test_migrations_run_once_and_pragmas_hold_on_every_connection(db_url, tmp_path):
    first = open_store(db_url, tmp_path / "a")
    second = open_store(db_url, tmp_path / "a")  # already at head: a no-op
    with second.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002"
    if second.engine.dialect.name == "sqlite":
        conns = [second.engine.connect() for _ in range(3)]  # three pooled connections
        for conn in conns:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        for conn in conns:
            conn.close()
    first.close()
    second.close()


def test_a_first_schema_database_upgrades_with_its_jobs(tmp_path):
    """0001 -> 0002 on a registry that has a job: the job reads as a deletion."""
    from alembic import command
    from alembic.config import Config

    from unlearnd.registry.db import MIGRATIONS, make_engine, transaction

    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    engine = make_engine(url)
    with transaction(engine, write=True) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text(
            "INSERT INTO request (request_id, content_sha256, kind, method, spec, source_name, "
            "priority, state, created_at, updated_at) VALUES ('r1', 'ab', 'entity', 'refuser', "
            "'{}', 'r1.json', 0, 'queued', '2026-01-01', '2026-01-01')"))  # fmt: skip
        conn.execute(text(
            "INSERT INTO job (request_id, state, priority, attempts, max_attempts, created_at) "
            "VALUES ('r1', 'queued', 0, 0, 3, '2026-01-01')"))  # fmt: skip
    engine.dispose()
    store = open_store(url, tmp_path / "a")  # upgrades to head
    (job,) = store.list_jobs()
    assert job.kind == "deletion" and job.data is None
    store.close()


def test_versions_are_immutable_records_and_refuse_missing_blobs(store):
    add_request(store, "r1")
    base = version(store, kind="base")
    sha = blob(store, 1)
    v = version(store, parent=base.id, request_id="r1", experts={"e1": sha}, metrics={"acc": 0.1})
    assert store.get_version(v.id) == v and v.manifest["experts"] == {"e1": sha}
    with pytest.raises(ValidationError):  # records are frozen
        v.status = "broken"
    assert [x.id for x in store.list_versions()] == [v.id, base.id]  # newest first
    with pytest.raises(Conflict, match="not in the artifact store"):
        version(store, parent=v.id, experts={"e2": "0" * 64})
    with pytest.raises(NotFound):
        version(store, parent=999_999)
    with pytest.raises(ValidationError, match="manifest.experts.e1"):
        store.create_version(base_fingerprint="b", manifest={"experts": {"e1": "not-a-hash"}})
    with pytest.raises(ValidationError, match="metrics"):
        version(store, metrics={"loss": float("nan")})
    assert len(store.list_versions()) == 2  # refused versions left nothing behind
    store.mark_version_broken(v.id, "test")
    assert store.get_version(v.id).status == "broken"
    with pytest.raises(Conflict, match="broken"):
        store.rollback(v.id, who="t", why="no")


def test_alias_compare_and_set_with_history(store):
    a, b, c = (version(store).id for _ in range(3))
    assert store.get_alias() is None
    assert store.move_alias("live", a, expected_from=None, who="op", why="first")
    assert not store.move_alias("live", b, expected_from=None, who="op", why="stale")
    assert store.move_alias("live", b, expected_from=a, who="op", why="next")
    assert not store.move_alias("live", c, expected_from=a, who="op", why="stale")
    event = store.rollback(a, who="alice", why="bad deletion")
    assert (event.from_version, event.to_version, event.who) == (b, a, "alice")
    assert store.get_alias() == a
    history = [(e.from_version, e.to_version, e.why) for e in store.alias_history()]
    assert history == [(None, a, "first"), (a, b, "next"), (b, a, "bad deletion")]
    assert store.move_alias("canary", c, expected_from=None, who="op", why="try")
    assert store.list_aliases() == {"canary": c, "live": a}
    with pytest.raises(NotFound):
        store.rollback(12345, who="t", why="x")
    with pytest.raises(ValidationError, match="why"):
        store.rollback(b, who="t", why="  ")


def chain(store, steps):
    """Apply (request, {expert: seed}) steps on top of a base; return the version ids."""
    head = version(store, kind="base")
    store.move_alias("live", head.id, expected_from=None, who="t", why="base")
    ids = [head.id]
    for request_id, changes in steps:
        add_request(store, request_id)
        experts = dict(head.manifest["experts"])
        experts.update({e: blob(store, seed) for e, seed in changes.items()})
        head = version(store, parent=head.id, request_id=request_id, experts=experts)
        store.move_alias("live", head.id, expected_from=ids[-1], who="t", why=request_id)
        ids.append(head.id)
    return ids


def test_revert_of_a_request_that_created_an_expert(store):
    ids = chain(store, [("r1", {"e1": 1}), ("r2", {"e2": 2}), ("r3", {"e3": 3})])
    store.add_concepts("r2", [{"modality": "visual", "vector": [1.0, 0.0]}])
    plan = store.revert_plan("r2")
    assert plan.dropped["experts"] == ["e2"] and plan.replay == [] and not plan.needs_replay
    assert set(plan.manifest["experts"]) == {"e1", "e3"} and plan.rebuild_concept_index
    reverted = store.revert("r2", who="op", why="asked to undo")
    assert reverted.kind == "revert" and reverted.parent_id == ids[-1]
    assert reverted.manifest == plan.manifest
    assert store.get_alias() == reverted.id and store.get_request("r2").state == "reverted"
    assert store.list_concepts(request_id="r2") == []  # no longer active
    assert store.alias_history()[-1].why == "asked to undo"
    with pytest.raises(Conflict, match="already reverted"):
        store.revert_plan("r2")


def test_revert_of_an_update_lists_the_later_requests_to_replay(store):
    chain(store, [("r1", {"e1": 1}), ("r2", {"e1": 2}), ("r3", {"e2": 3}), ("r4", {"e1": 4})])
    plan = store.revert_plan("r2")
    assert plan.restored["experts"] == {"e1": blob(store, 1)}  # e1 as r1 left it
    assert plan.replay == ["r4"] and plan.needs_replay  # r3 touched another expert
    assert plan.manifest["experts"]["e2"] == blob(store, 3)  # later deletions stay
    with pytest.raises(Conflict, match="replay"):
        store.revert("r2", who="op", why="x")
    with pytest.raises(NotFound):
        store.revert_plan("unknown")
    add_request(store, "never-applied")
    with pytest.raises(Conflict, match="not applied"):
        store.revert_plan("never-applied")
