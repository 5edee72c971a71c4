"""`unlearnd model info PATH`: what a local model folder holds."""

from __future__ import annotations

from pathlib import Path

import typer

from unlearnd.cli.common import EXIT_ERROR, EXIT_NOT_FOUND, fail, print_json, print_mapping

model_app = typer.Typer(help="Inspect model folders.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")


@model_app.command("info")
def info(
    path: Path = typer.Argument(..., help="A local Hugging Face model folder."),
    device: str = typer.Option("cpu", help="auto, cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Family, parameter counts, vision / projector / FFN shapes, dtype."""
    from unlearnd.models import ModelLoadError, load

    if not path.exists():
        fail(f"model folder not found: {path}", EXIT_NOT_FOUND)
    try:
        data = load(path, device=device).info()
    except ModelLoadError as e:
        fail(str(e), EXIT_ERROR)
    data = {"path": str(path.resolve()), **data}
    if as_json:
        print_json(data)
        return
    flat = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for section in ("parameters", "vision", "projector", "ffn"):
        for key, value in data[section].items():
            flat[f"{section}.{key}"] = f"{value:,}" if isinstance(value, int) else value
    print_mapping(flat, title=f"{data['family']} model")
