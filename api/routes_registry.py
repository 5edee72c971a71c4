"""Versions, aliases and their history (open); rollback and revert (token)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from unlearnd.api.auth import WRITE
from unlearnd.api.openapi import errors
from unlearnd.api.schemas import Id, Limit, RevertBody, RollbackBody
from unlearnd.api.state import store
from unlearnd.registry import RegistryStore

router = APIRouter(tags=["registry"])


def as_json(record: Any) -> dict[str, Any]:
    return record.model_dump(mode="json")


def who(request: Request, given: str | None) -> str:
    """Who moved the alias, for its history: the caller's name (if given) and address. Every
    holder of the token is equally trusted, so the address is what tells them apart."""
    host = request.client.host if request.client else "unknown"
    return f"{given} (api {host})" if given else f"api {host}"


def _aliases_by_version(st) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for name, version_id in st.list_aliases().items():
        found.setdefault(version_id, []).append(name)
    return found


@router.get("/versions", summary="Model versions, newest first, with their aliases")
def list_versions(
    limit: Limit = 50,
    before: Annotated[Id | None, Query(description="Only versions older than this id.")] = None,
    st: RegistryStore = Depends(store),
) -> list[dict[str, Any]]:
    aliases = _aliases_by_version(st)
    rows = st.list_versions(limit=limit, before=before)
    return [{**as_json(v), "aliases": aliases.get(v.id, [])} for v in rows]


@router.get(
    "/versions/{version_id}",
    summary="One version: manifest, method, metrics, timings",
    responses=errors(404),
)
def get_version(version_id: Id, st: RegistryStore = Depends(store)) -> dict[str, Any]:
    version = st.get_version(version_id)
    return {**as_json(version), "aliases": _aliases_by_version(st).get(version_id, [])}


@router.get("/aliases", summary="Every alias and the version it points to")
def list_aliases(st: RegistryStore = Depends(store)) -> dict[str, int]:
    return st.list_aliases()


@router.get("/aliases/{alias}/history", summary="Every move of an alias, oldest first")
def alias_history(
    alias: str,
    limit: Annotated[Limit | None, Query(description="Only the newest N moves.")] = None,
    st: RegistryStore = Depends(store),
) -> list[dict[str, Any]]:
    return [as_json(e) for e in st.alias_history(alias, limit=limit)]


@router.post(
    "/rollback",
    dependencies=WRITE,
    summary="Point an alias at an earlier version",
    responses=errors(404, 409),
)
def rollback(
    body: RollbackBody, request: Request, st: RegistryStore = Depends(store)
) -> dict[str, Any]:
    event = st.rollback(body.to, alias=body.alias, who=who(request, body.who), why=body.why)
    return as_json(event)


@router.post(
    "/requests/{request_id}/revert",
    dependencies=WRITE,
    summary="Undo one request, keeping later deletions",
    responses={
        202: {"description": "Queued: the daemon replays the later requests first."},
        **errors(404, 409),
    },
)
def revert(
    request_id: str, body: RevertBody, request: Request, st: RegistryStore = Depends(store)
) -> Any:
    # The same steps as `unlearnd revert`: committed now when nothing later changed what the
    # request changed, else a revert job (GET /requests/{id} shows its progress).
    done = st.request_revert(request_id, alias=body.alias, who=who(request, body.who),
                             why=body.why)  # fmt: skip
    if done.version is not None:
        return {"committed": True, "plan": as_json(done.plan), "version": as_json(done.version)}
    body = {"committed": False, "plan": as_json(done.plan), "job": as_json(done.job)}
    return JSONResponse(body, status_code=202)
