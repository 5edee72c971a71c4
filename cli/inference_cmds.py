"""`unlearnd generate`: ask the served model, as of the live (or any) version; one question,
or a JSONL file of them (`--batch`) answered with the model loaded once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from unlearnd.cli.common import (
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    THREADS_HELP,
    VERSION_HELP,
    chosen_version,
    err_console,
    existing_store,
    fail,
    print_json,
    served_deployment,
    serving_line,
    settings,
    use_threads,
)

GENERATE_BATCH = 8  # queries per forward pass; queries with the same experts share one


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)


@dataclass
class BatchLine:
    """One input line of a batch file: its 1-based line number and fields."""

    line: int
    image: Path | None
    prompt: str


def read_batch(path: Path, *, prompt: bool) -> list[BatchLine]:
    """Parse and check every line of a JSONL batch file before anything runs, so a bad line
    fails the command before any output: `{"image": PATH, "prompt": TEXT}` (image optional)
    when `prompt`, else `{"image": PATH}`. Image paths are relative to the file's folder.
    Blank lines are skipped but counted, so numbers match an editor's."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        fail(f"batch file not found: {path}", EXIT_NOT_FOUND)
    allowed = {"image", "prompt"} if prompt else {"image"}
    out = []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read {path}: {e}", EXIT_USAGE)
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as e:
            fail(f"{where}: not valid JSON: {e}", EXIT_USAGE)
        if not isinstance(row, dict):
            fail(f"{where}: expected a JSON object, got {type(row).__name__}", EXIT_USAGE)
        unknown = sorted(set(row) - allowed)
        if unknown:
            fail(f"{where}: unknown field(s) {unknown}; allowed: {sorted(allowed)}", EXIT_USAGE)
        question = row.get("prompt", "")
        if prompt and (not isinstance(question, str) or not question.strip()):
            fail(f"{where}: 'prompt' must be a non-empty string", EXIT_USAGE)
        image = row.get("image")
        if image is None and not prompt:
            fail(f"{where}: 'image' is required", EXIT_USAGE)
        if image is not None:
            if not isinstance(image, str) or not image:
                fail(f"{where}: 'image' must be a path", EXIT_USAGE)
            image = path.parent / image  # an absolute path stays absolute
            if not image.is_file():
                fail(f"{where}: image not found: {image}", EXIT_NOT_FOUND)
            try:
                with Image.open(image):  # reads the header only; pixels are read per chunk
                    pass
            except (UnidentifiedImageError, OSError) as e:
                fail(f"{where}: not a readable image: {image}: {e}", EXIT_USAGE)
        out.append(BatchLine(n, image, question))
    if not out:
        fail(f"{path} holds no input lines", EXIT_USAGE)
    return out


def open_image(item: BatchLine, path: Path):
    """The line's image as RGB (None without one); a decoding error names the line."""
    from PIL import Image

    if item.image is None:
        return None
    try:
        with Image.open(item.image) as im:
            return im.convert("RGB")
    except OSError as e:
        fail(f"{path}:{item.line}: cannot decode {item.image}: {e}")


def chunks(items: list[BatchLine], size: int, what: str) -> Iterator[list[BatchLine]]:
    """`items` in slices of `size`, with progress on stderr (stdout stays the results) for
    batches longer than one slice."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
        done = min(start + size, len(items))
        if len(items) > size:
            typer.echo(f"{what} {done}/{len(items)}", err=True)


def experts_on(routing: dict[str, Any]) -> str:
    return ", ".join(f"{k} (beta {v:.2f})" for k, v in routing["experts"].items()) or "none"


def generate(
    ctx: typer.Context,
    prompt: str | None = typer.Option(None, "--prompt", "-p", help="The question."),
    image: Path | None = typer.Option(None, "--image", "-i", help="An image file (optional)."),
    batch: Path | None = typer.Option(
        None,
        "--batch",
        "-b",
        help='JSONL, one {"image": PATH, "prompt": TEXT} a line (image relative to the file).',
    ),
    version: str | None = typer.Option(None, "--version", "-v", help=VERSION_HELP),
    max_new_tokens: int = typer.Option(32, help="Longest answer, in tokens."),
    show_routing: bool = typer.Option(
        False, "--routing", help="Also print which refuser experts the gate switched on."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON (with the routing); with --batch one object a line."
    ),
    threads: int | None = typer.Option(None, "--threads", min=0, help=THREADS_HELP),
) -> None:
    """Answer a question (about an image) through a version of the served model and its
    routing gate: refuser experts switch on only for queries near a forgotten concept."""
    from PIL import Image

    if batch is not None and (prompt is not None or image is not None):
        fail("give either --batch or --prompt/--image, not both", EXIT_USAGE)
    if batch is None and prompt is None:
        fail("give --prompt (and optionally --image), or --batch FILE.jsonl", EXIT_USAGE)
    items = read_batch(batch, prompt=True) if batch is not None else []
    if image is not None and not image.is_file():
        fail(f"image not found: {image}", EXIT_NOT_FOUND)
    use_threads(settings(ctx), threads)
    served = served_version(ctx, version, served_deployment(ctx))
    err_console.print(serving_line(served.deployment, served.version_id), highlight=False,
                      soft_wrap=True, style="dim")  # fmt: skip
    if batch is not None:
        _generate_batch(served, batch, items, max_new_tokens, as_json)
        return
    picture = Image.open(image).convert("RGB") if image is not None else None
    answer = served.answer(prompt, picture, max_new_tokens=max_new_tokens)
    if as_json:
        print_json({**answer.to_dict(), "prompt": prompt, "image": str(image or "")})
        return
    typer.echo(answer.text)
    if show_routing:
        on = experts_on({"experts": answer.routing.get("experts") or {}})
        typer.echo(f"routing: gate {answer.routing.get('gate')}, experts on: {on}", err=True)


def served_version(ctx: typer.Context, version: str | None, deployment: Any = None):
    """The version asked for (id or alias, default live) loaded onto the served model; the
    base model where there is no registry yet (which this creates not)."""
    from unlearnd.registry import NotFound
    from unlearnd.serving import Deployment, ServedVersion

    deployment = deployment or Deployment(settings(ctx))
    store = existing_store(ctx, required=False)
    try:
        return ServedVersion(deployment, store, chosen_version(store, version))
    except NotFound as e:
        fail(str(e), EXIT_NOT_FOUND)
    finally:
        if store is not None:
            store.close()


def _generate_batch(
    served: Any, path: Path, items: list[BatchLine], max_new_tokens: int, as_json: bool
) -> None:
    """Answers in input order; each query is routed once and queries that turn on the same
    experts share one forward pass (ServedVersion.answer_batch)."""
    from unlearnd.models import Sample

    for chunk in chunks(items, GENERATE_BATCH, "generated"):
        samples = [Sample(it.prompt, "", open_image(it, path)) for it in chunk]
        for it, answer in zip(chunk, served.answer_batch(samples, max_new_tokens), strict=True):
            if as_json:
                row = {
                    "line": it.line,
                    "image": str(it.image or ""),
                    "prompt": it.prompt,
                    "text": answer.text,
                    "version": answer.version,
                    "routing": answer.routing,
                }
                typer.echo(json.dumps(row))  # one object a line: stdout is JSONL
            else:
                typer.echo(f"{it.line}: {answer.text}  [experts on: {experts_on(answer.routing)}]")
