"""`unlearnd classify`: class probabilities of an image, for deployments that serve a CLIP;
one image, or a JSONL file of them (`--batch`) classified with the model loaded once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from unlearnd.cli.common import EXIT_NOT_FOUND, EXIT_USAGE, fail, print_json, settings
from unlearnd.cli.inference_cmds import chunks, open_image, read_batch, routing_info

CLASSIFY_BATCH = 32  # images per forward pass


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)


def _world_classes(model_dir: Path) -> list[str]:
    """The classes of the CLIP world whose model folder this is ([] if it is not one)."""
    from unlearnd.world.clip_world import load_clip_world

    if not (model_dir.parent / "clip_world.json").is_file():
        return []
    return list(load_clip_world(model_dir.parent).classes)


def classify(
    ctx: typer.Context,
    image: Path | None = typer.Option(None, "--image", "-i", help="An image file."),
    batch: Path | None = typer.Option(
        None,
        "--batch",
        "-b",
        help='JSONL, one {"image": PATH} a line (relative to the file, or absolute).',
    ),
    version: int | None = typer.Option(None, "--version", "-v", help="Default: the live one."),
    labels: str = typer.Option(
        "", "--labels", "-l", help="Comma-separated class names (default: the CLIP world's)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON; with --batch one object a line."
    ),
) -> None:
    """Classify an image zero-shot ("a photo of a {class}.") through a version of a served
    CLIP: a version's domain unlearning (ADU) prompts are applied like any adapter."""
    from PIL import Image

    from unlearnd.daemon.deployment import Deployment
    from unlearnd.daemon.service import open_registry
    from unlearnd.daemon.serving import load_version
    from unlearnd.registry import NotFound

    if (batch is None) == (image is None):
        fail("give either --image or --batch FILE.jsonl", EXIT_USAGE)
    s = settings(ctx)
    items = read_batch(batch, prompt=False) if batch is not None else []
    if image is not None and not image.is_file():
        fail(f"image not found: {image}", EXIT_NOT_FOUND)
    deployment = Deployment(s)
    classes = [c.strip() for c in labels.split(",") if c.strip()] or _world_classes(
        deployment.model_dir
    )
    if len(classes) < 2:
        fail("give at least two class names with --labels")
    store = open_registry(s)
    try:
        chosen = version if version is not None else store.get_alias("live")
        model = load_version(deployment, store, chosen)
    except NotFound as e:
        fail(str(e), EXIT_NOT_FOUND)
    finally:
        store.close()
    fam = model.fam
    if fam.family != "clip":
        fail(f"classify needs a CLIP deployment; this one serves {fam.family} (use generate)")
    if model.gate is not None or model.adapters:
        # No method trains refuser experts for CLIP; if one ever does, classify must switch
        # them per image instead of silently ignoring them.
        fail("this version has refuser experts, which classify does not route")
    if batch is not None:
        _classify_batch(model, chosen, classes, batch, items, as_json)
        return
    with Image.open(image) as im:
        (probs,) = fam.classify([im.convert("RGB")], classes).tolist()
    result = _result(classes, probs)
    if as_json:
        print_json({"image": str(image), "version": chosen, **result})
        return
    typer.echo(result["label"])


def _result(classes: list[str], probs: list[float]) -> dict[str, Any]:
    ranked = sorted(zip(classes, probs, strict=True), key=lambda cp: -cp[1])
    return {"label": ranked[0][0], "probabilities": {c: round(p, 4) for c, p in ranked}}


def _classify_batch(
    model: Any, version: int | None, classes: list[str], path: Path, items: list, as_json: bool
) -> None:
    routing = routing_info(model, {})  # no gate (checked above): every image on the base path
    for chunk in chunks(items, CLASSIFY_BATCH, "classified"):
        images = [open_image(it, path) for it in chunk]
        for it, probs in zip(chunk, model.fam.classify(images, classes).tolist(), strict=True):
            result = _result(classes, probs)
            if as_json:
                row = {"line": it.line, "image": str(it.image), "version": version, **result}
                typer.echo(json.dumps({**row, "routing": routing}))
            else:
                p = result["probabilities"][result["label"]]
                typer.echo(f"{it.line}: {result['label']} ({p:.2f})  {it.image.name}")
