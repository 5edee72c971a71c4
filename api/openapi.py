"""The OpenAPI schema says what each route really answers, so a client generated from it (or a
gateway, or a fuzzer) can trust it: every error status with the error body's model, and the
security each route enforces. What follows from a route's own signature (its parameters, its
body, the token, the registry) is derived here; a route names only its own codes (`errors`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from unlearnd.api.auth import require_token
from unlearnd.api.state import store


class FieldProblem(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """Every error: `{"error": message}`, with `fields` when the input was invalid."""

    error: str
    fields: list[FieldProblem] | None = None


REASONS = {
    400: "The body is not valid JSON.",
    401: "No bearer token: `Authorization: Bearer <token>`.",
    403: "A wrong token, or writes are disabled (no `api.token` configured).",
    404: "No such version, request or alias.",
    409: "The registry or the deployment is in a state that does not allow it.",
    413: "The body or the image is larger than the configured limit.",
    415: "An unsupported content type.",
    422: "Invalid input; `fields` names each bad field when it was the request's shape.",
    503: "The registry database (or the served model) is unavailable; try again later.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """A route's own error codes, for its `responses=`."""
    return {code: {"description": REASONS[code]} for code in codes}


def _calls(dependant) -> set[Any]:
    found = set()
    for dep in dependant.dependencies:
        found |= {dep.call, *_calls(dep)}
    return found


def _derived(route: APIRoute) -> list[int]:
    """The codes a route answers because of what it takes and uses."""
    d, calls = route.dependant, _calls(route.dependant)
    codes = []
    if d.body_params:
        codes += [400, 422]  # not JSON; JSON of the wrong shape
    if d.path_params or d.query_params:
        codes.append(422)
    if require_token in calls:
        codes += [401, 403]
    if store in calls:
        codes.append(503)
    return codes


def install(app: FastAPI, routers: list[APIRouter]) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        ref = {"$ref": "#/components/schemas/ErrorBody"}
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["ErrorBody"] = ErrorBody.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components.update(components["ErrorBody"].pop("$defs", {}))
        # The routers' own routes: the app's are wrapped (FastAPI's included routers).
        for route in (r for router in routers for r in router.routes):
            if not isinstance(route, APIRoute) or not route.include_in_schema:
                continue
            for method in route.methods:
                op = schema["paths"][route.path_format][method.lower()]
                responses = op["responses"]
                for code in _derived(route):
                    responses.setdefault(str(code), {"description": REASONS[code]})
                for code, response in responses.items():
                    if code[0] in "45":  # FastAPI's own 422 model is not what we send
                        response["content"] = {"application/json": {"schema": ref}}
                if "security" in op and require_token not in _calls(route.dependant):
                    op["security"] = [{}, *op["security"]]  # the token is optional here
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
