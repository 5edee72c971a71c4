"""Render a class of `clip_shapes` in one of four domains that look clearly different.

- photo: gradient and blotchy backgrounds, shaded objects with a soft shadow, sensor noise;
- sketch: graphite strokes on paper, doubled and jittered, hatching on dark parts, no colour;
- cartoon: flat saturated fills with thick black outlines on a flat background;
- painting: brush dabs of jittered colour over a woven canvas, soft edges, no outlines.

Every image is drawn at DRAW_SIZE and shrunk (anti-aliasing); it is a pure function of the
random generator it is given, so the world regenerates the same pixels from its seed.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from unlearnd.world.clip_shapes import CLASSES, Part

DOMAINS = ("photo", "sketch", "cartoon", "painting")
DRAW_SIZE = 96


def hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def place(parts: list[Part], r: np.random.Generator) -> list[Part]:
    """Parts moved to canvas pixels: random size, rotation, mirror image and position."""
    half = DRAW_SIZE / 2
    scale = r.uniform(0.5, 0.8)
    angle = np.deg2rad(r.uniform(-25, 25))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    if r.random() < 0.5:
        rot = rot @ np.diag([-1.0, 1.0])
    shift = r.uniform(-1, 1, size=2) * (1 - scale) * half * 0.8
    k = scale * half
    return [Part(p.kind, p.points @ rot.T * k + half + shift, p.role, p.width * k) for p in parts]


def _xy(points: np.ndarray, closed: bool) -> list[tuple[float, float]]:
    xy = [tuple(map(float, p)) for p in points]
    return [*xy, xy[0]] if closed else xy


def _mask(part: Part) -> Image.Image:
    mask = Image.new("L", (DRAW_SIZE, DRAW_SIZE), 0)
    draw_part(ImageDraw.Draw(mask), part, 255)
    return mask


def draw_part(draw: ImageDraw.ImageDraw, part: Part, fill, outline=None, edge: int = 0) -> None:
    """A filled polygon, or a stroke of the part's width; `edge` px of `outline` around it."""
    if part.kind == "fill":
        draw.polygon(_xy(part.points, False), fill=fill, outline=outline, width=edge or 1)
        return
    width = max(1, round(part.width))
    if outline is not None:
        draw.line(_xy(part.points, False), fill=outline, width=width + 2 * edge, joint="curve")
    draw.line(_xy(part.points, False), fill=fill, width=width, joint="curve")


def role_colours(r: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]):
    """Main and second colours of different hues, a dark and a light detail colour."""
    hue = r.random()
    return {
        "main": hsv(hue, r.uniform(*sat), r.uniform(*val)),
        "second": hsv(hue + r.uniform(0.25, 0.75), r.uniform(*sat), r.uniform(*val)),
        "dark": hsv(r.random(), r.uniform(0.3, 0.8), r.uniform(0.12, 0.3)),
        "light": hsv(r.random(), r.uniform(0.05, 0.3), r.uniform(0.85, 1.0)),
    }


def _smooth_noise(r: np.random.Generator, cells: int, amount: float) -> np.ndarray:
    """Low-frequency blotches [S, S, 3] of roughly +-amount (background texture)."""
    small = r.normal(0, 1, (cells, cells, 3))
    up = [
        np.asarray(
            Image.fromarray(small[..., c].astype(np.float32)).resize(
                (DRAW_SIZE, DRAW_SIZE), Image.BICUBIC
            )
        )  # fmt: skip
        for c in range(3)
    ]
    return np.stack(up, axis=-1) * amount


def _gradient(r: np.random.Generator) -> np.ndarray:
    """A linear ramp 0..1 over the canvas in a random direction, [S, S]."""
    a = r.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:DRAW_SIZE, 0:DRAW_SIZE] / DRAW_SIZE
    ramp = np.cos(a) * x + np.sin(a) * y
    return (ramp - ramp.min()) / (ramp.max() - ramp.min())


def photo(parts: list[Part], r: np.random.Generator) -> np.ndarray:
    top = np.array(hsv(r.random(), r.uniform(0.15, 0.6), r.uniform(0.45, 0.95)), float)
    bottom = np.array(hsv(r.random(), r.uniform(0.15, 0.6), r.uniform(0.3, 0.8)), float)
    g = _gradient(r)[..., None]
    canvas = top * (1 - g) + bottom * g + _smooth_noise(r, 6, 14)
    colours = role_colours(r, (0.35, 0.85), (0.45, 0.95))
    obj = Image.new("RGB", (DRAW_SIZE, DRAW_SIZE))
    mask = Image.new("L", (DRAW_SIZE, DRAW_SIZE), 0)
    for part in parts:
        draw_part(ImageDraw.Draw(obj), part, colours[part.role])
        draw_part(ImageDraw.Draw(mask), part, 255)
    dx, dy = (int(v) for v in r.integers(2, 7, size=2))
    shadow = mask.transform(mask.size, Image.AFFINE, (1, 0, -dx, 0, 1, -dy))
    shadow = np.asarray(shadow.filter(ImageFilter.GaussianBlur(3)), float)[..., None] / 255
    canvas = canvas * (1 - 0.45 * shadow)
    light = 0.65 + 0.6 * _gradient(r)[..., None]  # one light direction over the object
    m = np.asarray(mask.filter(ImageFilter.GaussianBlur(0.7)), float)[..., None] / 255
    return canvas * (1 - m) + np.asarray(obj, float) * light * m


