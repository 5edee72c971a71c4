"""A world from any image tree `domain/class/*` (PACS's layout): a tiny CLIP and a tiny LLaVA.

    unlearnd world build --images DIR --out OUT

1. CLIP: contrastive training on captions like "a sketch of a horse." (world/clip_train.py).
2. LLaVA: its vision tower starts from that CLIP's (as real LLaVA starts from a real CLIP),
   then the whole model learns to answer "what is shown in this picture ?" with the class
   and "in what style is this picture made ?" with the domain (and paraphrases of both).
   The vision tower trains at a fifth of the language model's learning rate.
3. Figures on the tree's unseen split (world/image_tree.py: the same images on every build).

    OUT/vlm/, OUT/clip/       ordinary Hugging Face folders (`unlearnd model info` opens them)
    OUT/image_world.json      the tree's path, classes, domains, questions, config, figures
    OUT/pools/*.jsonl         retain and general pools for a deployment of either model
    OUT/deployment.json       which pools and routing keys each model is served with
                              (`unlearnd init --model OUT/vlm` reads it)

The images stay where they are: the folders record their path, never a copy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from unlearnd.models import Sample
from unlearnd.models.clip import TEMPLATE
from unlearnd.models.generative import Encoded
from unlearnd.models.tiny import tiny
from unlearnd.models.tokenizer import build_word_tokenizer
from unlearnd.serving.deployment import describe
from unlearnd.world import clip_train
from unlearnd.world.image_requests import IMAGE_METHOD_DEFAULTS
from unlearnd.world.image_tree import ImageTree, open_images, word
from unlearnd.world.requests import WORLD_REFUSALS
from unlearnd.world.train import lr_factor, optimizer_step

Progress = Callable[[str, int, int], None]
FORMAT = 1
# The first template of each is the one the figures use; the last is never trained on
# (the paraphrase figure).
CLASS_QUESTIONS = (
    "what is shown in this picture ?",
    "what do you see in this picture ?",
    "what is in this image ?",
    "what does this picture show ?",
    "which object is in this image ?",
)
DOMAIN_QUESTIONS = (
    "in what style is this picture made ?",
    "what kind of picture is this ?",
    "how was this image made ?",
    "what style is this image ?",
)
QUALITY_BAR = {"vlm_class_mean": 0.50, "vlm_domain_mean": 0.85}
# Routing keys `unlearnd init` writes for this world's VLM (and bench/pacs.py uses): a class
# is drawn in four styles, and pooled tower features group pictures by style (docs/world.md, PACS).
ROUTING = {"visual_vector": "answer_distribution", "relevance_b": 0.6}


@dataclass(frozen=True)
class VLMConfig:
    steps: int = 2000
    batch_size: int = 64
    lr_language: float = 2e-3  # language model and projector
    lr_vision: float = 4e-4  # the CLIP-initialised tower: fine-tuned, not relearnt
    warmup_fraction: float = 0.05
    # The CLIP stage also shuffles colour channels and contrast (a class has no colour); the
    # VLM stage must name the style too, and a palette is part of a style (measured on PACS,
    # one CLIP, 1,000 VLM steps: style 82.1% with colour changes, 84.4% without; class 51.5%,
    # 52.7%).
    colour_augment: bool = False
    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4


@dataclass(frozen=True)
class ImageWorldConfig:
    image_size: int = 64
    unseen_percent: int = 15
    clip: clip_train.TrainConfig = field(
        default_factory=lambda: clip_train.TrainConfig(
            steps=2000, batch_size=128, lr=1e-3, warmup=100, vision_hidden=128,
            vision_layers=4, vision_heads=4, text_hidden=64, projection_dim=64,
        )
    )  # fmt: skip
    vlm: VLMConfig = field(default_factory=VLMConfig)


SIZES = {
    "small": ImageWorldConfig(),
    # Seconds, no quality: for tests of the pipeline itself.
    "tiny": ImageWorldConfig(
        image_size=32,
        clip=clip_train.TrainConfig(
            steps=30,
            batch_size=32,
            warmup=5,
            vision_hidden=32,
            vision_layers=2,
            text_hidden=32,
            projection_dim=32,
        ),
        vlm=VLMConfig(steps=30, batch_size=16, text_hidden=32, text_layers=1),
    ),  # fmt: skip
}


def vocabulary(tree: ImageTree) -> list[str]:
    """Every text the VLM is trained on or may be taught later (refusals)."""
    refusals = [*WORLD_REFUSALS.values(), "i cannot share that ."]
    names = [word(n) for n in (*tree.classes, *tree.domains)]
    return [*CLASS_QUESTIONS, *DOMAIN_QUESTIONS, *names, *refusals]


def build_image_world(
    images: str | Path,
    out: str | Path,
    seed: int = 0,
    size: str = "small",
    progress: Progress | None = None,
    device: str = "cpu",
) -> dict:
    """Train both models on the tree's training split, evaluate, write `out`; the figures."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    config = SIZES[size]
    config = replace(config, clip=replace(config.clip, seed=seed))
    tree = ImageTree(images, config.unseen_percent)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    train = tree.items("train")
    classes = [word(c) for c in tree.classes]
    domains = [word(d) for d in tree.domains]
    bank = clip_train.caption_bank(classes, domains)
    clip = clip_train.new_clip(bank[0], classes, config.image_size, config.clip)
    pixels = _pixels(clip, train, progress).to(device)  # augmented where it trains
    labels = (
        np.array([tree.classes.index(i.label) for i in train]),
        np.array([tree.domains.index(i.domain) for i in train]),
    )

    def stage(name: str) -> Progress | None:
        return (lambda _s, done, total: progress(name, done, total)) if progress else None

    clip.to(device)
    clip_train.fit_clip(clip, pixels, labels, bank, config.clip, stage("clip"))
    clip_seconds = time.monotonic() - started
    vlm = train_vlm(clip, tree, pixels, labels, config, seed, stage("vlm"), device)
    train_seconds = time.monotonic() - started

    vlm.save(out / "vlm")
    clip.save(out / "clip")
    figures = evaluate_image_world(vlm, clip, tree, progress=stage("evaluate"))
    figures.update(
        seed=seed, size=size, device=str(vlm.device), images=len(tree.images),
        split=tree.counts(), clip_seconds=round(clip_seconds, 1),
        train_seconds=round(train_seconds, 1),
        seconds=round(time.monotonic() - started, 1),
    )  # fmt: skip
    write_pools(tree, out / "pools")
    describe(out, {
        "vlm": {"retain_pool": "pools/retain.jsonl", "general_pool": "pools/general.jsonl",
                "routing": ROUTING, "methods": IMAGE_METHOD_DEFAULTS},
        "clip": {"retain_pool": "pools/clip_retain.jsonl", "labels": classes},
    })  # fmt: skip
    record = {
        "format": FORMAT, "root": str(tree.root), "unseen_percent": tree.unseen_percent,
        "domains": list(tree.domains), "classes": list(tree.classes),
        "class_questions": list(CLASS_QUESTIONS), "domain_questions": list(DOMAIN_QUESTIONS),
        "config": asdict(config), "figures": figures,
    }  # fmt: skip
    (out / "image_world.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / "figures.json").write_text(json.dumps(figures, indent=1) + "\n")
    return figures


def _pixels(fam, items, progress: Progress | None) -> torch.Tensor:
    """The images as the model's processor makes them, once (CPU tensors)."""
    chunks = []
    for start in range(0, len(items), 256):
        if progress:
            progress("read images", start, len(items))
        chunks.append(fam._pixels(open_images(items[start : start + 256])).cpu())
    if progress:
        progress("read images", len(items), len(items))
    return torch.cat(chunks)


def train_vlm(clip, tree, pixels, labels, config: ImageWorldConfig, seed, progress, device):
    """A tiny LLaVA whose vision tower starts from `clip`'s, trained to name class and domain."""
    c, v = config.clip, config.vlm
    tok = build_word_tokenizer(vocabulary(tree))
    vlm = tiny(
        "llava", tokenizer=tok, seed=seed, image_size=config.image_size,
        patch_size=c.patch_size, vision_hidden=c.vision_hidden, vision_layers=c.vision_layers,
        vision_heads=c.vision_heads, text_hidden=v.text_hidden, text_layers=v.text_layers,
        text_heads=v.text_heads, vision_feature_layer=-1,
    )  # fmt: skip
    vlm.vision_tower().load_state_dict(clip.model.vision_model.state_dict())
    vlm.to(device)
    # Every (question, answer) row once, encoded with a blank image: the token rows do not
    # depend on the pixels, which each step swaps in (augmented).
    blank = Image.new("RGB", (config.image_size, config.image_size))
    rows = [(q, word(n)) for q in CLASS_QUESTIONS[:-1] for n in tree.classes]
    rows += [(q, word(n)) for q in DOMAIN_QUESTIONS[:-1] for n in tree.domains]
    enc = vlm.encode([Sample(q, a, blank) for q, a in rows], with_answer=True)
    n_class_q, n_domain_q = len(CLASS_QUESTIONS) - 1, len(DOMAIN_QUESTIONS) - 1
    class_base = len(tree.classes) * n_class_q

    tower = [p for n, p in vlm.model.named_parameters() if "vision_tower" in n]
    rest = [p for n, p in vlm.model.named_parameters() if "vision_tower" not in n]
    opt = torch.optim.AdamW(
        [{"params": rest, "lr": v.lr_language}, {"params": tower, "lr": v.lr_vision}],
        weight_decay=0.01,
    )
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    vlm.model.train()
    img_cls, img_dom = labels
    for step in range(v.steps):
        idx = rng.integers(0, len(img_cls), v.batch_size)
        picked = clip_train.augment(
            pixels[torch.from_numpy(idx).to(pixels.device)], gen, v.colour_augment
        ).to(vlm.device, vlm.dtype)
        asks_domain = rng.random(v.batch_size) < 0.5
        row = np.where(
            asks_domain,
            class_base + rng.integers(0, n_domain_q, v.batch_size) * len(tree.domains)
            + img_dom[idx],
            rng.integers(0, n_class_q, v.batch_size) * len(tree.classes) + img_cls[idx],
        )  # fmt: skip
        r = torch.from_numpy(row).to(vlm.device)
        batch = Encoded(
            enc.input_ids[r],
            enc.attention_mask[r],
            {"pixel_values": picked},
            enc.answer_start[r],
            enc.answer_len[r],
        )
        logits, targets, mask = vlm.answer_view(batch)
        logp = torch.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
        loss = -(logp * mask).sum() / mask.sum()
        optimizer_step(
            opt, loss, [v.lr_language, v.lr_vision], lr_factor(step, v.steps, v.warmup_fraction)
        )
        if progress and (step % 10 == 0 or step == v.steps - 1):
            progress("train", step + 1, v.steps)
    vlm.model.eval()
    return vlm


def answers_for(vlm, images: list[Image.Image], question: str, batch: int = 64) -> list[str]:
    out: list[str] = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        out += vlm.generate([Sample(question, "", im) for im in chunk], max_new_tokens=4)
    return out


def evaluate_image_world(vlm, clip, tree: ImageTree, progress: Progress | None = None) -> dict:
    """Accuracy per domain on the unseen split: the VLM's class and domain answers (and a
    class paraphrase it never trained on), the CLIP's zero-shot class with TEMPLATE."""
    items = tree.items("unseen")
    images = open_images(items)
    asks = {
        "vlm_class_acc": (CLASS_QUESTIONS[0], lambda i: word(i.label)),
        "vlm_paraphrase_acc": (CLASS_QUESTIONS[-1], lambda i: word(i.label)),
        "vlm_domain_acc": (DOMAIN_QUESTIONS[0], lambda i: word(i.domain)),
    }
    hits: dict[str, list[bool]] = {}
    for n, (name, (question, truth)) in enumerate(asks.items()):
        if progress:
            progress("evaluate", n, len(asks) + 1)
        said = answers_for(vlm, images, question)
        hits[name] = [s == truth(i) for s, i in zip(said, items, strict=True)]
    names = [word(c) for c in tree.classes]
    probs = torch.cat(
        [clip.classify(images[s : s + 256], names, TEMPLATE) for s in range(0, len(images), 256)]
    )
    truth = [tree.classes.index(i.label) for i in items]
    hits["clip_class_acc"] = (probs.argmax(-1).numpy() == np.array(truth)).tolist()
    if progress:
        progress("evaluate", len(asks) + 1, len(asks) + 1)

    figures: dict = {}
    for name, flags in hits.items():
        per = {d: _mean([f for f, i in zip(flags, items, strict=True) if i.domain == d])
               for d in tree.domains}  # fmt: skip
        figures[name] = per
        figures[name.replace("_acc", "_mean")] = round(sum(per.values()) / len(per), 4)
    figures["meets_bar"] = all(figures[k] >= v for k, v in QUALITY_BAR.items())
    return figures


def _mean(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 4) if flags else 0.0


def write_pools(tree: ImageTree, folder: Path, per_pair: int = 12) -> None:
    """Retain and general pools for a deployment of these models, from training images
    (absolute paths: the pools point into the tree).

    retain.jsonl: class questions (VLM); general.jsonl: style questions (VLM);
    clip_retain.jsonl: ADU's convention, question = domain folder, answer = class (CLIP).
    """
    folder.mkdir(parents=True, exist_ok=True)
    chosen = []
    for d in tree.domains:
        for c in tree.classes:
            chosen += tree.items("train", [d], [c])[:per_pair]
    pools = {
        "retain.jsonl": [(CLASS_QUESTIONS[0], word(i.label), i) for i in chosen],
        "general.jsonl": [(DOMAIN_QUESTIONS[0], word(i.domain), i) for i in chosen],
        "clip_retain.jsonl": [(i.domain, word(i.label), i) for i in chosen],
    }
    for name, rows in pools.items():
        lines = [json.dumps({"image": str(i.path), "question": q, "answer": a})
                 for q, a, i in rows]  # fmt: skip
        (folder / name).write_text("\n".join(lines) + "\n")
