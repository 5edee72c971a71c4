"""Build a world folder: generate, train the tiny VLM, evaluate, add the CLIP world.

    out/world.json      people, facts, splits, templates, refusals (World.to_json)
    out/vlm/            the trained tiny LLaVA (an ordinary Hugging Face folder)
    out/figures.json    the quality figures of the build
    out/clip/, out/clip_world.json   the CLIP world (world/clip_world.py), unless --no-clip

The committed fixture world/assets/medium is `unlearnd world build --size medium --seed 0
--no-clip --device cuda --out world/assets/medium` (see world/assets/README.md).
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from unlearnd.world.dataset import World, WorldSpec
from unlearnd.world.evaluate import FREE_FORM, evaluate
from unlearnd.world.train import TrainConfig, train_world_vlm

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class BuildConfig:
    spec: WorldSpec
    train: TrainConfig


SIZES: dict[str, BuildConfig] = {
    # Quick: fewer people and steps, for tests and a first look (<= 5 min on 2 cores).
    "small": BuildConfig(
        WorldSpec(n_people=40, n_augment=6, n_train_scenes=1500, n_eval_scenes=100),
        TrainConfig(vision_steps=120, joint_steps=300, batch_images=48, batch_text=32),
    ),
    # Seconds, no quality: only for tests of the pipeline itself (hidden from --help).
    "tiny": BuildConfig(
        WorldSpec(
            n_people=8, n_seen=2, n_unseen=1, n_augment=1, n_train_scenes=40, n_eval_scenes=4
        ),
        TrainConfig(vision_steps=4, joint_steps=6, batch_images=8, batch_text=8),
    ),
    # The fixture: 200 people at the quality bar (minutes on a GPU, about an hour on one CPU
    # thread).
    "medium": BuildConfig(WorldSpec(n_people=200), TrainConfig(vision_steps=300, joint_steps=1500)),
}


def _stage_progress(progress: Progress | None, stage: str, total: int) -> Callable[[str], None]:
    """A callback for evaluate(): one tick per question set."""
    done = [0]

    def tick(_kind: str) -> None:
        if progress:
            progress(stage, done[0], total)
        done[0] += 1

    return tick


def build_world(
    out: str | Path,
    size: str = "small",
    seed: int = 0,
    progress: Progress | None = None,
    with_clip: bool = True,
    device: str = "cpu",
) -> dict:
    """Write the world of `size` to `out`; return its quality figures (fractions 0..1).
    `device` trains the VLM there (fp32 always; the CLIP world stays on the CPU)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    config = SIZES[size]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    world = World(replace(config.spec, seed=seed))
    (out / "world.json").write_text(json.dumps(world.to_json(), indent=1))

    started = time.monotonic()
    log = out / "train_log.jsonl"

    def monitor(step: int, fam) -> None:
        """Figures on a few people along the way, for whoever watches a long build."""
        pids = [p.pid for p in world.people][:: max(1, len(world.people) // 20)]
        kinds = ("seen_qa", "unseen_qa", "textual_qa", "general")
        figures = evaluate(fam, world, pids=pids, kinds=kinds, max_scenes=30)
        line = {"step": step, "seconds": round(time.monotonic() - started, 1), **figures}
        with log.open("a") as f:
            f.write(json.dumps(line) + "\n")

    fam = train_world_vlm(world, replace(config.train, seed=seed), progress, monitor, device=device)
    train_seconds = time.monotonic() - started
    fam.save(out / "vlm")

    kinds = (*FREE_FORM, "multiple_choice")
    tick = _stage_progress(progress, "evaluate", len(kinds))
    figures = evaluate(fam, world, kinds=kinds, progress=tick)
    tick("done")
    figures.update(size=size, seed=seed, n_people=len(world.people),
                   train_seconds=round(train_seconds, 1), device=str(fam.device))  # fmt: skip

    clip = build_clip(out, seed, progress) if with_clip else None
    if clip is not None:
        figures["clip_domains"] = clip["clip_domains"]
        figures["clip_seconds"] = clip.get("seconds")
    figures["config"] = {"spec": asdict(world.spec), "train": asdict(config.train)}
    (out / "figures.json").write_text(json.dumps(figures, indent=1))
    return figures


def build_clip(out: Path, seed: int, progress: Progress | None) -> dict | None:
    """The CLIP world (world/clip_world.py, another part): writes out/clip and
    out/clip_world.json; None when that module is not installed."""
    if importlib.util.find_spec("unlearnd.world.clip_world") is None:
        return None
    from unlearnd.world.clip_train import build_clip_world

    def clip_progress(stage: str, done: int, total: int) -> None:
        if progress:
            progress(f"clip: {stage}", done, total)

    return build_clip_world(out, seed, clip_progress)
