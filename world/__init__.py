"""unlearnd.world: a generated world of fictitious people and scenes, and its trained models.

`load_world()` opens the committed fixture (world/assets/medium: world.json + vlm/);
`evaluate(fam, world)` gives the quality figures; `unlearnd world build` rebuilds it all.
"""

from __future__ import annotations

from pathlib import Path

from unlearnd.world.dataset import QAItem, World, WorldSpec
from unlearnd.world.evaluate import QUALITY_BAR, evaluate
from unlearnd.world.files import read_world_json
from unlearnd.world.requests import REFUSER_PARAMS

ASSETS = Path(__file__).parent / "assets"
DEFAULT_SIZE = "medium"


__all__ = [
    "ASSETS",
    "QUALITY_BAR",
    "REFUSER_PARAMS",
    "QAItem",
    "World",
    "WorldSpec",
    "evaluate",
    "load_world",
]


def fixture_dir(size: str = DEFAULT_SIZE) -> Path:
    """The committed world folder of a size (world.json + vlm/)."""
    return ASSETS / size


def load_world(path: str | Path | None = None) -> World:
    """The world saved at `path` (a world folder or its world.json); default: the fixture.

    The world's model folder, when there is one, is `world.model_dir` (open it with
    `unlearnd.models.load`).
    """
    data, file = read_world_json(path if path is not None else fixture_dir(), "world.json")
    world = World.from_json(data)
    vlm = file.parent / "vlm"
    world.model_dir = vlm if vlm.is_dir() else None
    return world
