"""Intake's hand-over to the registry: request record, then job, state by state.

Every step is idempotent, so an intake that crashed half-way and takes the same file again
finishes the hand-over instead of creating a second request.
"""

from __future__ import annotations

import logging

from unlearnd.daemon.schema import FieldError, RequestError
from unlearnd.daemon.validate import Accepted
from unlearnd.registry import Conflict, NotFound, RegistryStore

# What a request may be in to be submitted again (`supersedes`): no version of it is live.
RESUBMITTABLE = ("reverted", "gated", "failed")
log = logging.getLogger("unlearnd.daemon.sink")


def known(accepted: Accepted, store: RegistryStore):
    """The request `accepted` duplicates (same id, same content), or None when it is new;
    Conflict when its id is taken by other content. `unlearnd submit` and the API ask this
    before the inbox, so a duplicate is said at once, not only in the daemon's log."""
    try:
        record = store.get_request(accepted.request_id)
    except NotFound:
        return None
    if record.content_sha256 != accepted.content_sha256:
        raise Conflict(f"request id {accepted.request_id!r} is taken by other content")
    return record


class RegistrySink:
    def __init__(self, store: RegistryStore, max_attempts: int | None = None):
        self.store = store
        self.max_attempts = max_attempts

    def register(self, accepted: Accepted, source_name: str) -> tuple[str, bool]:
        req = accepted.request
        if req.supersedes is not None:
            self._check_resubmission(req.supersedes, accepted.request_id)
        try:
            record, created = self.store.create_request(
                request_id=accepted.request_id,
                content_sha256=accepted.content_sha256,
                kind=req.kind,
                method=req.method,
                spec=accepted.document,
                source_name=source_name,
                requested_by=req.requested_by,
                reason=req.reason,
                priority=req.priority,
            )
        except Conflict as e:  # the id is taken by a request with other content
            raise RequestError([FieldError("id", str(e))]) from None
        request_id = record.request_id
        if created and req.supersedes is not None:
            self.store.add_event(
                "request_resubmitted",
                f"{req.supersedes} submitted again as {request_id}",
                request_id=request_id,
                data={"supersedes": req.supersedes},
            )
        elif record.state in RESUBMITTABLE:  # a duplicate runs nothing: say how to run it
            log.warning("%s is a duplicate of request %s, which is %s: to run it again, "
                        "`unlearnd submit --again %s`", source_name, request_id, record.state,
                        request_id)  # fmt: skip
        # A fresh request, or one whose hand-over a crash interrupted: finish it.
        if record.state == "received":
            self.store.set_request_state(request_id, "validated")
            record = self.store.get_request(request_id)
        if record.state == "validated":
            self.store.enqueue_job(request_id, req.priority, self.max_attempts)
            self.store.set_request_state(request_id, "queued")
        return request_id, created

    def _check_resubmission(self, old_id: str, new_id: str) -> None:
        if old_id == new_id:
            raise RequestError([FieldError("supersedes", "a request cannot supersede itself")])
        try:
            old = self.store.get_request(old_id)
        except NotFound:
            raise RequestError([FieldError("supersedes", f"unknown request {old_id!r}")]) from None
        if old.state not in RESUBMITTABLE:
            why = (f"request {old_id} is {old.state}; only a {', '.join(RESUBMITTABLE)} request "
                   f"can be submitted again (revert it first)")  # fmt: skip
            raise RequestError([FieldError("supersedes", why)])

    def rejected(self, source_name: str, errors: list[FieldError]) -> None:
        self.store.add_event(
            "request_rejected",
            f"{source_name}: " + "; ".join(str(e) for e in errors)[:1000],
            data={"file": source_name, "errors": [[e.field, e.message] for e in errors]},
        )
