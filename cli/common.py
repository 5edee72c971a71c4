"""What every command shares: settings from the global options, JSON or table output, errors."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from unlearnd.config import ConfigError, Settings, load_settings

console = Console()
err_console = Console(stderr=True)

# Exit codes that mean something (docs/commands.md "Exit codes").
EXIT_OK = 0
EXIT_ERROR = 1  # the operation failed
EXIT_USAGE = 2  # bad arguments (typer's own code)
EXIT_CONFIG = 3  # configuration is invalid
EXIT_NOT_FOUND = 4  # unknown version, request, alias or path
EXIT_DUPLICATE = 5  # `submit`: the registry already holds this request


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    # soft_wrap: no newline inside a path or a name, whatever the terminal width (logs, grep)
    # escape: "[model] path" is text, not rich markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def settings(ctx: typer.Context) -> Settings:
    """The settings for this invocation, loaded once from --config / UNLEARND_CONFIG / env."""
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, dict) else {}
    if "settings" not in obj:
        try:
            obj["settings"] = load_settings(obj.get("config_path"))
        except ConfigError as e:
            fail(str(e), EXIT_CONFIG)
        root.obj = obj
    return obj["settings"]


def registry_path(s: Settings):
    """The SQLite file of the deployment's registry (None for a server database)."""
    from pathlib import Path

    return Path(s.db_url.removeprefix("sqlite:///")) if s.db_url.startswith("sqlite:///") else None


def existing_store(ctx: typer.Context, *, required: bool = True):
    """The deployment's registry for a command that reads it. Where it does not exist yet, the
    command creates nothing: it fails saying so (`required`), or gets None (the base model)."""
    from unlearnd.registry import open_store

    s = settings(ctx)
    path = registry_path(s)
    if path is not None and not path.is_file():
        if required:
            why = "nothing recorded yet; `unlearnd serve` creates it, or give --config"
            fail(f"no registry here: {path} does not exist ({why})", EXIT_NOT_FOUND)
        return None
    try:
        return open_store(s.db_url, s.artifacts, max_attempts=s.daemon.max_attempts)
    except Exception as e:  # noqa: BLE001 - unreachable server, bad URL: say so, no traceback
        fail(f"cannot open the registry at {s.db_url.split('@')[-1]}: {e}")


def chosen_version(store: Any, version: str | None) -> int | None:
    """A version given as an id or an alias (default: live); None = the base model, where
    there is no registry or no live version yet."""
    if version is None:
        return store.get_alias("live") if store is not None else None
    chosen = int(version) if version.isdigit() else None
    if store is None:
        fail(f"unknown version {version!r}: there is no registry here yet", EXIT_NOT_FOUND)
    if chosen is None:
        chosen = store.get_alias(version)
    if chosen is None:
        fail(f"unknown alias or version {version!r}", EXIT_NOT_FOUND)
    return chosen


VERSION_HELP = "A version id or an alias (default: live)."


THREADS_HELP = "torch CPU threads (default: the threads setting, 1; 0 = one per core)."


def use_threads(s: Settings, override: int | None) -> None:
    """Fix torch's CPU threads before any model runs (`--threads`, else `threads`)."""
    import torch

    n = s.threads if override is None else override
    if n > 0:
        torch.set_num_threads(n)


def served_deployment(ctx: typer.Context):
    """The deployment a serving command (serve, generate, api) serves, checked before it
    starts: a `[model] path` that does not load stops it with the reason, never a fallback;
    none set serves the built-in demo world, said plainly on stderr."""
    from pathlib import Path

    from unlearnd.models import ModelLoadError
    from unlearnd.models.loading import check_model_folder
    from unlearnd.serving import Deployment

    s = settings(ctx)
    if s.model.path:
        try:
            check_model_folder(Path(s.model.path))
        except ModelLoadError as e:
            fail(f"[model] path {s.model.path} does not load: {e}", EXIT_CONFIG)
        return Deployment(s)
    deployment = Deployment(s)  # the provider writes the world's files and sets the path
    err_console.print(
        "no \\[model] path (no unlearnd.toml here): serving the built-in demo world; to serve "
        "your own model: unlearnd init --model DIR", highlight=False, soft_wrap=True)  # fmt: skip
    return deployment


def serving_line(deployment: Any, version: int | None) -> str:
    """What a serving command says at start: the model folder, its family, the version."""
    which = f"version {version}" if version is not None else "the base model (no version yet)"
    return f"serving {deployment.model_dir} ({deployment.family}), {which}"


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, sort_keys=False))


# Columns that hold ids: never cut ("req-452e2..." cannot be pasted into `request show`).
ID_COLUMNS = ("id", "request", "request_id", "version", "expert", "sha256", "key", "field")


def print_table(
    rows: Iterable[Sequence[Any]], columns: Sequence[str], title: str | None = None
) -> None:
    # Text, not markup: "[refusals]" in a method's help is text, not a rich style tag.
    cells = [[Text("" if v is None else str(v)) for v in row] for row in rows]
    table = Table(title=None if title is None else Text(title), show_lines=False)
    for i, col in enumerate(columns):
        if col in ID_COLUMNS:
            widest = max((len(row[i]) for row in cells), default=0)
            table.add_column(col, no_wrap=True, min_width=max(widest, len(col)))
        else:
            table.add_column(col)
    for row in cells:
        table.add_row(*row)
    console.print(table)


def print_mapping(data: dict[str, Any], title: str | None = None) -> None:
    print_table(((k, v) for k, v in data.items()), ("field", "value"), title=title)
