"""The object classes of the CLIP world as outlines in a unit frame, independent of style.

Each class is a function of a random generator that returns its parts: filled polygons and
open strokes in coordinates within about [-1, 1] (y grows downwards, as in images). The
generator varies proportions inside a class (a tall or a squat house, a round or a pointed
tree) so that a model has to learn the class, not one picture. `clip_draw` places the parts
on the canvas and renders them in a domain's style.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Roles tell the renderers which colour a part takes: the object's main colour, a second
# colour, a dark detail (wheels, windows) or a light one (a flower's centre).
ROLES = ("main", "second", "dark", "light")


@dataclass(frozen=True)
class Part:
    kind: str  # "fill": a closed polygon; "stroke": an open polyline of a given width
    points: np.ndarray  # [N, 2] in the unit frame
    role: str = "main"
    width: float = 0.0  # strokes only, in unit-frame lengths


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 20, start=0.0, end=2 * np.pi):
    t = np.linspace(start, end, n, endpoint=end - start < 2 * np.pi - 1e-6)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def poly(*points: tuple[float, float]) -> np.ndarray:
    return np.array(points, dtype=float)


def house(r: np.random.Generator) -> list[Part]:
    w, h = r.uniform(0.6, 0.85), r.uniform(0.45, 0.75)
    top = 1.0 - 2 * h
    roof = top - r.uniform(0.45, 0.8)
    door_x = r.uniform(-w + 0.2, w - 0.35)
    door_top = 1.0 - r.uniform(0.4, 0.6) * (1.0 - top)
    return [
        Part("fill", rect(-w, top, w, 1.0)),
        Part("fill", poly((-w - 0.15, top), (0.0, roof), (w + 0.15, top)), "second"),
        Part("fill", rect(door_x, door_top, door_x + 0.25, 1.0), "dark"),
        Part("fill", rect(-w + 0.12, top + 0.15, -w + 0.4, top + 0.4), "light"),
    ]


def tree(r: np.random.Generator) -> list[Part]:
    trunk_w = r.uniform(0.1, 0.18)
    parts = [Part("fill", rect(-trunk_w, 0.2, trunk_w, 1.0), "dark")]
    if r.random() < 0.5:  # a round crown of a few overlapping blobs
        for cx, cy, rad in ((0.0, -0.35, 0.6), (-0.35, -0.05, 0.4), (0.35, -0.05, 0.4)):
            rad *= r.uniform(0.85, 1.15)
            parts.append(Part("fill", ellipse(cx, cy, rad, rad * r.uniform(0.85, 1.1))))
    else:  # a pine of stacked triangles
        for i, y in enumerate((-0.95, -0.55, -0.15)):
            half = 0.45 + 0.2 * i
            parts.append(Part("fill", poly((0.0, y), (half, y + 0.6), (-half, y + 0.6))))
    return parts


def car(r: np.random.Generator) -> list[Part]:
    length, body_h = r.uniform(0.85, 1.0), r.uniform(0.3, 0.42)
    cabin_top = -body_h - r.uniform(0.3, 0.45)
    a, b = r.uniform(-0.55, -0.35), r.uniform(0.3, 0.55)
    wheel = r.uniform(0.18, 0.24)
    return [
        Part("fill", rect(-length, -body_h, length, body_h * 0.8)),
        Part("fill", poly((a, -body_h), (a + 0.2, cabin_top), (b - 0.15, cabin_top), (b, -body_h))),
        Part(
            "fill",
            poly(
                (a + 0.12, -body_h),
                (a + 0.26, cabin_top + 0.1),
                (b - 0.22, cabin_top + 0.1),
                (b - 0.1, -body_h),
            ),
            "light",
        ),  # fmt: skip
        Part("fill", ellipse(-length + 0.35, body_h * 0.8, wheel, wheel), "dark"),
        Part("fill", ellipse(length - 0.35, body_h * 0.8, wheel, wheel), "dark"),
    ]


def fish(r: np.random.Generator) -> list[Part]:
    rx, ry = r.uniform(0.55, 0.7), r.uniform(0.3, 0.45)
    tail = r.uniform(0.3, 0.45)
    return [
        Part("fill", poly((rx - 0.15, 0.0), (rx + 0.35, -tail), (rx + 0.35, tail)), "second"),
        Part("fill", ellipse(-0.15, 0.0, rx, ry)),
        Part("fill", poly((-0.2, -ry + 0.05), (0.05, -ry - 0.25), (0.2, -ry + 0.1)), "second"),
        Part("fill", ellipse(-0.5, -0.08, 0.08, 0.08), "dark"),
    ]


def cup(r: np.random.Generator) -> list[Part]:
    top_w, bottom_w = r.uniform(0.45, 0.6), r.uniform(0.3, 0.45)
    top, bottom = r.uniform(-0.7, -0.5), r.uniform(0.55, 0.75)
    mid = (top + bottom) / 2
    return [
        Part(
            "stroke",
            ellipse(top_w - 0.05, mid, 0.35, 0.3, 14, -np.pi / 2, np.pi / 2),
            "second",
            0.12,
        ),  # fmt: skip
        Part("fill", poly((-top_w, top), (top_w, top), (bottom_w, bottom), (-bottom_w, bottom))),
        Part("fill", ellipse(0.0, top, top_w, 0.1), "dark"),
    ]


def star(r: np.random.Generator) -> list[Part]:
    inner = r.uniform(0.35, 0.5)
    t = np.arange(10) * np.pi / 5 - np.pi / 2
    radius = np.where(np.arange(10) % 2 == 0, 1.0, inner)
    return [Part("fill", np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1))]


def boat(r: np.random.Generator) -> list[Part]:
    deck, keel = r.uniform(0.85, 1.0), r.uniform(0.45, 0.65)
    sail_w = r.uniform(0.45, 0.7)
    return [
        Part("fill", poly((-deck, 0.35), (deck, 0.35), (keel, 0.8), (-keel, 0.8))),
        Part("stroke", poly((0.0, 0.35), (0.0, -0.95)), "dark", 0.07),
        Part("fill", poly((0.06, -0.9), (0.06 + sail_w, 0.2), (0.06, 0.2)), "light"),
        Part("fill", poly((-0.06, -0.6), (-0.06 - sail_w * 0.6, 0.2), (-0.06, 0.2)), "second"),
    ]


def flower(r: np.random.Generator) -> list[Part]:
    petals = int(r.integers(5, 8))
    petal = r.uniform(0.22, 0.3)
    cx, cy, ring = 0.0, -0.35, r.uniform(0.3, 0.38)
    parts = [
        Part("stroke", poly((0.0, cy), (0.05, 0.3), (0.0, 1.0)), "second", 0.08),
        Part("fill", ellipse(0.22, 0.45, 0.2, 0.09), "second"),
    ]
    for k in range(petals):
        a = 2 * np.pi * k / petals
        parts.append(Part("fill", ellipse(cx + ring * np.cos(a), cy + ring * np.sin(a), petal,
                                          petal)))  # fmt: skip
    parts.append(Part("fill", ellipse(cx, cy, 0.2, 0.2), "light"))
    return parts


def key(r: np.random.Generator) -> list[Part]:
    bow = r.uniform(0.3, 0.4)
    shaft_end = r.uniform(0.85, 1.0)
    parts = [
        Part("stroke", ellipse(-0.6, 0.0, bow, bow, 22), "main", 0.16),
        Part("fill", rect(-0.6 + bow, -0.08, shaft_end, 0.08)),
    ]
    for k in range(int(r.integers(2, 4))):
        x = shaft_end - 0.12 - 0.22 * k
        parts.append(Part("fill", rect(x - 0.08, 0.08, x + 0.06, 0.08 + r.uniform(0.15, 0.3))))
    return parts


def umbrella(r: np.random.Generator) -> list[Part]:
    rx, ry = r.uniform(0.85, 1.0), r.uniform(0.5, 0.7)
    top = -0.35
    canopy = ellipse(0.0, top, rx, ry, 20, np.pi, 2 * np.pi)
    # Scallops along the rim, right to left, bulging downwards; the handle ends in a hook.
    scallops = [ellipse(x, top, rx / 3, 0.12, 8, 0.0, np.pi) for x in (2 * rx / 3, 0, -2 * rx / 3)]
    hook = ellipse(0.15, 0.75, 0.15, 0.15, 8, 0.0, np.pi)[::-1]
    return [
        Part("stroke", np.vstack([poly((0.0, top)), hook]), "dark", 0.08),
        Part("fill", np.vstack([canopy, *scallops])),
        Part("stroke", poly((0.0, top - ry), (0.0, top - ry - 0.15)), "dark", 0.06),
    ]


CLASSES: dict[str, Callable[[np.random.Generator], list[Part]]] = {
    "house": house,
    "tree": tree,
    "car": car,
    "fish": fish,
    "cup": cup,
    "star": star,
    "boat": boat,
    "flower": flower,
    "key": key,
    "umbrella": umbrella,
}
