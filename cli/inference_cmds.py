"""`unlearnd generate`: ask the served model, as of the live (or any) version."""

from __future__ import annotations

from pathlib import Path

import typer

from unlearnd.cli.common import EXIT_NOT_FOUND, fail, print_json, settings


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)


def generate(
    ctx: typer.Context,
    prompt: str = typer.Option(..., "--prompt", "-p", help="The question."),
    image: Path | None = typer.Option(None, "--image", "-i", help="An image file (optional)."),
    version: int | None = typer.Option(None, "--version", "-v", help="Default: the live one."),
    max_new_tokens: int = typer.Option(32, help="Longest answer, in tokens."),
    show_routing: bool = typer.Option(
        False, "--routing", help="Also print which refuser experts the gate switched on."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with the routing)."),
) -> None:
    """Answer a question (about an image) through a version of the served model and its
    routing gate: refuser experts switch on only for queries near a forgotten concept."""
    from PIL import Image

    from unlearnd.daemon.deployment import Deployment
    from unlearnd.daemon.service import open_registry
    from unlearnd.daemon.serving import ServedVersion
    from unlearnd.registry import NotFound

    s = settings(ctx)
    if image is not None and not image.is_file():
        fail(f"image not found: {image}", EXIT_NOT_FOUND)
    store = open_registry(s)
    try:
        chosen = version if version is not None else store.get_alias("live")
        served = ServedVersion(Deployment(s), store, chosen)
    except NotFound as e:
        fail(str(e), EXIT_NOT_FOUND)
    picture = Image.open(image).convert("RGB") if image is not None else None
    answer = served.answer(prompt, picture, max_new_tokens=max_new_tokens)
    if as_json:
        print_json({**answer.to_dict(), "prompt": prompt, "image": str(image or "")})
        return
    typer.echo(answer.text)
    if show_routing:
        experts = answer.routing.get("experts") or {}
        on = ", ".join(f"{k} (beta {v:.2f})" for k, v in experts.items()) or "none"
        typer.echo(f"routing: gate {answer.routing.get('gate')}, experts on: {on}", err=True)
