"""The served model and the data that protects it: base folder, retain pool, general pool.

With no `[model] path` the deployment serves the committed world model, and its retain and
general pools are the world's retain people and scenes; a real deployment names its model
folder and JSONL pools in the config. A CLIP deployment's retain pool holds labelled images
of its domains (question = domain, answer = class: ADU's convention); a domain request trains
against the rows of the domains it keeps and is scored on the held-out part.
"""

from __future__ import annotations

import json
import random
from functools import cached_property
from pathlib import Path

from PIL import Image

from unlearnd.config import Settings
from unlearnd.models import ModelFamily, Sample, detect_family, load


class DeploymentError(ValueError):
    """The configured model or pools cannot be used."""


def read_pool(path: Path) -> list[Sample]:
    """A JSONL pool; image paths are relative to the file."""
    if not path.is_file():
        raise DeploymentError(f"pool file not found: {path}")
    samples = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            image = None
            if row.get("image"):
                with Image.open(path.parent / row["image"]) as im:
                    image = im.convert("RGB")
            samples.append(Sample(row["question"], row.get("answer", ""), image))
        except (json.JSONDecodeError, KeyError, OSError) as e:
            raise DeploymentError(f"{path}:{n}: {e}") from e
    return samples


class Deployment:
    def __init__(self, settings: Settings):
        self.settings = settings

    @cached_property
    def world(self):
        """The world when serving the world model, else None."""
        if self.settings.model.path:
            return None
        from unlearnd.world import load_world

        return load_world()

    @property
    def model_dir(self) -> Path:
        if self.settings.model.path:
            return Path(self.settings.model.path)
        if self.world is None or self.world.model_dir is None:
            raise DeploymentError("no model configured and no world model found")
        return self.world.model_dir

    @cached_property
    def family(self) -> str:
        """The served model's family ("llava", "clip", ...), without loading its weights."""
        family = self.settings.model.family
        return detect_family(self.model_dir) if family == "auto" else family

    def load_base(self) -> ModelFamily:
        """A fresh copy of the base model (each job starts from clean weights)."""
        family = self.settings.model.family
        return load(
            self.model_dir, device=self.settings.device, dtype=self.settings.dtype, family=family
        )

    def _pool(
        self, configured: str, world_kind: str, world_pids: str | None, part: int = 0
    ) -> list[Sample]:
        """`eval_samples` samples of a pool; parts 0 and 1 are disjoint (eval vs train)."""
        if configured:
            pool = read_pool(Path(configured))
        elif self.world is not None:
            pids = getattr(self.world, world_pids) if world_pids else None
            pool = self.world.samples(world_kind, pids)
        else:
            return []
        n = self.settings.model.eval_samples
        shuffled = random.Random(self.settings.seed).sample(pool, len(pool))
        return shuffled[part * n : (part + 1) * n]

    def retain_pool(self, purpose: str = "eval") -> list[Sample]:
        """Retain samples to score on ("eval") or to train against ("train"): disjoint."""
        part = {"eval": 0, "train": 1}[purpose]
        return self._pool(self.settings.model.retain_pool, "seen_qa", "retain_pids", part)

    def general_pool(self) -> list[Sample]:
        return self._pool(self.settings.model.general_pool, "general", None)

    def centers(self, fam: ModelFamily):
        """The routing background: concept vectors of the retain and general pools' mean,
        which every concept and query vector is centred on (answer distributions: the retain
        pool's alone, when there is one; routing/concepts.py)."""
        from unlearnd.routing.concepts import Centers

        retain = self.retain_pool("eval")
        background = retain + self.general_pool()
        if not background:
            raise DeploymentError(
                "routing needs a retain or general pool (model.retain_pool / general_pool)"
            )
        kind = self.settings.routing.visual_vector
        answers = retain if kind == "answer_distribution" and retain else None
        return Centers.from_samples(fam, background, kind, answers)
