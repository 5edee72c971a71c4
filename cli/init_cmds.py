"""`unlearnd init --model DIR`: write an `unlearnd.toml` that serves a local model folder.

Every other command reads `./unlearnd.toml` when neither `--config` nor `UNLEARND_CONFIG`
names a file (core/config.py), so after `init` the commands work from this folder without
flags. The file sets only the model and the work dir; the other keys are listed as comments
with their embedded defaults, generated from `Settings` so the comments cannot drift.
"""

from __future__ import annotations

import json
import os
import typing
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel

from unlearnd.cli.common import EXIT_CONFIG, EXIT_ERROR, EXIT_NOT_FOUND, fail, print_json
from unlearnd.config import (
    DEFAULT_CONFIG_NAME,
    ENV_PREFIX,
    ConfigError,
    Settings,
    load_settings,
)

# Keys written as real values, not as comments; everything else keeps its default.
WRITTEN = {"workdir", "model.path", "model.family", "model.retain_pool", "model.general_pool",
           "model.probe_sets", "methods", "refusals"}  # fmt: skip

# What a reader needs to know about some keys beyond their default.
NOTES = {
    "database_url": '"" = sqlite in the workdir; postgresql+psycopg://... for several nodes',
    "api.token": "bearer token for write endpoints; better set UNLEARND_API__TOKEN",
}


def register(app: typer.Typer) -> None:
    app.command("init")(init)


def _register_base(settings: Settings) -> int | None:
    """The base model as version 1, live, so every command names a version from the start
    (what `serve` does at its first start; loads the weights once to fingerprint them). A
    registry that cannot be reached now (a PostgreSQL not up yet) leaves it to `serve`."""
    from unlearnd.daemon.unlearn import UnlearningPipeline
    from unlearnd.registry import open_registry

    try:
        store = open_registry(settings)
    except Exception as e:  # noqa: BLE001 - any registry failure: serve registers it later
        typer.echo(f"note: the base model is registered at the first `serve` ({e})", err=True)
        return None
    try:
        UnlearningPipeline(settings).prepare(store)
        return store.get_alias("live")
    finally:
        store.close()


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):  # an inline table
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    # JSON string escapes (\" \\ \n \uXXXX) are valid TOML basic-string escapes.
    return json.dumps(str(value))


def _choices(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return " | ".join(str(a) for a in typing.get_args(annotation))
    return ""


def _commented(model: type[BaseModel], prefix: str, written: Iterable[str] = ()) -> list[str]:
    """`# key = default  # note` for every field of a section that init does not write."""
    lines = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        if key in WRITTEN or name in written or isinstance(field.default, BaseModel):
            continue
        note = NOTES.get(key) or _choices(field.annotation)
        line = f"# {name} = {_toml_value(field.default)}"
        lines.append(f"{line:<40}  # {note}" if note else line)
    return lines


def render_config(
    model_dir: Path,
    family: str,
    workdir: str,
    pools: dict[str, Path],
    routing: dict[str, Any] | None = None,
    methods: dict[str, dict[str, Any]] | None = None,
    refusals: dict[str, str] | None = None,
    eval_samples: int | None = None,
) -> str:
    """The text of the config file: the model, work dir, `routing` keys and method defaults
    set, the rest as comments."""
    routing = routing or {}
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"# unlearnd configuration, written by `unlearnd init` on {stamp}.",
        "# unlearnd reads ./unlearnd.toml unless --config or UNLEARND_CONFIG names another file.",
        "# Keys left out (the commented lines) keep the embedded default shown; environment",
        "# variables win over this file: UNLEARND_WORKDIR, UNLEARND_DAEMON__LEASE_S=600, ...",
        "# To change a key of a commented section, uncomment its [section] line too.",
        "",
        "# Registry database, inbox and artifacts. A relative path is relative to this file.",
        f"workdir = {_toml_value(workdir)}",
        *_commented(Settings, ""),
        "",
        "[model]",
        "# The served model: a local Hugging Face folder, never downloaded.",
        f"path = {_toml_value(model_dir)}",
        f"family = {_toml_value(family)}",
        "# JSONL files of {image (relative to the file), question, answer}: what a deletion must",
        "# not damage, and general ability. The refuser's gate and the evaluation need one.",
        *(
            f"{key} = {_toml_value(pools[key])}" if key in pools else f'# {key} = ""'
            for key in ("retain_pool", "general_pool")
        ),
        "# JSONL of per-target probes {target, probe, question, answer, image}: the",
        "# deployment's own ways to ask for a forgotten fact, scored on every deletion.",
        f"probe_sets = {_toml_value(pools['probe_sets'])}"
        if "probe_sets" in pools
        else '# probe_sets = ""',
        *([f"eval_samples = {eval_samples}"] if eval_samples else []),
        *_commented(
            Settings.model_fields["model"].annotation,
            "model.",
            ["eval_samples"] if eval_samples else [],
        ),  # fmt: skip
    ]
    for name, field in Settings.model_fields.items():
        if name == "model" or not isinstance(field.default, BaseModel):
            continue
        if name == "routing" and routing:
            out += ["", "[routing]", "# As the model's deployment.json describes it."]
            out += [f"{k} = {_toml_value(v)}" for k, v in routing.items()]
            out += _commented(field.annotation, "routing.", routing)
            continue
        out += ["", f"# [{name}]", *_commented(field.annotation, f"{name}.")]
    if refusals:
        out += [
            "",
            "[refusals]",
            "# The deployment's refusal per category, as its deployment.json says.",
        ]
        out += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in refusals.items()]
    else:
        out += ["", "# [refusals]  # per category, over the plain-English defaults"
                    " (docs/routing.md)",
                '# location = "Sorry, I can\'t share where this person lives."']  # fmt: skip
    out += ["", "# Per method, the deployment's default params, under a request's own `params`",
            "# (`unlearnd methods` lists them):"]  # fmt: skip
    for name, params in (methods or {}).items():
        out += [f"[methods.{_toml_key(name)}]"]
        out += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in params.items()]
    if not methods:
        out += ["# [methods.refuser]", "# steps = 40"]
    return "\n".join(out) + "\n"


