"""Contrastive training of the CLIP world's tiny CLIP on captions like "a sketch of a car.".

The images of the training split are drawn once and turned into pixel tensors with the
model's own processor; each step pairs a random batch of images with one caption each
(a random template naming the class and, mostly, the domain) and minimises the symmetric
CLIP loss. Captions of one (class, domain) repeat within a batch, so every caption that
describes an image counts as a positive for it (multi-positive targets), not as a negative.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unlearnd.models import tiny
from unlearnd.models.clip import TEMPLATE
from unlearnd.models.tokenizer import build_word_tokenizer
from unlearnd.serving.deployment import describe
from unlearnd.world.clip_world import ClipWorld, ClipWorldSpec, Progress, zero_shot_accuracy

# Caption templates: {d} is the domain's word ("photo", "sketch", ...), {c} the class.
DOMAIN_CAPTIONS = ("a {d} of a {c}.", "a {d} of the {c}.", "the {d} of a {c}.", "a {c} {d}.")
PLAIN_CAPTIONS = ("a {c}.", "the {c}.")


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 1400
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup: int = 40
    plain_share: float = 0.3  # captions that do not name the domain
    patch_size: int = 8
    vision_hidden: int = 64
    vision_layers: int = 3
    vision_heads: int = 4
    text_hidden: int = 32
    text_layers: int = 1
    text_heads: int = 2
    projection_dim: int = 32


def captions(world: ClipWorld) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every caption of the world with its class index and domain index (-1: no domain)."""
    return caption_bank(world.classes, world.domains)


