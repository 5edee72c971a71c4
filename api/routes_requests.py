"""Requests, jobs and events (open); submitting a request into the inbox (token).

A submitted request goes through the same door as a file: it is validated here with the
intake's own checks (so the caller learns field by field what is wrong, and the request id,
at once), then written into the inbox with `unlearnd submit`'s function. The daemon's intake
takes it from there; the API never writes requests into the registry itself.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from unlearnd.api.auth import WRITE
from unlearnd.api.errors import ApiError
from unlearnd.api.openapi import errors
from unlearnd.api.routes_registry import as_json
from unlearnd.api.schemas import Id, Limit, Offset
from unlearnd.api.state import state, store
from unlearnd.registry import Conflict, RegistryStore
from unlearnd.registry.records import JOB_STATES, RequestState

router = APIRouter(tags=["requests"])
JobState = Literal[JOB_STATES]  # type: ignore[valid-type]
VERSION_SCAN = 1000  # newest versions searched for a request's own (no lookup by request yet)

# Content type -> the name the intake reads the body under (the name picks the parser).
BODY_NAMES = {
    "application/json": "request.json",
    "application/yaml": "request.yaml",
    "application/x-yaml": "request.yaml",
    "text/yaml": "request.yaml",
    "application/gzip": "request.tar.gz",
    "application/x-gzip": "request.tar.gz",
    "application/x-tar+gzip": "request.tar.gz",
}
SUBMIT_DOC = {
    "requestBody": {
        "required": True,
        "description": "A request (schema unlearnd.request/v1) as JSON or YAML, or a bundle "
        "(.tar.gz with request.json and its images) as application/gzip.",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
            "application/gzip": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.get("/requests", summary="Requests, newest first")
def list_requests(
    state: RequestState | None = Query(None),
    limit: Limit = 100,
    offset: Offset = 0,
    st: RegistryStore = Depends(store),
) -> list[dict[str, Any]]:
    return [as_json(r) for r in st.list_requests(state=state, limit=limit, offset=offset)]


@router.get(
    "/requests/{request_id}",
    summary="One request with its jobs and versions",
    responses=errors(404),
)
def get_request(request_id: str, st: RegistryStore = Depends(store)) -> dict[str, Any]:
    record = as_json(st.get_request(request_id))
    jobs = [as_json(j) for j in st.list_jobs(request_id=request_id)]
    versions = [
        as_json(v) for v in st.list_versions(limit=VERSION_SCAN) if v.request_id == request_id
    ]
    return {**record, "jobs": jobs, "versions": versions}


@router.get("/jobs", summary="Jobs of the queue, oldest first")
def list_jobs(
    state: JobState | None = Query(None),
    request_id: str | None = Query(None),
    st: RegistryStore = Depends(store),
) -> list[dict[str, Any]]:
    return [as_json(j) for j in st.list_jobs(state=state, request_id=request_id)]


@router.get("/events", summary="Audit events, newest first")
def list_events(
    kind: str | None = Query(None),
    request_id: str | None = Query(None),
    version_id: Id | None = None,
    limit: Limit = 100,
    st: RegistryStore = Depends(store),
) -> list[dict[str, Any]]:
    events = st.list_events(kind=kind, request_id=request_id, version_id=version_id, limit=limit)
    return [as_json(e) for e in events]


@router.post(
    "/requests",
    dependencies=WRITE,
    status_code=202,
    summary="Submit a request into the inbox",
    openapi_extra=SUBMIT_DOC,
    responses={
        200: {"description": "The same content was submitted before."},
        **errors(409, 413, 415, 422, 503),
    },
)
async def submit_request(request: Request) -> JSONResponse:
    api = state(request)
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype not in BODY_NAMES:
        raise ApiError(415, f"unsupported content type {ctype!r}; use one of {sorted(BODY_NAMES)}")
    limit = api.settings.limits.max_bundle_bytes
    body = bytearray()
    async for chunk in request.stream():  # counted as it arrives: no unbounded buffering
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"the body is larger than the limit of {limit} bytes")
    return await run_in_threadpool(_submit, api, bytes(body), BODY_NAMES[ctype])


def _submit(api, body: bytes, name: str) -> JSONResponse:
    from unlearnd.daemon.inbox import submit
    from unlearnd.daemon.schema import RequestError
    from unlearnd.daemon.sink import known
    from unlearnd.daemon.validate import accept_item

    s = api.settings
    with tempfile.TemporaryDirectory(prefix="unlearnd-api-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(body)
        try:
            accepted = accept_item(path, s)
        except RequestError as e:
            fields = [{"field": f.field, "message": f.message} for f in e.errors]
            raise ApiError(422, f"invalid request: {e}", fields=fields) from None
        request_id = accepted.request_id
        try:
            record = known(accepted, api.store())
        except Conflict as e:
            raise ApiError(409, str(e)) from None
        if record is not None:
            body = {"request_id": request_id, "state": record.state, "duplicate": True}
            return JSONResponse(body)
        # Named after the request so the inbox folders say what each item is.
        named = path.rename(path.with_name(f"api-{request_id}{name.removeprefix('request')}"))
        dest = submit(named, s.inbox)
    return JSONResponse(
        {
            "request_id": request_id,
            "content_sha256": accepted.content_sha256,
            "inbox_name": dest.name,
            "state": "submitted",
            "duplicate": False,
        },
        status_code=202,
        headers={"Location": f"/requests/{request_id}"},
    )