def sketch(parts: list[Part], r: np.random.Generator) -> np.ndarray:
    paper = Image.new("L", (DRAW_SIZE, DRAW_SIZE), int(r.integers(232, 253)))
    draw = ImageDraw.Draw(paper)
    for part in parts:
        if part.role == "dark":  # hatch dark parts with diagonal lines
            hatch = Image.new("L", paper.size, 0)
            hd = ImageDraw.Draw(hatch)
            step = int(r.integers(4, 7))
            for c in range(-DRAW_SIZE, DRAW_SIZE, step):
                hd.line([(c, 0), (c + DRAW_SIZE, DRAW_SIZE)], fill=255, width=1)
            ink = Image.new("L", paper.size, int(r.integers(40, 110)))
            paper.paste(ink, mask=Image.fromarray(np.minimum(hatch, _mask(part))))
        for _ in range(int(r.integers(1, 3))):  # one or two passes of a wobbly hand
            pts = part.points + r.normal(0, 1.2, part.points.shape)
            width = int(r.integers(3, 5))
            draw.line(_xy(pts, part.kind == "fill"), fill=int(r.integers(15, 80)), width=width)
    return np.repeat(np.asarray(paper, float)[..., None], 3, axis=-1)


def cartoon(parts: list[Part], r: np.random.Generator) -> np.ndarray:
    back = hsv(r.random(), r.uniform(0.2, 0.5), r.uniform(0.9, 1.0))
    img = Image.new("RGB", (DRAW_SIZE, DRAW_SIZE), back)
    draw = ImageDraw.Draw(img)
    if r.random() < 0.5:  # a flat ground band
        ground = DRAW_SIZE * r.uniform(0.65, 0.85)
        draw.rectangle([0, ground, DRAW_SIZE, DRAW_SIZE], fill=hsv(r.random(), 0.5, 0.75))
    colours = role_colours(r, (0.85, 1.0), (0.85, 1.0))
    colours["dark"] = hsv(r.random(), 0.8, 0.4)
    edge = int(r.integers(3, 5))
    for part in parts:
        draw_part(draw, part, colours[part.role], outline=(0, 0, 0), edge=edge)
    return np.asarray(img, float)


def painting(parts: list[Part], r: np.random.Generator) -> np.ndarray:
    """Dabs: small ellipses of jittered colour, first over the canvas, then inside each part."""
    hue = r.random()
    base = [np.array(hsv(hue + d, r.uniform(0.2, 0.45), r.uniform(0.55, 0.8))) for d in (0, 0.08)]
    img = Image.new("RGB", (DRAW_SIZE, DRAW_SIZE), tuple(int(v) for v in base[0]))
    _dabs(img, None, lambda: base[int(r.integers(2))], r, 90, (5, 11), 10)
    # Object hues away from the canvas's so that the object stands out without outlines.
    colours = role_colours(r, (0.55, 0.85), (0.5, 0.95))
    colours["main"] = hsv(hue + r.uniform(0.3, 0.7), r.uniform(0.6, 0.9), r.uniform(0.5, 0.95))
    for part in parts:
        mask = _mask(part)
        layer = Image.new("RGB", img.size, colours[part.role])
        _dabs(layer, mask, lambda c=np.array(colours[part.role]): c, r, 50, (2, 4), 18)
        img.paste(layer, mask=mask.filter(ImageFilter.GaussianBlur(1.2)))
    y, x = np.mgrid[0:DRAW_SIZE, 0:DRAW_SIZE]
    weave = 7 * np.sin(x * 2.2) * np.sin(y * 2.2)  # the canvas's texture shows through
    return np.asarray(img, float) + weave[..., None]


def _dabs(img: Image.Image, mask, colour, r: np.random.Generator, n: int, size, jitter) -> None:
    """`n` ellipses of `colour()` plus noise; inside `mask` when given (fewer for small parts)."""
    if mask is not None:
        ys, xs = np.nonzero(np.asarray(mask))
        n = min(n, len(xs) // 12)
        if n == 0:
            return
        picks = r.integers(0, len(xs), n)
        centres = np.stack([xs[picks], ys[picks]], axis=1).astype(float)
    else:
        centres = r.uniform(0, DRAW_SIZE, (n, 2))
    colours = np.stack([colour() for _ in range(n)]) + r.normal(0, jitter, (n, 3))
    colours = np.clip(colours, 0, 255).astype(int).tolist()
    half = r.uniform(*size, size=(n, 2)) * [1.0, 0.5]
    boxes = np.concatenate([centres - half, centres + half], axis=1).tolist()
    draw = ImageDraw.Draw(img)
    for box, c in zip(boxes, colours, strict=True):
        draw.ellipse(box, fill=tuple(c))


RENDERERS = {"photo": photo, "sketch": sketch, "cartoon": cartoon, "painting": painting}
# Pixel noise (std range) added at the final size, where it stays visible: sensor noise on
# photos, paper grain on sketches.
NOISE = {"photo": (5.0, 10.0), "sketch": (2.0, 4.0)}


def render(cls: str, domain: str, r: np.random.Generator, size: int = 48) -> Image.Image:
    """One image of class `cls` in `domain`, `size` px square, drawn from `r` alone."""
    if cls not in CLASSES:
        raise ValueError(f"unknown class {cls!r}; known: {', '.join(CLASSES)}")
    if domain not in RENDERERS:
        raise ValueError(f"unknown domain {domain!r}; known: {', '.join(DOMAINS)}")
    parts = place(CLASSES[cls](r), r)
    pixels = np.clip(RENDERERS[domain](parts, r), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels).resize((size, size), Image.LANCZOS)
    if domain not in NOISE:
        return image
    noise = r.normal(0, r.uniform(*NOISE[domain]), (size, size, 1 if domain == "sketch" else 3))
    return Image.fromarray(np.clip(np.asarray(image, float) + noise, 0, 255).astype(np.uint8))
