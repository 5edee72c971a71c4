"""The app factory: `create_app(settings)` is what `unlearnd api` serves with uvicorn."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from unlearnd import __version__
from unlearnd.api import (
    errors,
    openapi,
    prometheus,
    routes_export,
    routes_model,
    routes_openai,
    routes_registry,
    routes_requests,
)
from unlearnd.api.state import ApiState
from unlearnd.config import Settings

log = logging.getLogger("unlearnd.api")

DESCRIPTION = """\
Query the registry of model versions, submit deletion requests, roll back or revert, and ask
the served model through the gate. Reads are open; writes (submit, rollback, revert) need
`Authorization: Bearer <token>` with the `[api] token` of the config. Errors are JSON:
`{"error": message}`, with `fields` when the input was invalid.
"""


def create_app(settings: Settings) -> FastAPI:
    api = ApiState(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        try:
            from unlearnd.daemon.inbox import Inbox

            Inbox(settings.inbox)  # creates the folders, so /readyz can check them
        except OSError as e:
            log.warning("inbox %s not usable: %s", settings.inbox, e)
        yield
        api.close()

    app = FastAPI(title="unlearnd", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.api = api
    app.state.metrics = prometheus.build_registry(api)
    routers = [module.router for module in (routes_requests, routes_registry, routes_export,
                                            routes_model, routes_openai, prometheus)]  # fmt: skip
    for router in routers:
        app.include_router(router)
    errors.install(app, routers)
    openapi.install(app, routers)
    return app
