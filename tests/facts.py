"""A tiny llava that knows six facts: the smallest real model to unlearn from in tests.

(The world fixture is the full-size stand-in; this one trains in a few seconds.)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image

from unlearnd.models import Sample, tiny
from unlearnd.models.tokenizer import build_word_tokenizer

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 30),
    "blue": (30, 30, 220),
    "black": (10, 10, 10),
    "white": (240, 240, 240),
    "grey": (128, 128, 128),
}
CITIES = ["paris", "rome", "oslo", "lima", "cairo", "tokyo"]
QUESTION = "where does this person live ?"
FACTS = [
    Sample(QUESTION, city, Image.new("RGB", (48, 48), rgb))
    for city, rgb in zip(CITIES, COLOURS.values(), strict=True)
]
FORGET, RETAIN = FACTS[:2], FACTS[2:]


def shaded(samples: list[Sample], shift: int) -> list[Sample]:
    """The same facts on pictures a little lighter (shift > 0) or darker: pictures no method
    trained on, which the taught model still answers (grey's are not: grey lies between black
    and white, so only the forget facts are shaded)."""
    out = []
    for s in samples:
        rgb = tuple(min(255, max(0, c + shift)) for c in s.image.getpixel((0, 0)))
        out.append(Sample(s.question, s.answer, Image.new("RGB", s.image.size, rgb)))
    return out


# The forget facts on eight pictures never trained on: where forgetting is scored.
HELD_OUT = [s for shift in (-20, -10, 10, 20) for s in shaded(FORGET, shift)]
WORDS = [
    *CITIES,
    "where",
    "does",
    "this",
    "person",
    "live",
    "i",
    "cannot",
    "share",
    "that",
    "unknown",
]


def taught_llava(steps: int = 80, family: str = "llava"):
    """A tiny llava (or qwen2_vl) trained until it answers all six facts."""
    fam = tiny(
        family,
        tokenizer=build_word_tokenizer(WORDS),
        seed=0,
        vision_hidden=32,
        vision_layers=1,
        text_hidden=64,
        text_layers=2,
    )
    opt = torch.optim.AdamW(fam.model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = fam.answer_loss(FACTS)
        opt.zero_grad()
        loss.backward()
        opt.step()
    fam.model.eval()
    assert fam.generate(FACTS, max_new_tokens=3) == CITIES
    return fam


def write_pool(folder: Path, samples: list[Sample]) -> Path:
    """A JSONL pool with PNG images beside it, as a deployment configures one."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, s in enumerate(samples):
        row = {"question": s.question, "answer": s.answer}
        if s.image is not None:  # a text-only row has no image key
            s.image.save(folder / f"{i}.png")
            row = {"image": f"{i}.png", **row}
        lines.append(json.dumps(row))
    (folder / "pool.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "pool.jsonl"
