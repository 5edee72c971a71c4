"""RegistryStore on SQL: requests, concepts, experts, events.

The job queue is in sql_queue.py, versions, aliases, rollback, revert and GC in
sql_versions.py (mixins of this class).
Writes run in write transactions (db.transaction): BEGIN IMMEDIATE on SQLite, row locks
(FOR UPDATE, SKIP LOCKED for the queue) on PostgreSQL. Times come from this process's clock
(UTC): keep the clocks of several worker machines in sync (NTP).
"""

from __future__ import annotations

import array
from pathlib import Path
from typing import Any

from sqlalchemy import Select, exc, insert, select, update

from unlearnd.registry import tables as t
from unlearnd.registry.artifacts import ArtifactStore
from unlearnd.registry.db import make_engine, transaction, upgrade
from unlearnd.registry.errors import Conflict, NotFound
from unlearnd.registry.records import (
    REQUEST_STATES,
    ConceptInput,
    ConceptRecord,
    EventRecord,
    ExpertRecord,
    RequestInput,
    RequestRecord,
    check_choice,
    to_record,
)
from unlearnd.registry.sql_queue import QueueMixin
from unlearnd.registry.sql_versions import VersionsMixin
from unlearnd.registry.store import RegistryStore

R = t.Request.__table__
C, X, E = t.Concept.__table__, t.Expert.__table__, t.Event.__table__


