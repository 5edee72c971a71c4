"""`unlearnd classify`: class probabilities of an image, for deployments that serve a CLIP."""

from __future__ import annotations

from pathlib import Path

import typer

from unlearnd.cli.common import EXIT_NOT_FOUND, fail, print_json, settings


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
    image: Path = typer.Option(..., "--image", "-i", help="An image file."),
    version: int | None = typer.Option(None, "--version", "-v", help="Default: the live one."),
    labels: str = typer.Option(
        "", "--labels", "-l", help="Comma-separated class names (default: the CLIP world's)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Classify an image zero-shot ("a photo of a {class}.") through a version of a served
    CLIP: a version's domain unlearning (ADU) prompts are applied like any adapter."""
    from PIL import Image

    from unlearnd.daemon.deployment import Deployment
    from unlearnd.daemon.service import open_registry
    from unlearnd.daemon.serving import load_version
    from unlearnd.registry import NotFound

    s = settings(ctx)
    if not image.is_file():
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
        fam = load_version(deployment, store, chosen).fam
    except NotFound as e:
        fail(str(e), EXIT_NOT_FOUND)
    finally:
        store.close()
    if fam.family != "clip":
        fail(f"classify needs a CLIP deployment; this one serves {fam.family} (use generate)")
    with Image.open(image) as im:
        (probs,) = fam.classify([im.convert("RGB")], classes).tolist()
    ranked = sorted(zip(classes, probs, strict=True), key=lambda cp: -cp[1])
    if as_json:
        print_json({
            "image": str(image),
            "version": chosen,
            "label": ranked[0][0],
            "probabilities": {c: round(p, 4) for c, p in ranked},
        })  # fmt: skip
        return
    typer.echo(ranked[0][0])
