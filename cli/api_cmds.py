"""`unlearnd api`: the HTTP API (registry, submit, rollback / revert, generate, metrics)."""

from __future__ import annotations

import ipaddress
import logging

import typer

from unlearnd.cli.common import (
    EXIT_CONFIG,
    THREADS_HELP,
    existing_store,
    fail,
    served_deployment,
    serving_line,
    settings,
    use_threads,
)


def register(app: typer.Typer) -> None:
    app.command("api")(api)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def api(
    ctx: typer.Context,
    host: str = typer.Option(
        None, "--host", help="Address to bind (default: api.host, 127.0.0.1)."
    ),
    port: int = typer.Option(
        None, "--port", min=1, max=65535, help="Port (default: api.port, 8470)."
    ),
    insecure_no_token: bool = typer.Option(
        False,
        "--insecure-no-token",
        help="Bind a non-loopback address without api.token: /generate and the chat API "
        "answer anyone who reaches it.",
    ),
    threads: int | None = typer.Option(None, "--threads", min=0, help=THREADS_HELP),
) -> None:
    """Serve the HTTP API until SIGTERM / Ctrl-C (OpenAPI schema at /docs and /openapi.json)."""
    import uvicorn

    from unlearnd.api import create_app
    from unlearnd.daemon.logs import setup_logging

    s = settings(ctx)
    host = host or s.api.host
    port = port or s.api.port
    if not _loopback(host) and not s.api.token and not insecure_no_token:
        fail(f"refusing to listen on {host} without api.token: anyone who reaches it could ask "
             "the model; set [api] token (or UNLEARND_API__TOKEN), bind 127.0.0.1, or pass "
             "--insecure-no-token", EXIT_CONFIG)  # fmt: skip
    use_threads(s, threads)
    deployment = served_deployment(ctx)
    setup_logging(s.log_format, s.log_level)
    log = logging.getLogger("unlearnd.api")
    store = existing_store(ctx, required=False)
    log.info("%s", serving_line(deployment, store.get_alias("live") if store else None))
    if store is not None:
        store.close()
    if not s.api.token:
        log.warning("no api.token configured: read-only (submit, rollback, revert are refused)")
    if not _loopback(host):
        log.warning("listening on %s: reachable from other machines; put TLS in front", host)
    # log_config=None: uvicorn logs through our handlers (text or JSON, like the daemon).
    uvicorn.run(create_app(s), host=host, port=port, log_config=None, access_log=True)
