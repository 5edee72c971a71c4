"""Drawn scenes for the general split: one coloured shape on a plain background.

Questions (questions.GENERAL) ask for properties of the whole picture: which shape, its
colour, its size, and whether a given shape is there. The shape's side (left / middle /
right) varies but is not asked: measured on the way here, counting capped at 61-70%
(earlier prototype); picking one of several shapes by place or kind stayed below 50% after
800 steps; and a side question stayed at 41% on the 600-step medium fixture (always
"middle": the mean-pooled auxiliary heads cannot teach position).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

from unlearnd.world.portraits import DRAW_SIZE, PALETTE, add_noise

SHAPES = ("circle", "square", "triangle")
SHAPE_COLOURS = ("red", "green", "blue", "yellow", "purple")
POSITIONS = ("left", "middle", "right")
SIZES = ("small", "big")
_RADIUS = {"small": (8.0, 10.0), "big": (15.0, 17.0)}
_BACKGROUNDS = ((235, 235, 235), (250, 245, 230), (220, 225, 230))


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    position: str
    size: str


def draw_scene(scene: Scene, rng: random.Random, size: int = 48) -> Image.Image:
    img = Image.new("RGB", (DRAW_SIZE, DRAW_SIZE), rng.choice(_BACKGROUNDS))
    d = ImageDraw.Draw(img)
    cx = 16 + 32 * POSITIONS.index(scene.position) + rng.uniform(-2, 2)
    cy = 48 + rng.uniform(-12, 12)
    r = rng.uniform(*_RADIUS[scene.size])
    fill = tuple(int(min(255, max(0, c + rng.uniform(-15, 15)))) for c in PALETTE[scene.colour])
    if scene.shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif scene.shape == "square":
        d.rectangle([cx - r * 0.9, cy - r * 0.9, cx + r * 0.9, cy + r * 0.9], fill=fill)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=fill)
    img = img.resize((size, size), Image.Resampling.BILINEAR)
    return add_noise(img, rng, sigma=6.0)


def random_scene(rng: random.Random) -> Scene:
    return Scene(rng.choice(SHAPES), rng.choice(SHAPE_COLOURS), rng.choice(POSITIONS),
                 rng.choice(SIZES))  # fmt: skip


def make_scene(seed: int, index: int, size: int = 48) -> tuple[Scene, Image.Image]:
    """Scene `index` of the world: a pure function of (seed, index)."""
    rng = random.Random(f"scene-{seed}-{index}")
    scene = random_scene(rng)
    return scene, draw_scene(scene, rng, size=size)
