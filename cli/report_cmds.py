"""`unlearnd report [V]`: a version's report (JSON, plots, HTML): the one the worker stored
with the version, or rendered now from the registry's metrics when there is none."""

from __future__ import annotations

from pathlib import Path

import typer

from unlearnd.cli.common import EXIT_NOT_FOUND, console, fail, print_json, print_mapping, settings
from unlearnd.cli.registry_cmds import _store


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    ctx: typer.Context,
    version_id: int = typer.Argument(None, help="The version id (default: the live one)."),
    out: Path = typer.Option(
        None, "--out", help="Folder for the files (default: <workdir>/reports/v<V>/)."
    ),
    fresh: bool = typer.Option(
        False, "--fresh", help="Render it now from the registry, not the stored snapshot."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Write a version's report (report.json, PNG plots, report.html); print its summary.

    A version the worker made has its report stored as an artifact (a snapshot as of its
    commit); others (the base, reverts, versions older than stored reports) are rendered now."""
    from unlearnd.evaluation import report as rep
    from unlearnd.registry import NotFound

    store = _store(ctx)
    try:
        if version_id is None:
            version_id = store.get_alias("live")
            if version_id is None:
                fail("no live version yet (the registry is empty)", EXIT_NOT_FOUND)
        folder = out or settings(ctx).workdir / "reports" / f"v{version_id}"
        try:
            data = rep.write(store, version_id, folder, fresh=fresh)
        except NotFound:
            fail(f"unknown version {version_id}", EXIT_NOT_FOUND)
    finally:
        store.close()
    if as_json:
        print_json(data)
        return
    s = data["summary"]
    head = {k: s[k] for k in ("version", "kind", "status", "method", "request_id", "parent_id")}
    head["aliases"] = ", ".join(s["aliases"])
    print_mapping(head, title=f"version {version_id}")
    scores = {k: rep.score_line(k, v, s["parent_metrics"].get(k)) for k, v in s["metrics"].items()}
    if scores:
        print_mapping(scores, title="scores")
    if s["gate"]:
        verdict = "passed" if s["gate"]["passed"] else "failed: " + "; ".join(s["gate"]["failed"])
        console.print(f"gate {verdict}", highlight=False)
    if data["source"] == "stored":
        origin = f"stored report {data['artifact'][:12]}, rendered {data['rendered_at']}"
    else:
        origin = "rendered now: no stored report" if not fresh else "rendered now"
    console.print(f"report: {data['html']}", highlight=False, soft_wrap=True)
    console.print(f"({origin})", highlight=False, soft_wrap=True)
