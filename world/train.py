"""Training the world's tiny LLaVA through the model-family interface.

Two stages (the recipe measured in shared/notes/world-feasibility.md, plus answers that
name the person first, see questions.ANSWERS):
1. vision tower alone, with auxiliary heads on its patch features: identity and the nine
   visible features of portraits, shape, colour and size of scenes (all mean-pooled);
2. everything on mixed batches: visual person QA + scene QA (one forward), text-only QA and
   cloze (a second forward, so short questions are not padded to image length), the
   auxiliary heads kept at a lower weight. AdamW, warm-up + cosine, clipping 1.0, a lower
   learning rate for the vision tower than for projector and language model.

The QA loss is `fam.answer_loss`, so what is trained is exactly what `unlearnd.models.load`
reopens from the saved folder.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from unlearnd.models.base import ModelFamily
from unlearnd.models.tiny import tiny
from unlearnd.models.tokenizer import build_word_tokenizer
from unlearnd.world import questions as q
from unlearnd.world.dataset import QAItem, World, vocabulary
from unlearnd.world.people import FACT_CATEGORIES, FEATURE_VALUES, IDENTITY
from unlearnd.world.scenes import SHAPE_COLOURS, SHAPES, SIZES

Progress = Callable[[str, int, int], None]
SCENE_LABELS = {"shape": SHAPES, "colour": SHAPE_COLOURS, "size": SIZES}

# A vision config suited to 48-px drawings: 16-px patches give 3x3 image tokens, so each
# scene column is one patch column and the language model reads 9 tokens per image.
LLAVA_SIZE = dict(
    image_size=48, patch_size=16, vision_hidden=96, vision_layers=3, vision_heads=4,
    text_hidden=192, text_layers=3, text_heads=4, vision_feature_layer=-1,
)  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    vision_steps: int = 150
    joint_steps: int = 600
    batch_images: int = 64  # per joint step: person QA + scene QA
    scene_fraction: float = 0.375
    batch_text: int = 64
    cloze_fraction: float = 0.2
    lr_vision_first: float = 2e-3
    lr_vision_joint: float = 5e-4
    lr_language: float = 3e-3  # language model and projector
    aux_weight: float = 0.5
    warmup_fraction: float = 0.05
    seed: int = 0
    model: dict = field(default_factory=lambda: dict(LLAVA_SIZE))


class AuxHeads(nn.Module):
    """Linear heads on mean-pooled vision-tower patch features: who is in a portrait and
    each of their visible features; the shape, colour and size of a scene."""

    def __init__(self, dim: int, n_people: int):
        super().__init__()
        self.identity = nn.Linear(dim, n_people)
        self.features = nn.ModuleDict(
            {f: nn.Linear(dim, len(v)) for f, v in FEATURE_VALUES.items()}
        )
        self.scene = nn.ModuleDict({k: nn.Linear(dim, len(v)) for k, v in SCENE_LABELS.items()})

    def loss(self, world: World, refs: list[tuple], patches: torch.Tensor) -> torch.Tensor:
        pooled, dev = patches.mean(1), patches.device
        total = pooled.new_zeros(())
        rows = [i for i, r in enumerate(refs) if r[0] == "portrait"]
        if rows:
            people = [world.people[refs[i][1]] for i in rows]
            target = torch.tensor([p.pid for p in people], device=dev)
            total = total + F.cross_entropy(self.identity(pooled[rows]), target)
            for f, values in FEATURE_VALUES.items():
                target = torch.tensor([values.index(p.features[f]) for p in people], device=dev)
                total = total + 0.3 * F.cross_entropy(self.features[f](pooled[rows]), target)
        rows = [i for i, r in enumerate(refs) if r[0] == "scene"]
        if rows:
            scenes = [world.scene(refs[i][1]) for i in rows]
            for key, values in SCENE_LABELS.items():
                target = torch.tensor([values.index(getattr(x, key)) for x in scenes], device=dev)
                total = total + F.cross_entropy(self.scene[key](pooled[rows]), target)
        return total


class Sampler:
    """Random training questions: seen portraits (and augmented variants), train templates."""

    def __init__(self, world: World, seed: int):
        self.world = world
        self.rng = random.Random(f"train-{seed}")
        self.variants = world.train_variants()
        self.scene_indices = range(world.spec.n_train_scenes)

    def visual(self) -> QAItem:
        person = self.rng.choice(self.world.people)
        cat = self.rng.choice((IDENTITY, *FACT_CATEGORIES))
        template = self.rng.choice(q.train_templates(q.VISUAL, cat))
        return self.world.visual_item(person, cat, template, self.rng.choice(self.variants))

    def textual(self, cloze_fraction: float) -> QAItem:
        person = self.rng.choice(self.world.people)
        cat = self.rng.choice(FACT_CATEGORIES)
        if self.rng.random() < cloze_fraction:
            return self.world.cloze_item(person, cat)
        return self.world.textual_item(
            person, cat, self.rng.choice(q.train_templates(q.TEXTUAL, cat))
        )

    def general(self) -> QAItem:
        index = self.rng.choice(self.scene_indices)
        template = self.rng.randrange(len(q.GENERAL["colour"]) - 1)  # the last is held out
        return self.rng.choice(self.world.general_items([index], template))

    def portrait_refs(self, n: int) -> list[tuple]:
        people = len(self.world.people)
        return [("portrait", self.rng.randrange(people), self.rng.choice(self.variants))
                for _ in range(n)]  # fmt: skip


def lr_factor(step: int, total: int, warmup_fraction: float) -> float:
    """Linear warm-up, then cosine decay to 5% of the peak."""
    warm = max(1, int(total * warmup_fraction))
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))


class VisionInput:
    """Vision-tower patch features of world images; pixel tensors are cached by image ref
    (the processor is deterministic, and converting images is a large part of a step)."""

    def __init__(self, fam: ModelFamily, world: World):
        self.fam, self.world = fam, world
        self.cache: dict[tuple, torch.Tensor] = {}

    def pixels(self, refs: list[tuple]) -> torch.Tensor:
        missing = list(dict.fromkeys(r for r in refs if r not in self.cache))
        if missing:
            images = [self.world.image(r) for r in missing]
            out = self.fam.processor.image_processor(images=images, return_tensors="pt")
            self.cache.update(zip(missing, out["pixel_values"], strict=True))
        return torch.stack([self.cache[r] for r in refs]).to(self.fam.device, self.fam.dtype)

    def patches(self, refs: list[tuple]) -> torch.Tensor:
        """Last-layer patch features (no CLS token), with grad: [B, N, D]."""
        hidden = self.fam.vision_tower()(pixel_values=self.pixels(refs)).last_hidden_state
        return hidden[:, 1:]


def train_world_vlm(
    world: World,
    config: TrainConfig,
    progress: Progress | None = None,
    monitor: Callable[[int, ModelFamily], None] | None = None,
    monitor_every: int = 200,
    device: str = "cpu",
) -> ModelFamily:
    """Train the world's LLaVA in fp32 on `device`; `monitor(step, fam)` is called every
    `monitor_every` joint steps (it must not change the model: evaluation only)."""
    torch.manual_seed(config.seed)
    tokenizer = build_word_tokenizer(vocabulary(world))
    fam = tiny("llava", tokenizer=tokenizer, **config.model).to(device)
    fam.model.train()
    tower = fam.model.model.vision_tower
    sampler = Sampler(world, config.seed)
    heads = AuxHeads(fam.vision_shape()["hidden_size"], len(world.people)).to(fam.device)
    vision = VisionInput(fam, world)
    n_scenes = round(config.batch_images * config.scene_fraction)

    # Stage 1: the vision tower learns to tell people apart and to read scenes.
    opt = torch.optim.AdamW([*tower.parameters(), *heads.parameters()], lr=config.lr_vision_first)
    for step in range(config.vision_steps):
        refs = sampler.portrait_refs(config.batch_images * 2 - n_scenes * 2)
        refs += [("scene", sampler.rng.choice(sampler.scene_indices)) for _ in range(n_scenes * 2)]
        loss = heads.loss(world, refs, vision.patches(refs))
        optimizer_step(
            opt,
            loss,
            [config.lr_vision_first],
            lr_factor(step, config.vision_steps, config.warmup_fraction),
        )
        if progress:
            progress("vision tower", step + 1, config.vision_steps)

    # Stage 2: everything, on mixed batches.
    language = [
        p for n, p in fam.model.named_parameters() if not n.startswith("model.vision_tower")
    ]
    groups = [
        {"params": language, "lr": config.lr_language},
        {"params": [*tower.parameters(), *heads.parameters()], "lr": config.lr_vision_joint},
    ]
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    peaks = [g["lr"] for g in groups]
    for step in range(config.joint_steps):
        image_items = [sampler.visual() for _ in range(config.batch_images - n_scenes)]
        image_items += [sampler.general() for _ in range(n_scenes)]
        text_items = [sampler.textual(config.cloze_fraction) for _ in range(config.batch_text)]
        loss = fam.answer_loss([world.sample(it) for it in image_items])
        loss = loss + fam.answer_loss([world.sample(it) for it in text_items])
        refs = [it.image for it in image_items]
        loss = loss + config.aux_weight * heads.loss(world, refs, vision.patches(refs))
        optimizer_step(
            opt, loss, peaks, lr_factor(step, config.joint_steps, config.warmup_fraction)
        )
        if progress:
            progress("whole model", step + 1, config.joint_steps)
        if monitor and (step + 1) % monitor_every == 0 and step + 1 < config.joint_steps:
            fam.model.eval()
            monitor(step + 1, fam)
            fam.model.train()
    fam.model.eval()
    return fam


def train_briefly(
    fam: ModelFamily, world: World, steps: int, batch: int = 16, lr: float = 2e-3, seed: int = 0
) -> list[float]:
    """A short plain QA run of any generative family on the world's mixed questions (all
    parameters, one AdamW); returns the loss of every step. Used for the tiny Qwen2-VL."""
    torch.manual_seed(seed)
    sampler = Sampler(world, seed)
    params = [p for p in fam.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    fam.model.train()
    losses = []
    for step in range(steps):
        image_items = [sampler.visual() for _ in range(batch // 2)] + [sampler.general()]
        text_items = [sampler.textual(0.2) for _ in range(batch // 2)]
        loss = fam.answer_loss([world.sample(it) for it in image_items])
        loss = loss + fam.answer_loss([world.sample(it) for it in text_items])
        optimizer_step(opt, loss, [lr], lr_factor(step, steps, 0.1))
        losses.append(loss.item())
    fam.model.eval()
    return losses


def optimizer_step(
    opt: torch.optim.Optimizer, loss: torch.Tensor, peaks: list[float], factor: float
) -> None:
    for group, peak in zip(opt.param_groups, peaks, strict=True):
        group["lr"] = peak * factor
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
    opt.step()