def concept_values(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validated concept rows with their vector as float32 bytes."""
    values = []
    for i, raw in enumerate(rows):
        try:
            row = ConceptInput(**raw)
        except ValueError as e:
            raise ValueError(f"concepts[{i}]: {e}") from None
        vector = (
            row.vector if isinstance(row.vector, bytes) else array.array("f", row.vector).tobytes()
        )
        if not vector or len(vector) % 4:
            raise ValueError(f"concepts[{i}].vector: {len(vector)} bytes is not float32 data")
        values.append({**row.model_dump(), "vector": vector, "dim": len(vector) // 4})
    return values


class SqlStore(QueueMixin, VersionsMixin, RegistryStore):
    def __init__(self, url: str, artifacts_dir: str | Path, *, max_attempts: int = 3):
        self.engine = make_engine(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self.max_attempts = max_attempts
        upgrade(self.engine)
        self.artifacts = ArtifactStore(artifacts_dir, on_corrupt=self.mark_blob_broken)

    def close(self) -> None:
        self.engine.dispose()

    def _write(self):
        return transaction(self.engine, write=True)

    def _read(self):
        return transaction(self.engine, write=False)

    def _locked(self, query: Select, skip_locked: bool = False) -> Select:
        """Row locks on PostgreSQL; on SQLite the write transaction already holds the lock."""
        return query.with_for_update(skip_locked=skip_locked) if self.is_postgres else query

    # -- requests ---------------------------------------------------------------------------

    def create_request(self, **fields: Any) -> tuple[RequestRecord, bool]:
        spec = RequestInput(**fields)
        try:
            with self._write() as conn:
                found = self._request_by_content(conn, spec.content_sha256)
                if found is not None:
                    return found, False
                if conn.execute(
                    select(R.c.request_id).where(R.c.request_id == spec.request_id)
                ).first():
                    raise Conflict(
                        f"request id {spec.request_id!r} is taken by a request with other content"
                    )
                conn.execute(insert(R).values(**spec.model_dump(), state="received"))
                return self._get_request(conn, spec.request_id), True
        except exc.IntegrityError:  # PostgreSQL: another worker inserted it meanwhile
            with self._read() as conn:
                found = self._request_by_content(conn, spec.content_sha256)
            if found is None:
                raise
            return found, False

    def _request_by_content(self, conn, content_sha256: str) -> RequestRecord | None:
        row = conn.execute(select(R).where(R.c.content_sha256 == content_sha256)).first()
        return to_record(RequestRecord, row) if row else None

    def _get_request(self, conn, request_id: str) -> RequestRecord:
        row = conn.execute(select(R).where(R.c.request_id == request_id)).first()
        if row is None:
            raise NotFound(f"unknown request {request_id!r}")
        return to_record(RequestRecord, row)

    def get_request(self, request_id: str) -> RequestRecord:
        with self._read() as conn:
            return self._get_request(conn, request_id)

    def list_requests(self, state=None, limit=100, offset=0) -> list[RequestRecord]:
        query = select(R).order_by(R.c.created_at.desc(), R.c.request_id.desc())
        if state is not None:
            query = query.where(R.c.state == check_choice(state, REQUEST_STATES, "state"))
        with self._read() as conn:
            rows = conn.execute(query.limit(limit).offset(offset)).all()
        return [to_record(RequestRecord, r) for r in rows]

    def set_request_state(self, request_id: str, state: str, error: str | None = None) -> None:
        check_choice(state, REQUEST_STATES, "state")
        with self._write() as conn:
            self._set_request_state(conn, request_id, state, error)

    def _set_request_state(self, conn, request_id, state, error=None) -> None:
        done = conn.execute(
            update(R)
            .where(R.c.request_id == request_id)
            .values(state=state, error=error, updated_at=t.now())
        )
        if done.rowcount != 1:
            raise NotFound(f"unknown request {request_id!r}")

    # -- concepts and experts (routing fills them; the registry only stores) -----------------

    def add_concepts(self, request_id: str, rows: list[dict[str, Any]]) -> list[int]:
        values = concept_values(rows)
        with self._write() as conn:
            self._get_request(conn, request_id)
            return self._insert_concepts(conn, request_id, values)

    def _insert_concepts(self, conn, request_id: str, values: list[dict[str, Any]]) -> list[int]:
        ids = []
        for value in values:
            result = conn.execute(insert(C).values(request_id=request_id, **value))
            ids.append(result.inserted_primary_key[0])
        return ids

    def _record_routing(self, conn, request_id: str, routing: dict[str, Any]) -> None:
        """A committed routed request's expert (created, or its new artifact and one more
        use) and its concept rows, inside the commit's transaction."""
        expert = routing["expert"]
        values = concept_values([{**c, "expert_id": expert["id"]} for c in routing["concepts"]])
        exists = conn.execute(select(X.c.id).where(X.c.id == expert["id"])).first()
        now = t.now()
        if exists:
            conn.execute(
                update(X)
                .where(X.c.id == expert["id"])
                .values(
                    artifact_sha256=expert["artifact_sha256"],
                    uses=X.c.uses + 1,
                    data=expert.get("data"),
                    updated_at=now,
                )  # fmt: skip
            )
        else:
            conn.execute(
                insert(X).values(
                    id=expert["id"],
                    kind=expert.get("kind", "refuser"),
                    created_by_request=request_id,
                    artifact_sha256=expert["artifact_sha256"],
                    uses=1,
                    data=expert.get("data"),
                    created_at=now,
                    updated_at=now,
                )  # fmt: skip
            )
        self._insert_concepts(conn, request_id, values)

    def list_concepts(self, active_only=True, request_id=None) -> list[ConceptRecord]:
        query = select(C).order_by(C.c.id)
        if active_only:
            query = query.where(C.c.active.is_(True))
        if request_id is not None:
            query = query.where(C.c.request_id == request_id)
        with self._read() as conn:
            return [to_record(ConceptRecord, r) for r in conn.execute(query).all()]

    def create_expert(
        self,
        *,
        expert_id: str,
        kind: str = "refuser",
        created_by_request: str | None = None,
        artifact_sha256: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> ExpertRecord:
        if not expert_id or len(expert_id) > 100:
            raise ValueError("expert_id: 1 to 100 characters")
        with self._write() as conn:
            if conn.execute(select(X.c.id).where(X.c.id == expert_id)).first():
                raise Conflict(f"expert {expert_id!r} exists")
            conn.execute(
                insert(X).values(
                    id=expert_id,
                    kind=kind,
                    created_by_request=created_by_request,
                    artifact_sha256=artifact_sha256,
                    data=data,
                )
            )
            return self._get_expert(conn, expert_id)

    def update_expert(self, expert_id: str, **fields: Any) -> ExpertRecord:
        """Set artifact_sha256 and/or data; `uses=+n` style counting via add_uses."""
        allowed = {"artifact_sha256", "data", "kind", "add_uses"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"update_expert: unknown field(s) {sorted(unknown)}")
        values: dict[str, Any] = {k: v for k, v in fields.items() if k != "add_uses"}
        if "add_uses" in fields:
            values["uses"] = X.c.uses + int(fields["add_uses"])
        with self._write() as conn:
            done = conn.execute(
                update(X).where(X.c.id == expert_id).values(**values, updated_at=t.now())
            )
            if done.rowcount != 1:
                raise NotFound(f"unknown expert {expert_id!r}")
            return self._get_expert(conn, expert_id)

    def _get_expert(self, conn, expert_id: str) -> ExpertRecord:
        row = conn.execute(select(X).where(X.c.id == expert_id)).first()
        if row is None:
            raise NotFound(f"unknown expert {expert_id!r}")
        return to_record(ExpertRecord, row)

    def get_expert(self, expert_id: str) -> ExpertRecord:
        with self._read() as conn:
            return self._get_expert(conn, expert_id)

    def list_experts(self) -> list[ExpertRecord]:
        with self._read() as conn:
            rows = conn.execute(select(X).order_by(X.c.created_at, X.c.id)).all()
        return [to_record(ExpertRecord, r) for r in rows]

    # -- audit ------------------------------------------------------------------------------

    def add_event(self, kind, message, request_id=None, version_id=None, data=None) -> EventRecord:
        with self._write() as conn:
            event_id = self._add_event(conn, kind, message, request_id, version_id, data)
            row = conn.execute(select(E).where(E.c.id == event_id)).one()
        return to_record(EventRecord, row)

    def _add_event(self, conn, kind, message, request_id=None, version_id=None, data=None) -> int:
        result = conn.execute(
            insert(E).values(
                kind=kind, message=message, request_id=request_id, version_id=version_id, data=data
            )
        )
        return result.inserted_primary_key[0]

    def list_events(self, kind=None, request_id=None, version_id=None, limit=100):
        query = select(E).order_by(E.c.id.desc()).limit(limit)
        for column, value in ((E.c.kind, kind), (E.c.request_id, request_id)):
            if value is not None:
                query = query.where(column == value)
        if version_id is not None:
            query = query.where(E.c.version_id == version_id)
        with self._read() as conn:
            return [to_record(EventRecord, r) for r in conn.execute(query).all()]
