"""Procedurally drawn portraits: the same identity in varying pose, colour and noise.

A portrait is drawn at 96 px from a person's nine visible features, then shrunk. What varies
between two portraits of one person: position (shift), size (scale), a small colour jitter
and pixel noise. Variant `k` of a person is a pure function of (seed, pid, k).
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

DRAW_SIZE = 96

PALETTE = {
    "red": (210, 45, 45),
    "green": (50, 170, 60),
    "blue": (45, 80, 215),
    "yellow": (235, 210, 40),
    "purple": (140, 60, 180),
    "orange": (240, 140, 30),
    "teal": (30, 170, 170),
}
SKIN = {
    "pale": (250, 225, 205),
    "light": (235, 195, 160),
    "tan": (205, 150, 105),
    "brown": (150, 95, 60),
    "dark": (90, 55, 35),
}
HAIR = {
    "black": (25, 25, 25),
    "brown": (105, 65, 30),
    "blonde": (240, 215, 120),
    "ginger": (215, 95, 30),
    "grey": (160, 160, 160),
    "blue": (40, 90, 230),
}
EYES = {"brown": (90, 50, 20), "blue": (40, 110, 240), "green": (30, 160, 50), "grey": (130,) * 3}
HAT_COLOUR = (40, 40, 60)


def _jitter(colour: tuple[int, ...], rng: random.Random, amount: float) -> tuple[int, int, int]:
    f = 1.0 + rng.uniform(-amount, amount)
    return tuple(int(min(255, max(0, c * f + rng.uniform(-8, 8)))) for c in colour)  # type: ignore[return-value]


def draw_portrait(
    features: dict[str, str], rng: random.Random, size: int = 48, vary: bool = True
) -> Image.Image:
    """One portrait of the person with `features`; `vary` False gives the canonical pose."""
    shift = 6 if vary else 0
    dx, dy = rng.uniform(-shift, shift), rng.uniform(-shift, shift)
    s = rng.uniform(0.88, 1.12) if vary else 1.0
    jit = 0.08 if vary else 0.0

    def col(c):
        return _jitter(c, rng, jit) if vary else c

    def pt(x, y):  # a point of the canonical 96-px pose, scaled about the centre and shifted
        c = DRAW_SIZE / 2
        return (c + (x - c) * s + dx, c + (y - c) * s + dy)

    def box(x0, y0, x1, y1):
        return [*pt(x0, y0), *pt(x1, y1)]

    img = Image.new("RGB", (DRAW_SIZE, DRAW_SIZE), col(PALETTE[features["background"]]))
    d = ImageDraw.Draw(img)
    hair = col(HAIR[features["hair_colour"]])
    skin = col(SKIN[features["skin"]])
    style = features["hair_style"]

    if style == "long":  # hair falling behind the head onto the shoulders
        d.rectangle(box(26, 24, 70, 78), fill=hair)
    d.pieslice(box(14, 70, 82, 130), 180, 360, fill=col(PALETTE[features["shirt"]]))  # shirt
    d.rectangle(box(42, 60, 54, 74), fill=skin)  # neck

    face = features["face"]
    head = box(28, 22, 68, 66) if face != "round" else box(26, 24, 70, 66)
    if face == "oval":
        d.ellipse(box(30, 20, 66, 66), fill=skin)
    elif face == "round":
        d.ellipse(head, fill=skin)
    else:
        d.rounded_rectangle(head, radius=5 * s, fill=skin)

    if style != "bald":  # the top of the hair, and sideburns that stay visible under a hat
        d.chord(box(27, 16, 69, 44), 180, 360, fill=hair)
        d.rectangle(box(26, 28, 31, 44), fill=hair)
        d.rectangle(box(65, 28, 70, 44), fill=hair)
    if style == "spiky":
        for x in (30, 40, 50, 60):
            d.polygon([pt(x, 26), pt(x + 4, 10), pt(x + 8, 26)], fill=hair)
    if style == "bun":
        d.ellipse(box(40, 6, 56, 22), fill=hair)

    eye = col(EYES[features["eyes"]])
    for x in (38, 54):
        d.ellipse(box(x - 4, 38, x + 4, 45), fill=(255, 255, 255))
        d.ellipse(box(x - 2.5, 39, x + 2.5, 44), fill=eye)
    glasses = features["glasses"]
    if glasses != "none":
        for x in (38, 54):
            frame = box(x - 6, 35, x + 6, 47)
            if glasses == "round":
                d.ellipse(frame, outline=(0, 0, 0), width=2)
            else:
                d.rectangle(frame, outline=(0, 0, 0), width=2)
        d.line(box(44, 40, 48, 40), fill=(0, 0, 0), width=2)
    d.line(box(41, 55, 55, 55), fill=(120, 40, 40), width=2)  # mouth

    hat = features["hat"]
    if hat == "cap":
        d.chord(box(27, 12, 69, 40), 180, 360, fill=HAT_COLOUR)
        d.rectangle(box(48, 24, 78, 28), fill=HAT_COLOUR)
    elif hat == "beanie":
        d.chord(box(26, 8, 70, 46), 180, 360, fill=(200, 200, 200))
        d.rectangle(box(26, 24, 70, 30), fill=(150, 150, 150))
    elif hat == "tophat":
        d.rectangle(box(34, 2, 62, 24), fill=HAT_COLOUR)
        d.rectangle(box(24, 22, 72, 27), fill=HAT_COLOUR)

    img = img.resize((size, size), Image.Resampling.BILINEAR)
    if vary:
        img = add_noise(img, rng, sigma=6.0)
    return img


def add_noise(img: Image.Image, rng: random.Random, sigma: float) -> Image.Image:
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, sigma, (*img.size[::-1], 3))
    arr = np.asarray(img, dtype=np.float32) + noise
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def portrait(features: dict[str, str], seed: int, pid: int, k: int, size: int = 48) -> Image.Image:
    """Variant `k` of person `pid`: the same arguments always give the same pixels."""
    return draw_portrait(features, random.Random(f"portrait-{seed}-{pid}-{k}"), size=size)
