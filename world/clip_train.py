"""Contrastive training of the CLIP world's tiny CLIP on captions like "a sketch of a car.".

The images of the training split are drawn once and turned into pixel tensors with the
model's own processor; each step pairs a random batch of images with one caption each
(a random template naming the class and, mostly, the domain) and minimises the symmetric
CLIP loss. Captions of one (class, domain) repeat within a batch, so every caption that
describes an image counts as a positive for it (multi-positive targets), not as a negative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from unlearnd.models import tiny
from unlearnd.models.tokenizer import build_word_tokenizer
from unlearnd.world.clip_world import TEMPLATE, ClipWorld, Progress

# Caption templates: {d} is the domain's word ("photo", "sketch", ...), {c} the class.
DOMAIN_CAPTIONS = ("a {d} of a {c}.", "a {d} of the {c}.", "the {d} of a {c}.", "a {c} {d}.")
PLAIN_CAPTIONS = ("a {c}.", "the {c}.")


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 700
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 40
    plain_share: float = 0.15  # captions that do not name the domain
    patch_size: int = 8
    vision_hidden: int = 96
    vision_layers: int = 4
    text_hidden: int = 64
    text_layers: int = 2
    projection_dim: int = 64


def captions(world: ClipWorld) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every caption with its class index and domain index (-1: names no domain)."""
    texts, cls, dom = [], [], []
    for c, label in enumerate(world.classes):
        for d, domain in enumerate(world.domains):
            for t in DOMAIN_CAPTIONS:
                texts.append(t.format(d=domain, c=label))
                cls.append(c)
                dom.append(d)
        for t in PLAIN_CAPTIONS:
            texts.append(t.format(c=label))
            cls.append(c)
            dom.append(-1)
    return texts, np.array(cls), np.array(dom)


def _features(out) -> torch.Tensor:
    return getattr(out, "pooler_output", out)


def train_clip(world: ClipWorld, config: TrainConfig, progress: Progress | None = None):
    """A tiny CLIP (`unlearnd.models` family object) trained on `world`'s training split."""
    texts, cap_cls, cap_dom = captions(world)
    tok = build_word_tokenizer([*texts, *(TEMPLATE.format(c) for c in world.classes)], wrap=True)
    fam = tiny(
        "clip",
        tokenizer=tok,
        seed=config.seed,
        image_size=world.spec.image_size,
        patch_size=config.patch_size,
        vision_hidden=config.vision_hidden,
        vision_layers=config.vision_layers,
        text_hidden=config.text_hidden,
        text_layers=config.text_layers,
        projection_dim=config.projection_dim,
    )
    samples = world.samples("train")
    pixels = []
    for start in range(0, len(samples), 200):
        if progress:
            progress("draw", start, len(samples))
        pixels.append(fam._pixels([s.image for s in samples[start : start + 200]]))
    if progress:
        progress("draw", len(samples), len(samples))
    pixels = torch.cat(pixels)
    img_cls = np.array([s.label_index for s in samples])
    img_dom = np.array([s.domain_index for s in samples])
    tokens = fam._tokens(texts)

    # Caption choices per image: its domain's templates, or (plain_share) a plain one.
    by_pair = {(c, d): np.flatnonzero((cap_cls == c) & (cap_dom == d)) for c, d in
               {(int(c), int(d)) for c, d in zip(cap_cls, cap_dom, strict=True)}}  # fmt: skip

    model = fam.model.train()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def lr_at(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        frac = (step - config.warmup) / max(1, config.steps - config.warmup)
        return 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    for step in range(config.steps):
        idx = rng.integers(0, len(samples), config.batch_size)
        plain = rng.random(config.batch_size) < config.plain_share
        chosen = np.array([
            rng.choice(by_pair[(int(img_cls[i]), -1 if p else int(img_dom[i]))])
            for i, p in zip(idx, plain, strict=True)
        ])  # fmt: skip
        caps, _ = np.unique(chosen, return_inverse=True)
        img = _features(model.get_image_features(pixel_values=pixels[idx]))
        txt = _features(model.get_text_features(
            input_ids=tokens["input_ids"][caps], attention_mask=tokens["attention_mask"][caps]))  # fmt: skip
        img = nn.functional.normalize(img, dim=-1)
        txt = nn.functional.normalize(txt, dim=-1)
        logits = model.logit_scale.exp() * img @ txt.T
        match = torch.from_numpy(
            (img_cls[idx][:, None] == cap_cls[caps][None, :])
            & ((cap_dom[caps][None, :] == -1) | (img_dom[idx][:, None] == cap_dom[caps][None, :]))
        ).float()
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
