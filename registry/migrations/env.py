"""Alembic environment: always run with a connection handed over by unlearnd.registry.db."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from unlearnd.registry import tables  # noqa: F401 - fills SQLModel.metadata for autogenerate

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through unlearnd.registry.open_store (no alembic.ini)")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
