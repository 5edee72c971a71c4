"""Intake's hand-over to the registry: request record, then job, state by state.

Every step is idempotent, so an intake that crashed half-way and takes the same file again
finishes the hand-over instead of creating a second request.
"""

from __future__ import annotations

from unlearnd.daemon.schema import FieldError, RequestError
from unlearnd.daemon.validate import Accepted
from unlearnd.registry import Conflict, RegistryStore


class RegistrySink:
    def __init__(self, store: RegistryStore, max_attempts: int | None = None):
        self.store = store
        self.max_attempts = max_attempts

    def register(self, accepted: Accepted, source_name: str) -> tuple[str, bool]:
        req = accepted.request
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
        # A fresh request, or one whose hand-over a crash interrupted: finish it.
        if record.state == "received":
            self.store.set_request_state(request_id, "validated")
            record = self.store.get_request(request_id)
        if record.state == "validated":
            self.store.enqueue_job(request_id, req.priority, self.max_attempts)
            self.store.set_request_state(request_id, "queued")
        return request_id, created

    def rejected(self, source_name: str, errors: list[FieldError]) -> None:
        self.store.add_event(
            "request_rejected",
            f"{source_name}: " + "; ".join(str(e) for e in errors)[:1000],
            data={"file": source_name, "errors": [[e.field, e.message] for e in errors]},
        )
