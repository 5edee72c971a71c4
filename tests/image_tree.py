"""A small generated image tree in PACS's layout (domain/class/*.png), for tests that must
not depend on PACS itself: filled shapes are "photo", outlines are "sketch"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

DOMAINS = ("photo", "sketch")
CLASSES = ("ball", "box", "tent")


def make_tree(root: Path, per_pair: int = 12, size: int = 40, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for domain in DOMAINS:
        for label in CLASSES:
            folder = root / domain / label
            folder.mkdir(parents=True)
            for i in range(per_pair):
                im = Image.new("RGB", (size, size), "white")
                draw = ImageDraw.Draw(im)
                x, y = (int(v) for v in rng.integers(2, size // 3, 2))
                s = int(rng.integers(size // 2, size * 2 // 3))
                if domain == "photo":
                    style = {"fill": tuple(int(v) for v in rng.integers(0, 200, 3))}
                else:
                    style = {"outline": "black", "width": 2}
                if label == "tent":
                    draw.polygon([(x, y + s), (x + s // 2, y), (x + s, y + s)], **style)
                elif label == "ball":
                    draw.ellipse([x, y, x + s, y + s], **style)
                else:
                    draw.rectangle([x, y, x + s, y + s], **style)
                im.save(folder / f"{i}.png")
    return root
