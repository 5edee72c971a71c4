"""Versions, aliases, rollback, revert and artifact GC for SqlStore (a mixin).

A version row never changes after it is written, except that its status may become `broken`
(a blob it references failed its hash check). An alias move is a compare-and-set on the
alias row plus an alias_event row in the same transaction. A version's report is linked by a
`version_report` event (data: the blob's sha256), written after the version: the row stays
as it was, and a corrupt report blob breaks nothing (it is not in version_artifact).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exc, insert, literal, select, union, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from unlearnd.registry import tables as t
from unlearnd.registry.errors import AliasMoved, Conflict, NotFound
from unlearnd.registry.records import (
    AliasEvent,
    AliasMoveInput,
    RevertPlan,
    VersionInput,
    VersionRecord,
    to_record,
)
from unlearnd.registry.revert import plan_revert

V, VA, A = t.ModelVersion.__table__, t.VersionArtifact.__table__, t.Artifact.__table__
E = t.Event.__table__
REPORT_EVENT = "version_report"
AL, AE = t.Alias.__table__, t.AliasEventRow.__table__
C, J, X = t.Concept.__table__, t.Job.__table__, t.Expert.__table__


class VersionsMixin:
    # -- versions ---------------------------------------------------------------------------

    def _check_blobs(self, spec: VersionInput) -> dict[str, int]:
        """Sizes of the blobs the manifest names; Conflict if any is missing."""
        blobs = spec.manifest.blobs()
        missing = sorted(b for b in blobs if not self.artifacts.exists(b))
        if missing:
            raise Conflict(f"manifest references blobs not in the artifact store: {missing}")
        return {b: self.artifacts._path(b).stat().st_size for b in blobs}

    def _insert_version(self, conn, spec: VersionInput, sizes: dict[str, int]) -> int:
        if spec.parent_id is not None:
            self._get_version(conn, spec.parent_id)
        if spec.request_id is not None:
            self._get_request(conn, spec.request_id)
        values = spec.model_dump()
        if values["manifest"]["target_types"] is None:  # stored manifests keep their shape
            del values["manifest"]["target_types"]
        result = conn.execute(insert(V).values(**values))
        version_id = result.inserted_primary_key[0]
        if sizes:
            make_insert = pg_insert if self.is_postgres else sqlite_insert
            rows = [{"sha256": sha, "size": size} for sha, size in sizes.items()]
            conn.execute(make_insert(A).values(rows).on_conflict_do_nothing())
            conn.execute(insert(VA), [{"version_id": version_id, "sha256": s} for s in sizes])
        self._add_event(
            conn,
            "version_created",
            f"version {version_id} ({spec.kind}, {spec.status})",
            request_id=spec.request_id,
            version_id=version_id,
        )
        return version_id

    def create_version(self, **fields: Any) -> VersionRecord:
        spec = VersionInput(**fields)
        sizes = self._check_blobs(spec)
        with self._write() as conn:
            version_id = self._insert_version(conn, spec, sizes)
            return self._get_version(conn, version_id)

    def _get_version(self, conn, version_id: int) -> VersionRecord:
        row = conn.execute(select(V).where(V.c.id == version_id)).first()
        if row is None:
            raise NotFound(f"unknown version {version_id}")
        return to_record(VersionRecord, row)

    def get_version(self, version_id: int) -> VersionRecord:
        with self._read() as conn:
            return self._get_version(conn, version_id)

    def list_versions(
        self, limit: int = 100, offset: int = 0, before: int | None = None
    ) -> list[VersionRecord]:
        """Newest first. `before`: only ids below it (keyset paging: cheap at any depth,
        where a large `offset` makes the database walk past every skipped row)."""
        query = select(V).order_by(V.c.id.desc()).limit(limit).offset(offset)
        if before is not None:
            query = query.where(V.c.id < before)
        with self._read() as conn:
            return [to_record(VersionRecord, r) for r in conn.execute(query).all()]

    def mark_version_broken(self, version_id: int, reason: str) -> None:
        with self._write() as conn:
            self._get_version(conn, version_id)
            self._mark_broken(conn, [version_id], reason)

    def mark_blob_broken(self, sha256: str, reason: str) -> list[int]:
        """Every version that references the blob becomes broken (ArtifactStore's on_corrupt)."""
        with self._write() as conn:
            ids = list(conn.execute(select(VA.c.version_id).where(VA.c.sha256 == sha256)).scalars())
            self._mark_broken(conn, ids, reason)
        return ids

    def _mark_broken(self, conn, version_ids: list[int], reason: str) -> None:
        for version_id in version_ids:
            conn.execute(
                update(V).where(V.c.id == version_id).values(status="broken", broken_reason=reason)
            )
            self._add_event(conn, "version_broken", reason, version_id=version_id)

    # -- reports ----------------------------------------------------------------------------

    def set_version_report(self, version_id: int, sha256: str) -> None:
        if not self.artifacts.exists(sha256):
            raise Conflict(f"report blob {sha256!r} is not in the artifact store")
        with self._write() as conn:
            self._get_version(conn, version_id)
            self._add_event(
                conn,
                REPORT_EVENT,
                f"report of version {version_id} stored",
                version_id=version_id,
                data={"sha256": sha256},
            )

    def get_version_report(self, version_id: int) -> str | None:
        query = (
            select(E.c.data)
            .where(E.c.kind == REPORT_EVENT, E.c.version_id == version_id)
            .order_by(E.c.id.desc())
            .limit(1)
        )
        with self._read() as conn:
            self._get_version(conn, version_id)
            data = conn.execute(query).scalar_one_or_none()
        return (data or {}).get("sha256")

    def _report_blobs(self, conn) -> set[str]:
        rows = conn.execute(select(E.c.data).where(E.c.kind == REPORT_EVENT)).scalars()
        return {d["sha256"] for d in rows if d and d.get("sha256")}

    # -- the job's final transaction --------------------------------------------------------

    def commit_result(
        self,
        *,
        job_id: int,
        worker_id: str,
        version: dict[str, Any],
        alias: str = "live",
        move_alias: bool,
        expected_alias_version: int | None,
        who: str,
        why: str,
        routing: dict[str, Any] | None = None,
    ) -> VersionRecord:
        spec = VersionInput(**version)
        move = AliasMoveInput(name=alias, who=who, why=why)
        sizes = self._check_blobs(spec)
        try:
            with self._write() as conn:
                job = self._get_job(conn, job_id, lock=True)
                if job.state != "running" or job.worker_id != worker_id:
                    raise Conflict(f"job {job_id}: the lease is no longer held by {worker_id}")
                if move_alias:
                    self._check_alias(conn, alias, expected_alias_version)
                version_id = self._insert_version(conn, spec, sizes)
                if move_alias:
                    self._move(conn, move, version_id, expected_alias_version)
                conn.execute(
                    update(J)
                    .where(J.c.id == job_id)
                    .values(state="done", stage="done", lease_expires_at=None, finished_at=t.now())
                )
                state = "committed" if move_alias else "gated"
                self._set_request_state(conn, job.request_id, state)
                if routing and move_alias:  # only what is live becomes a concept row
                    self._record_routing(conn, job.request_id, routing)
                return self._get_version(conn, version_id)
        except exc.IntegrityError as e:  # PostgreSQL: a concurrent first move created the alias
            raise AliasMoved(f"alias {alias!r} changed during the commit ({e.orig})") from None

    # -- aliases ----------------------------------------------------------------------------

    def _current(self, conn, name: str) -> int | None:
        query = select(AL.c.version_id).where(AL.c.name == name)
        return conn.execute(self._locked(query)).scalar_one_or_none()

    def _check_alias(self, conn, name: str, expected: int | None) -> None:
        current = self._current(conn, name)
        if current != expected:
            raise AliasMoved(f"alias {name!r} points to {current}, not {expected}")

    def _move(self, conn, move: AliasMoveInput, to: int, expected: int | None) -> AliasEvent:
        """Compare-and-set: the UPDATE only matches when the alias still has `expected`."""
        now = t.now()
        if expected is None:
            if self._current(conn, move.name) is not None:
                raise AliasMoved(f"alias {move.name!r} exists already")
            conn.execute(insert(AL).values(name=move.name, version_id=to, updated_at=now))
        else:
            done = conn.execute(
                update(AL)
                .where(AL.c.name == move.name, AL.c.version_id == expected)
                .values(version_id=to, updated_at=now)
            )
            if done.rowcount != 1:
                raise AliasMoved(f"alias {move.name!r} no longer points to {expected}")
        result = conn.execute(
            insert(AE).values(
                alias=move.name, from_version=expected, to_version=to, who=move.who, why=move.why
            )
        )
        row = conn.execute(select(AE).where(AE.c.id == result.inserted_primary_key[0])).one()
        return to_record(AliasEvent, row)

    def get_alias(self, name: str = "live") -> int | None:
        with self._read() as conn:
            return self._current(conn, name)

    def list_aliases(self) -> dict[str, int]:
        with self._read() as conn:
            return dict(conn.execute(select(AL.c.name, AL.c.version_id).order_by(AL.c.name)).all())

    def move_alias(self, name, to_version, *, expected_from, who, why) -> bool:
        move = AliasMoveInput(name=name, who=who, why=why)
        try:
            with self._write() as conn:
                self._movable(conn, to_version, allow_gated=True)
                self._move(conn, move, to_version, expected_from)
        except (AliasMoved, exc.IntegrityError):
            return False
        return True

    def _movable(self, conn, version_id: int, allow_gated: bool) -> VersionRecord:
        version = self._get_version(conn, version_id)
        if version.status == "broken":
            raise Conflict(f"version {version_id} is broken: {version.broken_reason}")
        if version.status == "gated" and not allow_gated:
            raise Conflict(f"version {version_id} did not pass its gate (status gated)")
        return version

    def alias_history(self, name: str = "live", limit: int | None = None) -> list[AliasEvent]:
        """Oldest first; with `limit`, only the newest `limit` events (still oldest first)."""
        query = select(AE).where(AE.c.alias == name).order_by(AE.c.id.desc()).limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [to_record(AliasEvent, r) for r in reversed(rows)]

    def rollback(self, to_version: int, *, alias: str = "live", who: str, why: str) -> AliasEvent:
        """Two primary-key reads and two writes, whatever the length of the history."""
        move = AliasMoveInput(name=alias, who=who, why=why)
        with self._write() as conn:
            self._movable(conn, to_version, allow_gated=False)
            current = self._current(conn, alias)
            if current == to_version:
                raise Conflict(f"alias {alias!r} already points to version {to_version}")
            return self._move(conn, move, to_version, current)

    # -- revert -----------------------------------------------------------------------------

    def _chain(self, conn, head: int) -> list[dict[str, Any]]:
        """The head and its ancestors, head first (one recursive query)."""
        cols = (V.c.id, V.c.parent_id, V.c.request_id, V.c.kind, V.c.manifest)
        anchor = select(*cols, literal(0).label("depth")).where(V.c.id == head)
        chain = anchor.cte("chain", recursive=True)
        step = select(*cols, (chain.c.depth + 1).label("depth")).join(
            chain, V.c.id == chain.c.parent_id
        )
        chain = chain.union_all(step)
        rows = conn.execute(select(chain).order_by(chain.c.depth)).all()
        return [dict(r._mapping) for r in rows]

    def _plan(self, conn, request_id: str, alias: str) -> RevertPlan:
        self._get_request(conn, request_id)
        head = self._current(conn, alias)
        if head is None:
            raise NotFound(f"alias {alias!r} is not set")
        concepts = select(C.c.id).where(C.c.request_id == request_id, C.c.active.is_(True))
        concept_ids = list(conn.execute(concepts).scalars())
        return RevertPlan(**plan_revert(self._chain(conn, head), request_id, alias, concept_ids))

    def revert_plan(self, request_id: str, alias: str = "live") -> RevertPlan:
        with self._read() as conn:
            return self._plan(conn, request_id, alias)

    def revert(self, request_id: str, *, alias: str = "live", who: str, why: str) -> VersionRecord:
        move = AliasMoveInput(name=alias, who=who, why=why)
        with self._write() as conn:
            plan = self._plan(conn, request_id, alias)
            if plan.needs_replay:
                raise Conflict(
                    f"reverting {request_id!r} needs a replay of {plan.replay}: the daemon does it"
                )
            head = self._get_version(conn, plan.head_version_id)
            spec = VersionInput(
                base_fingerprint=head.base_fingerprint,
                parent_id=head.id,
                request_id=request_id,
                kind="revert",
                manifest=plan.manifest,
                params={"reverted_version": plan.reverted_version_id, "why": move.why},
                status="committed",
            )
            version_id = self._insert_version(conn, spec, self._check_blobs(spec))
            self._move(conn, move, version_id, head.id)
            self._reverted(conn, plan)
            return self._get_version(conn, version_id)

    def _reverted(self, conn, plan: RevertPlan) -> None:
        """The rows that follow a committed revert: the request's concepts go inactive, an
        expert it changed gets its earlier artifact back (one use less), one it created keeps
        its row (the audit) without an artifact; the request is `reverted`."""
        if plan.concepts_removed:
            conn.execute(update(C).where(C.c.id.in_(plan.concepts_removed)).values(active=False))
        experts = {**plan.restored["experts"], **dict.fromkeys(plan.dropped["experts"])}
        for expert_id, sha in experts.items():
            uses = X.c.uses - 1 if sha else 0
            conn.execute(
                update(X).where(X.c.id == expert_id).values(artifact_sha256=sha, uses=uses)
            )
        self._set_request_state(conn, plan.request_id, "reverted")

    def commit_revert(
        self,
        *,
        job_id: int,
        worker_id: str,
        version: dict[str, Any],
        alias: str,
        move_alias: bool,
        expected_alias_version: int,
        who: str,
        why: str,
        replayed: dict[str, dict[str, Any]],
    ) -> VersionRecord:
        spec = VersionInput(**version)
        move = AliasMoveInput(name=alias, who=who, why=why)
        sizes = self._check_blobs(spec)
        with self._write() as conn:
            job = self._get_job(conn, job_id, lock=True)
            if job.state != "running" or job.worker_id != worker_id or job.kind != "revert":
                raise Conflict(f"job {job_id}: the lease is no longer held by {worker_id}")
            self._check_alias(conn, alias, expected_alias_version)
            plan = self._plan(conn, job.request_id, alias)  # the head the replay started from
            version_id = self._insert_version(conn, spec, sizes)
            done = dict(state="done", stage="done", lease_expires_at=None, finished_at=t.now())
            conn.execute(update(J).where(J.c.id == job_id).values(**done))
            if not move_alias:  # gated: kept for the audit, the deletion stays live
                self._set_request_state(conn, job.request_id, "committed",
                                        "revert gated: see version " + str(version_id))  # fmt: skip
                return self._get_version(conn, version_id)
            self._move(conn, move, version_id, expected_alias_version)
            self._reverted(conn, plan)
            for request_id, routing in replayed.items():
                # The replayed request's old rows give way to the ones its re-run made.
                old = select(C.c.expert_id).where(C.c.request_id == request_id, C.c.active)
                for expert_id in set(conn.execute(old).scalars()) - {None}:
                    conn.execute(update(X).where(X.c.id == expert_id).values(uses=X.c.uses - 1))
                conn.execute(update(C).where(C.c.request_id == request_id).values(active=False))
                self._record_routing(conn, request_id, routing)
            for expert_id, sha in (spec.manifest.experts or {}).items():  # rows = the manifest
                conn.execute(update(X).where(X.c.id == expert_id).values(artifact_sha256=sha))
            return self._get_version(conn, version_id)

    # -- garbage collection -----------------------------------------------------------------

    def gc(self, dry_run: bool = False, min_age_s: float = 86400.0) -> list[str]:
        """Delete blobs that no version, version report or expert references and that are
        older than `min_age_s` (a running job's blob is not referenced until its commit, a
        report's until it is linked)."""
        referenced_query = union(
            select(VA.c.sha256), select(X.c.artifact_sha256).where(X.c.artifact_sha256.isnot(None))
        )
        with self._read() as conn:
            referenced = set(conn.execute(referenced_query).scalars()) | self._report_blobs(conn)
        removed = self.artifacts.remove_unreferenced(referenced, min_age_s, dry_run)
        if removed and not dry_run:
            self.add_event("artifact_gc", f"removed {len(removed)} unreferenced blob(s)")
        return removed
