"""`unlearnd versions`, `version show`, `history`, `rollback`, `revert`: the model's history."""

from __future__ import annotations

import getpass
import socket
from typing import Any

import typer

from unlearnd.cli.common import (
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    existing_store,
    fail,
    print_json,
    print_mapping,
    print_table,
)

version_app = typer.Typer(help="One model version.", no_args_is_help=True)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON.")
ALIAS_OPTION = typer.Option("live", "--alias", help="The alias (default: live).")


def register(app: typer.Typer) -> None:
    app.command("versions")(versions)
    version_app.command("show")(version_show)
    app.add_typer(version_app, name="version")
    app.command("history")(history)
    app.command("rollback")(rollback)
    app.command("revert")(revert)


def _store(ctx: typer.Context):
    return existing_store(ctx)


def _who() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def _json(record: Any) -> dict[str, Any]:
    return record.model_dump(mode="json")


def _aliases_by_version(store) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for name, version_id in store.list_aliases().items():
        found.setdefault(version_id, []).append(name)
    return found


def versions(
    ctx: typer.Context,
    limit: int = typer.Option(50, "--limit", min=1, help="How many, newest first."),
    before: int = typer.Option(None, "--before", min=1, help="Only versions older than this id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List model versions, newest first, with the aliases that point to them."""
    store = _store(ctx)
    rows = store.list_versions(limit=limit, before=before)
    aliases = _aliases_by_version(store)
    if as_json:
        print_json([{**_json(v), "aliases": aliases.get(v.id, [])} for v in rows])
        return
    columns = (
        "id",
        "aliases",
        "kind",
        "status",
        "request",
        "parent",
        "method",
        "experts",
        "created",
    )
    table = (
        (
            v.id,
            ",".join(aliases.get(v.id, [])),
            v.kind,
            v.status,
            v.request_id,
            v.parent_id,
            v.method,
            len(v.manifest.get("experts") or {}),
            v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
        for v in rows
    )
    print_table(table, columns, title="versions")


def version_show(
    ctx: typer.Context,
    version_id: int = typer.Argument(..., help="The version id (see `unlearnd versions`)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Everything recorded about one version: manifest, method, metrics, timings."""
    from unlearnd.registry import NotFound

    store = _store(ctx)
    try:
        version = store.get_version(version_id)
    except NotFound:
        fail(f"unknown version {version_id}", EXIT_NOT_FOUND)
    aliases = _aliases_by_version(store).get(version_id, [])
    if as_json:
        print_json({**_json(version), "aliases": aliases})
        return
    data = _json(version)
    data["aliases"] = ", ".join(aliases)
    manifest = data.pop("manifest")
    for section in ("experts", "artifacts"):
        for key, sha in (manifest.get(section) or {}).items():
            data[f"{section[:-1]} {key}"] = sha
    data["concept_index"] = manifest.get("concept_index")
    print_mapping(data, title=f"version {version_id}")


def history(
    ctx: typer.Context,
    alias: str = ALIAS_OPTION,
    limit: int = typer.Option(None, "--limit", min=1, help="Only the newest N moves."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Every move of an alias: who, when, from, to, why (oldest first)."""
    events = _store(ctx).alias_history(alias, limit=limit)
    if as_json:
        print_json([_json(e) for e in events])
        return
    columns = ("#", "when", "from", "to", "who", "why")
    rows = (
        (e.id, e.at.strftime("%Y-%m-%d %H:%M:%S"), e.from_version, e.to_version, e.who, e.why)
        for e in events
    )
    print_table(rows, columns, title=f"history of {alias!r}")


def rollback(
    ctx: typer.Context,
    to: int = typer.Option(..., "--to", help="The version to go back to."),
    why: str = typer.Option(..., "--why", help="Why (kept in the alias history)."),
    alias: str = ALIAS_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Point the alias at an earlier version. Instant: no training."""
    from unlearnd.registry import Conflict, NotFound

    store = _store(ctx)
    try:
        event = store.rollback(to, alias=alias, who=_who(), why=why)
    except NotFound:
        fail(f"unknown version {to}", EXIT_NOT_FOUND)
    except (Conflict, ValueError) as e:
        fail(str(e), EXIT_ERROR)
    if as_json:
        print_json(_json(event))
        return
    typer.echo(f"{alias}: version {event.from_version} -> {event.to_version} ({why})")


def revert(
    ctx: typer.Context,
    request_id: str = typer.Argument(..., help="The request whose effect to undo."),
    why: str = typer.Option(..., "--why", help="Why (kept in the alias history)."),
    alias: str = ALIAS_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Undo one request, keeping later deletions.

    Committed at once when no later request changed what it changed.
    Otherwise a revert job is queued: the daemon (`unlearnd serve`) retrains
    the later requests that shared an expert with it, without its samples,
    scores the result and commits one `revert` version.
    `unlearnd request show REQUEST_ID` follows it.
    """
    from unlearnd.registry import Conflict, NotFound

    store = _store(ctx)
    try:
        done = store.request_revert(request_id, alias=alias, who=_who(), why=why)
    except NotFound as e:
        fail(str(e), EXIT_NOT_FOUND)
    except (Conflict, ValueError) as e:
        fail(str(e), EXIT_ERROR)
    plan = done.plan
    if as_json:
        out = {"committed": done.version is not None, "plan": _json(plan)}
        out.update({"version": _json(done.version)} if done.version else {"job": _json(done.job)})
        print_json(out)
        return
    _print_plan(plan)
    if done.version is not None:
        typer.echo(f"{alias}: version {plan.head_version_id} -> {done.version.id} "
                   f"(revert of {request_id})")  # fmt: skip
        return
    typer.echo(
        f"queued as job {done.job.id}: {len(plan.replay)} later request(s) "
        f"({', '.join(plan.replay)}) shared an expert with {request_id} and are re-trained "
        f"without it by the daemon; follow it with `unlearnd request show {request_id}`."
    )


def _print_plan(plan) -> None:
    rows = [
        *((s, key, "dropped", "") for s, keys in plan.dropped.items() for key in keys),
        *((s, k, "restored", sha) for s, keys in plan.restored.items() for k, sha in keys.items()),
        *(("request", r, "replay", "") for r in plan.replay),
    ]
    if plan.concepts_removed:
        rows.append(("concepts", str(len(plan.concepts_removed)), "removed", ""))
    if plan.rebuild_concept_index:
        rows.append(("concept_index", "", "rebuild", ""))
    title = f"revert {plan.request_id} on {plan.alias} (version {plan.head_version_id})"
    print_table(rows, ("what", "key", "change", "sha256"), title=title)
