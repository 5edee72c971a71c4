"""Every error leaves the API as JSON `{"error": message}` (plus `fields` when input was bad).

Registry errors map to HTTP codes here, once, so routes simply let them propagate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from unlearnd.registry import Conflict, NotFound

log = logging.getLogger("unlearnd.api")


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
    ):
        super().__init__(message)
        self.status, self.message, self.headers, self.extra = status, message, headers, extra


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    """FastAPI's loc ('body', 'to') as 'to'; a query parameter as 'query.limit'."""
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def _invalid_input(errors: Sequence[Mapping[str, Any]]) -> JSONResponse:
    for e in errors:
        if e.get("type") == "json_invalid":  # the body did not even parse
            detail = (e.get("ctx") or {}).get("error", e.get("msg", ""))
            at = f" (at character {e['loc'][1]})" if len(e.get("loc", ())) > 1 else ""
            return error_response(400, f"the request body is not valid JSON: {detail}{at}")
    fields = [{"field": _field(tuple(e["loc"])), "message": e["msg"]} for e in errors]
    message = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return error_response(422, f"invalid input: {message}", fields=fields)


def install(app: FastAPI, routers: list[APIRouter]) -> None:
    @app.exception_handler(405)
    async def _method(request: Request, e: HTTPException) -> JSONResponse:
        # Starlette's Allow names the methods of the first route of the path only; GET and
        # POST /requests are two routes.
        path = request.url.path
        routes = [r for router in routers for r in router.routes if isinstance(r, APIRoute)]
        allowed = sorted({m for r in routes if r.path_regex.match(path) for m in r.methods})
        return error_response(405, str(e.detail), {"Allow": ", ".join(allowed)})

    @app.exception_handler(ApiError)
    async def _api(_: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.message, e.headers, **e.extra)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, e: HTTPException) -> JSONResponse:
        return error_response(e.status_code, str(e.detail), getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, e: RequestValidationError) -> JSONResponse:
        return _invalid_input(e.errors())

    @app.exception_handler(ValidationError)  # the registry validates its inputs with pydantic
    async def _model_validation(_: Request, e: ValidationError) -> JSONResponse:
        return _invalid_input(e.errors())

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, e: NotFound) -> JSONResponse:
        return error_response(404, str(e))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, e: Conflict) -> JSONResponse:
        return error_response(409, str(e))

    @app.exception_handler(OperationalError)
    async def _db_down(_: Request, e: OperationalError) -> JSONResponse:
        log.error("registry unavailable: %s", e.orig if e.orig is not None else e)
        return error_response(503, "the registry database is unavailable; try again later")

    @app.exception_handler(Exception)
    async def _bug(_: Request, e: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, f"internal error ({type(e).__name__})")
