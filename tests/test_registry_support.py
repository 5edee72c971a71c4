"""Shared fixtures for the registry tests: a store on SQLite and on a real PostgreSQL.

Import what you need (`from test_registry_support import store  # noqa: F401`). Each
PostgreSQL test gets its own fresh schema, dropped afterwards, so tests never see each other.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from urllib.parse import quote

import pytest
import torch

from unlearnd.registry import open_store

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pg_admin_connection():
    """A psycopg connection to the test server, or skip (fail in CI) when there is none."""
    base = os.environ.get("UNLEARND_TEST_PG_URL")
    if not base:
        if os.environ.get("CI"):
            pytest.fail("UNLEARND_TEST_PG_URL is not set (required in CI)")
        pytest.skip("UNLEARND_TEST_PG_URL is not set")
    import psycopg

    try:
        conn = psycopg.connect(
            base.replace("postgresql+psycopg://", "postgresql://", 1),
            autocommit=True,
            connect_timeout=3,
        )
    except psycopg.OperationalError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL unreachable: {e}")
    return base, conn


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    base, conn = pg_admin_connection()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.close()


@pytest.fixture
def store(db_url, tmp_path):
    s = open_store(db_url, tmp_path / "artifacts")
    yield s
    s.close()


def sha_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def add_request(store, name: str, priority: int = 0, enqueue: bool = False) -> str:
    store.create_request(
        request_id=name,
        content_sha256=sha_of(name),
        kind="entity",
        method="refuser",
        spec={"target": {"name": name}},
        source_name=f"{name}.json",
        priority=priority,
    )
    if enqueue:
        store.enqueue_job(name, priority=priority)
    return name


def blob(store, seed: float) -> str:
    return store.artifacts.put_tensors({"w": torch.full((4, 4), float(seed))})


def version(store, parent=None, request_id=None, experts=None, artifacts=None, **extra):
    return store.create_version(
        base_fingerprint="base-fp",
        parent_id=parent,
        request_id=request_id,
        manifest={"experts": experts or {}, "artifacts": artifacts or {}, "concept_index": None},
        **extra,
    )
