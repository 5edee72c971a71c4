"""Engines and transactions: SQLite pragmas on every connection, write locks, migrations.

SQLite: WAL, busy_timeout and foreign_keys are set in a connect event, so every pooled
connection has them. The driver's own transaction handling is turned off and we emit BEGIN
ourselves: BEGIN IMMEDIATE for writes (the write lock is taken up front, so two processes
cannot both read "job 7 is queued" and both claim it, and no read-to-write upgrade can fail
with "database is locked"), plain BEGIN for reads (WAL readers never block).
PostgreSQL: row locks (FOR UPDATE [SKIP LOCKED]) in the store do that job.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
_WRITE = "unlearnd_write"  # execution option: this transaction writes


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise ValueError(f"database url: use postgresql+psycopg://, not {parsed.drivername}")
        return create_engine(url, pool_pre_ping=True)
    raise ValueError(f"database url: unsupported backend {backend!r} (sqlite or postgresql)")


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _sqlite_begin)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, no corruption
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def transaction(engine: Engine, write: bool) -> Iterator[Connection]:
    """One transaction; commits on success, rolls back on any exception."""
    with engine.connect() as conn:
        if write:
            conn = conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


def upgrade(engine: Engine) -> None:
    """`alembic upgrade head` in one locked transaction: concurrent starters wait, then no-op."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with transaction(engine, write=True) as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7061542)"))  # any fixed key
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
