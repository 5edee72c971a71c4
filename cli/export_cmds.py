"""`unlearnd export V --out DIR [--format peft|merged]`: a version as a folder other servers
load (serving/export.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from unlearnd.cli.common import (
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    VERSION_HELP,
    chosen_version,
    console,
    err_console,
    existing_store,
    fail,
    print_json,
    settings,
)


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    ctx: typer.Context,
    version: str = typer.Argument(..., help=VERSION_HELP),
    out: Path = typer.Option(..., "--out", help="A new (or empty) folder."),
    fmt: str = typer.Option(
        "peft", "--format", help="peft: a LoRA folder beside the base model; merged: a full model."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Write a method version as one PEFT LoRA folder (`PeftModel.from_pretrained(base, OUT)`,
    vLLM, TGI) or, with --format merged, as a Hugging Face model folder with the change
    merged. A routed (refuser) version writes one PEFT folder per expert and the switch's
    files, read by `unlearnd.serving.Router(OUT)`; it cannot be merged. Results that are not
    a LoRA (CAGUL, VL-Eraser, ADU) are refused with the reason."""
    from unlearnd.registry import NotFound
    from unlearnd.serving import Deployment
    from unlearnd.serving.export import ExportError, export_version

    s = settings(ctx)
    store = existing_store(ctx)
    try:
        chosen = chosen_version(store, version)
        err_console.print(f"exporting version {chosen} as {fmt} ...", style="dim")
        written = export_version(Deployment(s), store, chosen, out, fmt)
    except NotFound as e:
        fail(str(e), EXIT_NOT_FOUND)
    except ExportError as e:
        fail(str(e), EXIT_ERROR)
    finally:
        store.close()
    if as_json:
        print_json(written)
    elif written["format"] == "routed":
        console.print(f"wrote {out}: version {chosen}, experts {', '.join(written['experts'])} "
                      f"for {written['requests']} requests over {written['base_model']}; route "
                      f"queries with unlearnd.serving.Router({str(out)!r})")  # fmt: skip
    else:
        console.print(f"wrote {out}: version {chosen} ({written['method']}, rank "
                      f"{written['rank']} on {written['target_modules']} modules) over "
                      f"{written['base_model']}")  # fmt: skip
    if not as_json and fmt == "peft" and not written["language_model_only"]:
        instead = "" if written["format"] == "routed" else "; use --format merged there"
        console.print(
            "note: it also adapts the projector or the vision tower: PEFT loads it, a server "
            f"that adapts only the language model (vLLM) does not{instead}"
        )