def caption_bank(
    classes: Sequence[str], domain_words: Sequence[str]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every caption with its class index and domain index (-1: names no domain)."""
    texts, cls, dom = [], [], []
    for c, label in enumerate(classes):
        for d, domain in enumerate(domain_words):
            for t in DOMAIN_CAPTIONS:
                texts.append(t.format(d=domain, c=label))
                cls.append(c)
                dom.append(d)
        for t in PLAIN_CAPTIONS:
            texts.append(t.format(c=label))
            cls.append(c)
            dom.append(-1)
    return texts, np.array(cls), np.array(dom)


def augment(pixels: torch.Tensor, gen: torch.Generator, colours: bool = True) -> torch.Tensor:
    """Random shift, zoom, tilt, mirror and (`colours`) channel order and contrast per image.

    A tiny ViT memorises a few thousand images; these cheap tensor transforms stand in for
    the many more images there is no time to draw (measured: unseen accuracy about 45%
    without them against over 90% on the training images).
    """
    n, dev = pixels.shape[0], pixels.device

    # Drawn from `gen` on the CPU, applied where the pixels are: the same images on any device.
    def uniform(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(n, generator=gen)).to(dev)

    angle = uniform(-0.15, 0.15)
    scale = uniform(0.9, 1.1)
    mirror = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).to(dev)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([
        torch.stack([cos * mirror, -sin, uniform(-0.15, 0.15)], 1),
        torch.stack([sin * mirror, cos, uniform(-0.15, 0.15)], 1),
    ], 1)  # fmt: skip
    grid = nn.functional.affine_grid(theta, list(pixels.shape), align_corners=False)
    out = nn.functional.grid_sample(pixels, grid, padding_mode="border", align_corners=False)
    if not colours:  # the palette is part of a style: keep it when style is to be learnt
        return out
    order = torch.argsort(torch.rand(n, 3, generator=gen), dim=1).to(dev)  # colours: no class
    out = torch.gather(out, 1, order[:, :, None, None].expand_as(out))
    return out * uniform(0.8, 1.2)[:, None, None, None] + uniform(-0.2, 0.2)[:, None, None, None]


def _features(out) -> torch.Tensor:
    return getattr(out, "pooler_output", out)


def train_clip(world: ClipWorld, config: TrainConfig, progress: Progress | None = None):
    """A tiny CLIP (`unlearnd.models` family object) trained on `world`'s training split.

    Runs on one thread: the matrices are so small that a second thread gains little, and
    when another process holds a core, two spinning threads made a step 20x slower
    (measured: 0.08 s against 1.8 s for a batch).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(world, config, progress)
    finally:
        torch.set_num_threads(threads)


def new_clip(texts: list[str], classes: Sequence[str], image_size: int, config: TrainConfig):
    """A random tiny CLIP whose word tokenizer knows `texts` and the zero-shot template."""
    tok = build_word_tokenizer([*texts, *(TEMPLATE.format(c) for c in classes)], wrap=True)
    return tiny(
        "clip",
        tokenizer=tok,
        seed=config.seed,
        image_size=image_size,
        patch_size=config.patch_size,
        vision_hidden=config.vision_hidden,
        vision_layers=config.vision_layers,
        vision_heads=config.vision_heads,
        text_hidden=config.text_hidden,
        text_layers=config.text_layers,
        text_heads=config.text_heads,
        projection_dim=config.projection_dim,
    )


def _train(world: ClipWorld, config: TrainConfig, progress: Progress | None):
    texts, cap_cls, cap_dom = captions(world)
    fam = new_clip(texts, world.classes, world.spec.image_size, config)
    # Draw the training split once, as pixel tensors made by the model's own processor.
    keys = [(d, c, i) for d in world.domains for c in world.classes
            for i in range(world.spec.n_train)]  # fmt: skip
    pixels, img_cls, img_dom = [], [], []
    for start in range(0, len(keys), 200):
        if progress:
            progress("draw", start, len(keys))
        chunk = [world.sample(d, c, "train", i) for d, c, i in keys[start : start + 200]]
        pixels.append(fam._pixels([s.image for s in chunk]))
        img_cls += [s.label_index for s in chunk]
        img_dom += [s.domain_index for s in chunk]
    if progress:
        progress("draw", len(keys), len(keys))
    labels = (np.array(img_cls), np.array(img_dom))
    return fit_clip(fam, torch.cat(pixels), labels, (texts, cap_cls, cap_dom), config, progress)


def fit_clip(
    fam,
    pixels: torch.Tensor,
    labels: tuple[np.ndarray, np.ndarray],
    bank: tuple[list[str], np.ndarray, np.ndarray],
    config: TrainConfig,
    progress: Progress | None = None,
):
    """Contrastive training of `fam` on training images (pixel tensors, with class and
    domain index per image) against the caption bank (texts, class and domain per caption)."""
    img_cls, img_dom = labels
    texts, cap_cls, cap_dom = bank
    n_images = len(img_cls)
    tokens = fam._tokens(texts)

    # Caption choices per image: its domain's templates, or (plain_share) a plain one. A
    # table [class, domain + 1 (0: names none), k] of caption ids, so a batch draws at once.
    counts = np.zeros((cap_cls.max() + 1, cap_dom.max() + 2), np.int64)
    table = np.zeros((*counts.shape, len(texts)), np.int64)
    for j, (c, d) in enumerate(zip(cap_cls, cap_dom + 1, strict=True)):
        table[c, d, counts[c, d]] = j
        counts[c, d] += 1

    model = fam.model.train()
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def lr_at(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        frac = (step - config.warmup) / max(1, config.steps - config.warmup)
        return 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    for step in range(config.steps):
        idx = rng.integers(0, n_images, config.batch_size)
        plain = rng.random(config.batch_size) < config.plain_share
        row, col = img_cls[idx], np.where(plain, 0, img_dom[idx] + 1)
        chosen = table[row, col, (rng.random(len(idx)) * counts[row, col]).astype(np.int64)]
        caps = np.unique(chosen)
        batch = augment(pixels[torch.from_numpy(idx).to(pixels.device)], gen).to(fam.device)
        img = _features(model.get_image_features(pixel_values=batch))
        txt = _features(
            model.get_text_features(
                input_ids=tokens["input_ids"][caps], attention_mask=tokens["attention_mask"][caps]
            )
        )
        img = nn.functional.normalize(img, dim=-1)
        txt = nn.functional.normalize(txt, dim=-1)
        logits = model.logit_scale.exp() * img @ txt.T
        same_class = img_cls[idx][:, None] == cap_cls[caps][None, :]
        same_domain = (cap_dom[caps][None, :] == -1) | (
            img_dom[idx][:, None] == cap_dom[caps][None, :]
        )
        match = torch.from_numpy(same_class & same_domain).float().to(fam.device)
        # "a photo of a car" is no negative for a sketch of a car: pushing them apart would
        # teach the image side to hide the class behind the domain, and the zero-shot prompt
        # names "photo" for every domain.
        logits = logits.masked_fill(
            torch.from_numpy(same_class & ~same_domain).to(fam.device), -1e4
        )
        loss_img = -(match / match.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
        loss_txt = -(match.T / match.T.sum(1, keepdim=True) * logits.T.log_softmax(1)).sum(1)
        loss = (loss_img + loss_txt.mean()) / 2
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if progress and (step % 10 == 0 or step == config.steps - 1):
            progress("train", step + 1, config.steps)
    model.eval()
    return fam


def build_clip_world(
    out_dir: str | Path,
    seed: int = 0,
    progress: Progress | None = None,
    spec: ClipWorldSpec | None = None,
    steps: int | None = None,
) -> dict:
    """Train the tiny CLIP of the world of `seed`; write out_dir/clip and clip_world.json.

    Returns {"clip_domains": {domain: zero-shot accuracy on unseen images}, "seconds": ...}.
    `spec` and `steps` shrink the build for tests.
    """
    started = time.monotonic()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = spec or ClipWorldSpec(seed=seed)
    if spec.seed != seed:
        raise ValueError(f"seed {seed} differs from spec.seed {spec.seed}")
    config = TrainConfig(seed=seed) if steps is None else TrainConfig(seed=seed, steps=steps)
    world = ClipWorld(spec, out / "clip", asdict(config))
    fam = train_clip(world, config, progress)
    fam.save(out / "clip")
    if progress:
        progress("evaluate", 0, 1)
    world.accuracy = zero_shot_accuracy(fam, world)
    if progress:
        progress("evaluate", 1, 1)
    seconds = round(time.monotonic() - started, 1)
    world.train["build_seconds"] = seconds
    (out / "clip_world.json").write_text(json.dumps(world.to_json(), indent=1) + "\n")
    describe(out, {"clip": {"labels": list(world.classes)}})
    return {"clip_domains": world.accuracy, "seconds": seconds}


def main(argv: list[str]) -> int:
    """`python -m unlearnd.world.clip_train OUT [SEED]`: rebuild a CLIP world (the fixture)."""
    if not argv or len(argv) > 2:
        print("usage: python -m unlearnd.world.clip_train OUT_DIR [SEED]", file=sys.stderr)
        return 2

    def show(stage: str, done: int, total: int) -> None:
        print(f"\r{stage}: {done}/{total}", end="\n" if done == total else "", flush=True)

    result = build_clip_world(Path(argv[0]), int(argv[1]) if len(argv) > 1 else 0, show)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
