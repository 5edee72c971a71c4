"""Entry point: global options, then each area's commands."""

from __future__ import annotations

from pathlib import Path

import typer

from unlearnd import __version__
from unlearnd.cli import (
    api_cmds,
    classify_cmds,
    daemon_cmds,
    demo_cmd,
    export_cmds,
    gate_cmds,
    inference_cmds,
    init_cmds,
    method_cmds,
    model_cmds,
    registry_cmds,
    report_cmds,
    world_cmds,
)
from unlearnd.serving.providers import set_default_provider

app = typer.Typer(
    name="unlearnd",
    help="Remove knowledge from a served vision-language model on request; keep every version.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _world_default(settings) -> None:
    """A deployment that names no model serves the built-in demo world, through the files
    its provider writes (world/deployment.py), like any other deployment."""
    from unlearnd.world.deployment import provide

    provide(settings)


set_default_provider(_world_default)

# Each area adds its commands here; the order is the order of `unlearnd --help`.
for module in (
    demo_cmd,
    init_cmds,
    daemon_cmds,
    registry_cmds,
    export_cmds,
    report_cmds,
    gate_cmds,
    inference_cmds,
    classify_cmds,
    api_cmds,
    method_cmds,
    model_cmds,
    world_cmds,
):
    module.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"unlearnd {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Config file (default: $UNLEARND_CONFIG, ./unlearnd.toml)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    ctx.obj = {"config_path": config}


def main() -> None:
    app()


if __name__ == "__main__":
    main()
