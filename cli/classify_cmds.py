"""`unlearnd classify`: class probabilities of an image, for deployments that serve a CLIP;
one image, or a JSONL file of them (`--batch`) classified with the model loaded once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from unlearnd.cli.common import EXIT_NOT_FOUND, EXIT_USAGE, VERSION_HELP, fail, print_json, settings
from unlearnd.cli.inference_cmds import chunks, open_image, read_batch, served_version

CLASSIFY_BATCH = 32  # images per forward pass


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)


def described_labels(model_dir: Path) -> list[str]:
    """The class names the model's deployment.json gives it ([] when none)."""
    from unlearnd.serving.deployment import described

    return list(described(model_dir).get("labels") or [])


def classify(
    ctx: typer.Context,
    image: Path | None = typer.Option(None, "--image", "-i", help="An image file."),
    batch: Path | None = typer.Option(
        None,
        "--batch",
        "-b",
        help='JSONL, one {"image": PATH} a line (relative to the file, or absolute).',
    ),
    version: str | None = typer.Option(None, "--version", "-v", help=VERSION_HELP),
    labels: str = typer.Option(
        "",
        "--labels",
        "-l",
        help="Comma-separated class names (default: the model's deployment.json labels).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON; with --batch one object a line."
    ),
) -> None:
    """Classify an image zero-shot ("a photo of a {class}.") through a version of a served
    CLIP: a version's domain unlearning (ADU) prompts are applied like any adapter."""
    from PIL import Image

    from unlearnd.models import UnsupportedOperation
    from unlearnd.serving import Deployment

    if (batch is None) == (image is None):
        fail("give either --image or --batch FILE.jsonl", EXIT_USAGE)
    s = settings(ctx)
    items = read_batch(batch, prompt=False) if batch is not None else []
    if image is not None and not image.is_file():
        fail(f"image not found: {image}", EXIT_NOT_FOUND)
    deployment = Deployment(s)
    classes = [c.strip() for c in labels.split(",") if c.strip()] or described_labels(
        deployment.model_dir
    )
    if len(classes) < 2:
        fail("give at least two class names with --labels")
    served = served_version(ctx, version, deployment)
    try:
        served.check_classifies()  # before any image is read
    except UnsupportedOperation as e:
        fail(f"{e} (use generate)" if served.fam.family != "clip" else str(e))
    if batch is not None:
        _classify_batch(served, classes, batch, items, as_json)
        return
    with Image.open(image) as im:
        (probs,) = served.classify([im.convert("RGB")], classes).tolist()
    result = _result(classes, probs)
    if as_json:
        print_json({"image": str(image), "version": served.version_id, **result})
        return
    typer.echo(result["label"])


def _result(classes: list[str], probs: list[float]) -> dict[str, Any]:
    ranked = sorted(zip(classes, probs, strict=True), key=lambda cp: -cp[1])
    return {"label": ranked[0][0], "probabilities": {c: round(p, 4) for c, p in ranked}}


def _classify_batch(
    served: Any, classes: list[str], path: Path, items: list, as_json: bool
) -> None:
    routing = served.model.routing_info({})  # no experts (checked): every image on the base
    for chunk in chunks(items, CLASSIFY_BATCH, "classified"):
        images = [open_image(it, path) for it in chunk]
        for it, probs in zip(chunk, served.classify(images, classes).tolist(), strict=True):
            result = _result(classes, probs)
            if as_json:
                row = {"line": it.line, "image": str(it.image), "version": served.version_id,
                       **result}  # fmt: skip
                typer.echo(json.dumps({**row, "routing": routing}))
            else:
                p = result["probabilities"][result["label"]]
                typer.echo(f"{it.line}: {result['label']} ({p:.2f})  {it.image.name}")
