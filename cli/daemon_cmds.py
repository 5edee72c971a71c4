"""`unlearnd serve`, `submit`, `requests`, `request show`: the daemon and its queue."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from unlearnd.cli.common import (
    EXIT_CONFIG,
    EXIT_DUPLICATE,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    THREADS_HELP,
    console,
    existing_store,
    fail,
    print_json,
    print_mapping,
    print_table,
    served_deployment,
    serving_line,
    settings,
    use_threads,
)

VERSION_SCAN = 1000  # versions `request show` looks through for the request's own

request_app = typer.Typer(help="One deletion request.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("submit")(submit)
    app.command("requests")(requests)
    request_app.command("show")(request_show)
    app.add_typer(request_app, name="request")


def serve(
    ctx: typer.Context,
    pipeline: str = typer.Option(
        None,
        "--pipeline",
        help="Pipeline as module:factory (default: unlearnd.daemon.pipeline.DEFAULT_PIPELINE).",
    ),
    intake: bool = typer.Option(True, "--intake/--no-intake", help="Watch the inbox."),
    worker: bool = typer.Option(True, "--worker/--no-worker", help="Process queued jobs."),
    threads: int | None = typer.Option(None, "--threads", min=0, help=THREADS_HELP),
) -> None:
    """Run intake, worker and housekeeping until SIGTERM or Ctrl-C."""
    import logging

    from unlearnd.daemon.logs import setup_logging
    from unlearnd.daemon.pipeline import DEFAULT_PIPELINE, load_pipeline
    from unlearnd.daemon.service import Service

    s = settings(ctx)
    use_threads(s, threads)
    deployment = served_deployment(ctx)
    spec = pipeline or DEFAULT_PIPELINE
    loaded = None
    if worker:
        if not spec:
            fail("no pipeline configured: pass --pipeline module:factory", EXIT_CONFIG)
        try:
            loaded = load_pipeline(spec, s)
        except ValueError as e:
            fail(str(e), EXIT_CONFIG)
    setup_logging(s.log_format, s.log_level)  # only now: a usage error leaves logging alone
    service = Service(s, loaded, intake=intake, worker=worker)
    live = service.store.get_alias("live")
    logging.getLogger("unlearnd").info("%s", serving_line(deployment, live))
    service.install_signal_handlers()
    service.run()


def submit(
    ctx: typer.Context,
    item: Path = typer.Argument(
        None, help="A request .json/.yaml, a bundle folder or .tar.gz (not with --again)."
    ),
    again: str = typer.Option(
        None,
        "--again",
        metavar="REQUEST",
        help="Submit a reverted, gated or failed request again, as it was accepted: a new "
        "request linked to it (`supersedes`).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Put a request into the inbox (written to tmp/, then renamed into new/).

    It is checked first: an invalid request is refused with every error,
    and one the registry already holds is not submitted twice
    (exit code 5, naming the request)."""
    import tempfile

    if (item is None) == (again is None):
        fail("give a request to submit, or --again REQUEST (not both)", EXIT_USAGE)
    if again is None:
        if not item.exists() and not item.is_symlink():
            fail(f"no such file or folder: {item}", EXIT_NOT_FOUND)
        _submit_checked(ctx, item, str(item), as_json)
        return
    from unlearnd.daemon.request_store import requests_root, write_resubmission
    from unlearnd.daemon.sink import RESUBMITTABLE

    state = _request_state(ctx, again)
    if state not in RESUBMITTABLE:
        fail(f"request {again} is {state}; only a {', '.join(RESUBMITTABLE)} request can be "
             f"submitted again (`unlearnd revert {again}` first)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        bundle = write_resubmission(requests_root(settings(ctx)), again, Path(tmp) / again)
        _submit_checked(ctx, bundle, f"request {again} again", as_json)


def _request_state(ctx: typer.Context, request_id: str) -> str:
    from unlearnd.registry import NotFound

    try:
        return _store(ctx).get_request(request_id).state
    except NotFound:
        fail(f"unknown request {request_id!r}", EXIT_NOT_FOUND)


def _submit_checked(ctx: typer.Context, item: Path, what: str, as_json: bool) -> None:
    """Validate `item` as the intake will, refuse a duplicate of a request the registry holds,
    else drop it into the inbox."""
    from unlearnd.daemon.inbox import submit as submit_item
    from unlearnd.daemon.schema import RequestError
    from unlearnd.daemon.sink import RESUBMITTABLE, known
    from unlearnd.daemon.validate import accept_item
    from unlearnd.registry import Conflict

    s = settings(ctx)
    try:
        accepted = accept_item(item, s)
    except RequestError as e:
        fail(f"{what} is not a valid request, not submitted:\n{e}")
    store = existing_store(ctx, required=False)
    try:
        record = known(accepted, store) if store is not None else None
    except Conflict as e:
        fail(f"{what}: {e}; not submitted")
    if record is not None:
        hint = (f"; to run it again: `unlearnd submit --again {record.request_id}`"
                if record.state in RESUBMITTABLE else "")  # fmt: skip
        if not as_json:
            fail(f"{what} is a duplicate of request {record.request_id} ({record.state}), "
                 f"not submitted{hint}", EXIT_DUPLICATE)  # fmt: skip
        print_json({"item": what, "submitted_as": None, "duplicate_of": record.request_id,
                    "state": record.state})  # fmt: skip
        raise typer.Exit(EXIT_DUPLICATE)
    dest = submit_item(item, s.inbox)
    if as_json:
        print_json({"item": what, "submitted_as": str(dest), "request_id": accepted.request_id})
        return
    typer.echo(f"submitted {what} as {dest} (request {accepted.request_id})")


def _store(ctx: typer.Context):
    return existing_store(ctx)


def _record(rec) -> dict:
    return rec.model_dump(mode="json") if hasattr(rec, "model_dump") else dict(vars(rec))


def requests(
    ctx: typer.Context,
    state: str = typer.Option(None, "--state", help="Only this state (e.g. queued, failed)."),
    limit: int = typer.Option(100, "--limit", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List requests, newest first."""
    from unlearnd.registry.records import REQUEST_STATES

    if state is not None and state not in REQUEST_STATES:
        fail(f"--state: unknown state {state!r}; one of {', '.join(REQUEST_STATES)}", EXIT_USAGE)
    rows = [_record(r) for r in _store(ctx).list_requests(state=state, limit=limit)]
    if as_json:
        print_json(rows)
        return
    columns = ("request_id", "state", "kind", "method", "priority", "source_name", "created_at")
    print_table(([r.get(c) for c in columns] for r in rows), columns, title="requests")


VERSION_KEYS = ("id", "parent_id", "kind", "status", "metrics", "timings", "created_at")
TERMINAL = ("committed", "gated", "failed", "rejected", "reverted")


def _threshold_note(routing: dict) -> str:
    c = routing.get("calibration")
    if not c:
        return ""
    return (f"; image door at {c['threshold']:.3f}: expected miss {c['miss']:.0%}, "
            f"false fires {c['false_fire']:.1%}")  # fmt: skip


def progress_table(store, request_id: str, started: float):
    """One row: the request's state, its job's stage (e.g. "training 12/40"), time so far."""
    from rich.table import Table

    jobs = store.list_jobs(request_id=request_id)
    table = Table(title=f"request {request_id}")
    for col in ("state", "job", "stage", "attempts", "elapsed"):
        table.add_column(col)
    job = jobs[-1] if jobs else None
    table.add_row(
        store.get_request(request_id).state,
        f"{job.id} ({job.kind})" if job else "",
        (job.stage or "") if job else "",
        str(job.attempts) if job else "",
        f"{time.monotonic() - started:.0f} s",
    )
    return table


def watch_request(store, request_id: str, timeout_s: float | None = None, show: bool = True) -> str:
    """Wait until the request reaches a final state (or the timeout), showing its progress
    live when `show`; returns the state it is in then."""
    from contextlib import nullcontext

    from rich.live import Live

    started = time.monotonic()
    with Live(console=console, refresh_per_second=2) if show else nullcontext() as live:
        while True:
            if live is not None:
                live.update(progress_table(store, request_id, started))
            state = store.get_request(request_id).state
            if state in TERMINAL:
                return state
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                return state
            time.sleep(0.5)


def request_show(
    ctx: typer.Context,
    request_id: str = typer.Argument(..., help="The request id (see `unlearnd requests`)."),
    watch: bool = typer.Option(
        False, "--watch", "-w", help="Follow the request live until it finishes, then show it."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """State, attempts, errors, timings and resulting version of one request."""
    from unlearnd.evaluation.promotion import PARENT_NONE, unmeasurable
    from unlearnd.registry import NotFound

    store = _store(ctx)
    try:
        rec = _record(store.get_request(request_id))
    except NotFound:
        fail(f"unknown request {request_id!r}", EXIT_NOT_FOUND)
    if watch:
        watch_request(store, request_id, show=not as_json)
        rec = _record(store.get_request(request_id))
    jobs = [_record(j) for j in store.list_jobs(request_id=request_id)]
    # The newest versions are searched: the store has no lookup by request (yet).
    versions = [
        {k: v.get(k) for k in VERSION_KEYS}
        for v in map(_record, store.list_versions(limit=VERSION_SCAN))
        if v["request_id"] == request_id
    ]
    if as_json:
        print_json({**rec, "jobs": jobs, "versions": versions})
        return
    summary = {k: v for k, v in rec.items() if k != "spec"}  # the spec is long: --json has it
    for version in versions:
        summary[f"version {version['id']}"] = (
            f"{version['kind']} {version['status']} (parent {version['parent_id']}), "
            f"timings {version['timings']}"
        )
        silent = unmeasurable(version.get("metrics") or {})
        if silent:
            summary[f"version {version['id']} {PARENT_NONE}"] = ", ".join(silent)
        routing = (version.get("metrics") or {}).get("routing")
        if routing:  # the expert-pool decision with its scores (routing/pool.py)
            scores = ", ".join(f"{k} {v:.3f}" for k, v in routing["relevance"].items()) or "none"
            summary[f"version {version['id']} routing"] = (
                f"{routing['action']} expert {routing['expert_id']} (relevance: {scores}; "
                f"replayed: {', '.join(routing['replay']) or 'none'})" + _threshold_note(routing)
            )
    for job in jobs:
        for key in (
            "id",
            "kind",
            "state",
            "stage",
            "attempts",
            "error",
            "worker_id",
            "lease_expires_at",
            "created_at",
            "started_at",
            "finished_at",
        ):
            if key in job:
                summary[f"job {job['id']} {key}"] = job[key]
    print_mapping(summary, title=f"request {request_id}")
