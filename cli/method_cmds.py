"""`unlearnd methods`: what a request may name in its `method` field."""

from __future__ import annotations

import typer

from unlearnd.cli.common import print_json, print_table


def register(app: typer.Typer) -> None:
    app.command("methods")(methods)


def methods(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List every registered unlearning method with its model families and params."""
    from unlearnd.methods import METHODS

    described = [m.describe() for m in METHODS.values()]
    if as_json:
        print_json(described)
        return
    for d in described:
        rows = [(name, p["default"], p["type"], p["help"]) for name, p in d["params"].items()]
        title = f"{d['name']} ({', '.join(d['families'])}): {d['summary']}"
        print_table(rows, ("param", "default", "type", "help"), title=title)
