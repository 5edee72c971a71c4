"""`unlearnd world build`: generate the world, train its models, print the quality figures."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from unlearnd.cli.common import EXIT_ERROR, err_console, fail, print_json, print_mapping

world_app = typer.Typer(help="The generated world of fictitious people and its tiny models.")


def register(app: typer.Typer) -> None:
    app.add_typer(world_app, name="world")


@world_app.command("build")
def build(
    out: Path = typer.Option(Path("unlearnd-world"), "--out", help="Folder to write the world to."),
    size: str = typer.Option(
        "small", "--size", help="small (quick) or medium (the fixture); --images: small."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the generator and the training."),
    threads: int = typer.Option(2, "--threads", help="torch CPU threads."),
    clip: bool = typer.Option(True, "--clip/--no-clip", help="Also build the CLIP world."),
    device: str = typer.Option(
        "auto", "--device", help="Train the VLM on auto (CUDA when present), cpu or cuda[:N]."
    ),
    images: Path | None = typer.Option(
        None,
        "--images",
        help="Build from an image tree DIR/<domain>/<class>/*.jpg instead (e.g. PACS): a tiny "
        "CLIP, then a tiny LLaVA from its vision tower, answering class and style.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as one JSON object."),
) -> None:
    """Generate the world (or read an image tree), train its tiny models, evaluate, save to
    --out."""
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from unlearnd.world.build import SIZES, build_world
    from unlearnd.world.image_tree import ImageTreeError
    from unlearnd.world.image_world import SIZES as IMAGE_SIZES
    from unlearnd.world.image_world import build_image_world

    sizes = IMAGE_SIZES if images else SIZES
    if size not in sizes:
        fail(f"--size must be one of {', '.join(sizes)}, got {size!r}", 2)
    if out.exists() and any(out.iterdir()):
        fail(f"--out {out} exists and is not empty; choose a new folder", EXIT_ERROR)
    from unlearnd.models.device import resolve_device

    try:
        train_device = str(resolve_device(device)[0])
    except ValueError as exc:
        fail(f"--device: {exc}", 2)
    torch.set_num_threads(max(1, threads))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    # The bar goes to stderr so that --json output on stdout stays one clean object.
    percent = TextColumn("{task.percentage:>3.0f}%")
    columns = (TextColumn("{task.description}"), BarColumn(), percent, TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=as_json) as bar:
        tasks: dict[str, int] = {}
        logged: dict[str, int] = {}  # stage -> last tenth written, when stderr is no terminal

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)
            # A log file or a pipe shows no bar: a plain line every tenth of a stage instead.
            tenth = 10 * done // max(total, 1)
            if not err_console.is_terminal and tenth > logged.get(stage, -1):
                logged[stage] = tenth
                err_console.print(f"{stage}: {done}/{total}", highlight=False)

        try:
            if images:
                figures = build_image_world(
                    images, out, seed=seed, size=size, progress=progress, device=train_device
                )
            else:
                figures = build_world(
                    out, size=size, seed=seed, progress=progress, with_clip=clip,
                    device=train_device,
                )  # fmt: skip
        except ImageTreeError as exc:
            fail(str(exc), EXIT_ERROR)

    if as_json:
        print_json(figures)
        return
    flat = {k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in figures.items()
            if not isinstance(v, dict)}  # fmt: skip
    for key in ("clip_domains", "vlm_class_acc", "vlm_domain_acc", "clip_class_acc"):
        for name, value in figures.get(key, {}).items():
            flat[f"{key.removesuffix('_domains').removesuffix('_acc')} {name}"] = f"{value:.3f}"
    title = f"world from {images}" if images else f"world {size}"
    print_mapping(flat, title=f"{title} (seed {seed}) -> {out}")
    if not figures.get("meets_bar", False):
        where = "world/image_world.py" if images else "world/evaluate.py"
        err_console.print(f"[yellow]the quality bar is not met[/] (see QUALITY_BAR in {where})")


@world_app.command("request")
def request(
    world: Path = typer.Option(..., "--world", help="A world built with `world build --images`."),
    out: Path = typer.Option(..., "--out", help="The bundle folder to write (must not exist)."),
    forget_class: str = typer.Option(
        "", "--forget-class", help="A concept request: the class to forget (e.g. giraffe)."
    ),
    domains: str = typer.Option(
        "", "--domains", help="Where its pictures come from (default: every domain)."
    ),
    forget_domain: str = typer.Option(
        "", "--forget-domain", help="A domain request for the CLIP instead (e.g. sketch)."
    ),
    n: int = typer.Option(40, "--n", min=1, help="Pictures of the class (concept request)."),
    images: Path | None = typer.Option(None, "--images", help="The tree, if it has moved."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Write a request bundle about an image world's pictures, ready for `unlearnd submit`."""
    from unlearnd.world.image_requests import (
        load_image_world,
        write_concept_bundle,
        write_domain_bundle,
    )
    from unlearnd.world.image_tree import ImageTreeError

    if bool(forget_class) == bool(forget_domain):
        fail("give one of --forget-class or --forget-domain", 2)
    if out.exists():
        fail(f"--out {out} exists; choose a new folder", EXIT_ERROR)
    try:
        loaded = load_image_world(world, images)
        if forget_class:
            chosen = [d.strip() for d in domains.split(",") if d.strip()]
            chosen = chosen or list(loaded.tree.domains)
            loaded.tree.items(domains=chosen, classes=[forget_class])  # names checked here
            write_concept_bundle(loaded, forget_class, chosen, out, n=n)
        else:
            loaded.tree.items(domains=[forget_domain])
            write_domain_bundle(loaded, forget_domain, out)
    except (FileNotFoundError, ImageTreeError, ValueError) as exc:
        fail(str(exc), EXIT_ERROR)
    if as_json:
        files = sorted(str(f.relative_to(out)) for f in out.rglob("*") if f.is_file())
        print_json({"bundle": str(out), "forget_class": forget_class or None,
                    "forget_domain": forget_domain or None, "files": files})  # fmt: skip
        return
    typer.echo(f"wrote {out}: submit it with `unlearnd submit {out}`")


@world_app.command("deployment")
def deployment(
    out: Path = typer.Option(..., "--out", help="A new folder: the model, pools, probe sets."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Write the built-in world as a deployment any server can be pointed at: OUT/vlm (a copy
    of its model), its retain, general and probe files, and OUT/deployment.json, which
    `unlearnd init --model OUT/vlm` reads (pools, probes, refusals, method defaults)."""
    import shutil

    from unlearnd.world import load_world
    from unlearnd.world.deployment import write_deployment

    if out.exists() and any(out.iterdir()):
        fail(f"--out {out} exists and is not empty; choose a new folder", EXIT_ERROR)
    world = load_world()
    shutil.copytree(world.model_dir, out / "vlm")
    world.model_dir = out / "vlm"
    written = write_deployment(world, out)
    data = {"model": str((out / "vlm").resolve()), "description": str(written.resolve())}
    if as_json:
        print_json(data)
    else:
        typer.echo(f"wrote {out}: serve it with `unlearnd init --model {out / 'vlm'}`")