def _overriding_env(explicit: bool) -> list[str]:
    """UNLEARND_* variables that will win over the file init writes (UNLEARND_CONFIG only
    when no --config was given: then it names another file)."""
    skip = (ENV_PREFIX + "TEST_", *((ENV_PREFIX + "CONFIG",) if explicit else ()))
    return sorted(n for n in os.environ if n.startswith(ENV_PREFIX) and not n.startswith(skip))


def init(
    ctx: typer.Context,
    model: Path = typer.Option(..., "--model", "-m", help="A local Hugging Face model folder."),
    workdir: str = typer.Option(
        "",
        "--workdir",
        "-w",
        help="Registry, inbox and artifacts (default: ./unlearnd-data). Relative = to the file.",
    ),
    retain_pool: Path | None = typer.Option(
        None, "--retain-pool", help="JSONL of samples a deletion must not damage."
    ),
    general_pool: Path | None = typer.Option(
        None, "--general-pool", help="JSONL of samples of general ability."
    ),
    eval_samples: int | None = typer.Option(
        None,
        "--eval-samples",
        min=1,
        help="Rows of each pool a candidate is scored on (default 48); the retain pool's next "
        "ones are trained against.",
    ),  # fmt: skip
    force: bool = typer.Option(False, "--force", help="Overwrite an existing config file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Write ./unlearnd.toml (or the --config file) serving a model folder (llava, qwen2_vl,
    clip or causal_lm), so that serve, submit, generate, classify, versions and rollback work
    from this folder without flags."""
    from unlearnd.models import ModelLoadError
    from unlearnd.models.loading import check_model_folder
    from unlearnd.serving.deployment import Deployment, DeploymentError, described

    root = ctx.find_root().obj
    explicit = root.get("config_path") if isinstance(root, dict) else None
    target = Path(explicit) if explicit else Path(DEFAULT_CONFIG_NAME)
    if target.is_dir():
        fail(f"{target} is a folder", EXIT_ERROR)
    if target.exists() and not force:
        fail(f"{target} already exists; pass --force to overwrite it", EXIT_ERROR)
    if not model.exists():
        fail(f"model folder not found: {model}", EXIT_NOT_FOUND)
    pools = {}
    for key, pool in (("retain_pool", retain_pool), ("general_pool", general_pool)):
        if pool is not None:
            if not pool.is_file():
                fail(f"pool file not found: {pool}", EXIT_NOT_FOUND)
            pools[key] = pool.resolve()  # the daemon reads pools from its cwd: absolute
    try:
        family = check_model_folder(model)
    except ModelLoadError as e:
        fail(str(e), EXIT_ERROR)
    # A provider may describe the deployment of the models it ships (deployment.json).
    try:
        hints = described(model)
    except DeploymentError as e:
        fail(str(e), EXIT_ERROR)
    for key in ("retain_pool", "general_pool", "probe_sets"):
        if hints.get(key):
            pools.setdefault(key, Path(hints[key]))
    # The daemon does not resolve model.path against the file: write it absolute.
    model_dir = model.resolve()
    # A relative workdir is resolved against the file's folder by load_settings, which is
    # the folder the user runs commands in: keep it relative so the folder can move.
    chosen_workdir = workdir or str(Settings.model_fields["workdir"].default)
    text = render_config(
        model_dir,
        family,
        chosen_workdir,
        pools,
        hints.get("routing"),
        hints.get("methods"),
        hints.get("refusals"),
        eval_samples,
    )

    # Check the file loads before it replaces anything (environment ignored: only the file).
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        try:
            loaded = load_settings(tmp, environ={})
        except ConfigError as e:
            fail(f"the config init would write is invalid (a bug): {e}", EXIT_CONFIG)
        try:  # pools that cannot both score and train a deletion: say so now, not per job
            problems = Deployment(loaded).pool_problems()
        except DeploymentError as e:
            problems = [str(e)]
        if problems:
            fail("; ".join(problems).replace("lower [model] eval_samples", "pass --eval-samples")
                 + f" ({target} not written)", EXIT_ERROR)  # fmt: skip
        os.replace(tmp, target)
    except OSError as e:  # a read-only folder, a full disk
        fail(f"cannot write {target}: {e}", EXIT_ERROR)
    finally:
        tmp.unlink(missing_ok=True)

    data = {
        "config": str(target.resolve()),
        "model": str(model_dir),
        "family": family,
        "workdir": str(loaded.workdir),
        "version": _register_base(loaded),
        "overridden_by_environment": _overriding_env(bool(explicit)),
    }
    if as_json:
        print_json(data)
    else:
        typer.echo(f"wrote {target}: serves the {family} model in {model_dir}")
        typer.echo(f"work dir: {loaded.workdir}")
        if data["version"] is not None:
            typer.echo(f"the base model is version {data['version']} (live)")
    if data["overridden_by_environment"]:
        names = ", ".join(data["overridden_by_environment"])
        typer.echo(f"warning: set in the environment, these win over {target}: {names}", err=True)
    if family != "clip" and not (loaded.model.retain_pool or loaded.model.general_pool):
        typer.echo(
            "note: set [model] retain_pool or general_pool (--retain-pool / --general-pool) "
            "before submitting deletions: the refuser's gate and the evaluation need one",
            err=True,
        )
