"""The served model and the data that protects it: model folder, retain, general and probe pools.

A deployment is a local Hugging Face model folder plus JSONL files named in `[model]`:
- `retain_pool`: what a deletion must not damage; parts of it are scored (`eval`) and
  trained against (`train`), never the same rows;
- `general_pool`: general ability, scored;
- `probe_sets` (optional): questions that should stop being answered once a target is
  forgotten, per target: rows `{"target", "probe", "question", "answer", "image"}`, where
  `probe` names the door ("text", "unseen", ...) and `answer` is the bare fact.
Rows are `{"image": path relative to the file (optional), "question", "answer"}`; any row may
add `"facts": [...]`, what an answer must say to count (evaluation/metrics.py `stated`). A CLIP
deployment's retain pool holds labelled images of its domains (question = domain, answer =
class: ADU's convention). The demo world is one such deployment: its provider writes these
files (world/deployment.py); nothing here knows it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from PIL import Image

from unlearnd.config import Settings
from unlearnd.evaluation import probes
from unlearnd.models import ModelFamily, Sample, copy_to, detect_family, load, resolve_device
from unlearnd.models.loading import CLASSES
from unlearnd.routing.concepts import Centers
from unlearnd.serving.providers import provide_default


class DeploymentError(ValueError):
    """The configured model or pools cannot be used."""


@dataclass(frozen=True)
class PoolRow:
    question: str
    answer: str
    image: Path | None
    target: str = ""  # probe sets only: whom the row asks about
    probe: str = ""  # probe sets only: the door it tries
    facts: tuple[str, ...] = ()


def read_rows(path: Path) -> list[PoolRow]:
    """Every row of a JSONL pool, images not opened yet (paths relative to the file)."""
    if not path.is_file():
        raise DeploymentError(f"pool file not found: {path}")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            image = path.parent / row["image"] if row.get("image") else None
            facts = row.get("facts", [])
            if not isinstance(facts, list) or not all(isinstance(f, str) and f for f in facts):
                raise TypeError(f"'facts' must be a list of non-empty strings, not {facts!r}")
            rows.append(PoolRow(row["question"], row.get("answer", ""), image,
                                row.get("target", ""), row.get("probe", ""),
                                tuple(facts)))  # fmt: skip
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DeploymentError(f"{path}:{n}: {e}") from e
    return rows


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except OSError as e:
        raise DeploymentError(f"pool image {path}: {e}") from e


def as_samples(rows: list[PoolRow]) -> list[Sample]:
    return [Sample(r.question, r.answer, _open(r.image) if r.image else None, r.facts)
            for r in rows]  # fmt: skip


def read_pool(path: Path) -> list[Sample]:
    """A JSONL pool as samples, images opened."""
    return as_samples(read_rows(path))


DESCRIPTION = "deployment.json"  # what a provider writes beside the model folders it ships
_PATHS = ("path", "retain_pool", "general_pool", "probe_sets")


def describe(folder: Path, models: dict[str, dict[str, Any]]) -> Path:
    """Write `folder/deployment.json`: for each model folder (by name) the `[model]` keys a
    deployment of it sets (file paths relative to `folder`) and its `routing` keys.
    `unlearnd init --model folder/<name>` reads it (`described`)."""
    path = folder / DESCRIPTION
    doc = {"format": "unlearnd-deployment/1", "models": models}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def described(model_dir: Path) -> dict[str, Any]:
    """What the `deployment.json` beside `model_dir` says of it ({} when there is none):
    `[model]` keys with absolute paths, and `routing` keys under "routing"."""
    path = model_dir.resolve().parent / DESCRIPTION
    if not path.is_file():
        return {}
    try:
        entry = dict(json.loads(path.read_text())["models"].get(model_dir.resolve().name, {}))
    except (json.JSONDecodeError, KeyError, AttributeError) as e:
        raise DeploymentError(f"{path}: not a deployment description: {e}") from e
    for key in _PATHS:
        if entry.get(key):
            entry[key] = str((path.parent / entry[key]).resolve())
    return entry


class Deployment:
    def __init__(self, settings: Settings):
        provide_default(settings)  # the built-in world, when no model path is set
        self.settings = settings
        self._read: dict[str, list[PoolRow]] = {}  # pool file -> its rows, read once
        self._pristine: ModelFamily | None = None  # the base as read from disk (load_base)
        self.base_loads = 0

    @property
    def model_dir(self) -> Path:
        if not self.settings.model.path:
            raise DeploymentError(
                "no model configured: set [model] path (unlearnd init --model DIR), or run "
                "`unlearnd demo` for the built-in world"
            )
        return Path(self.settings.model.path)

    @cached_property
    def family(self) -> str:
        """The served model's family ("llava", "clip", ...), without loading its weights."""
        family = self.settings.model.family
        return detect_family(self.model_dir) if family == "auto" else family

    def load_base(self) -> ModelFamily:
        """A fresh copy of the base model: each job and each served version starts from
        clean weights. The folder is read once per process (`base_loads`); every copy comes
        from that pristine one, kept in host memory and never trained or served itself (a
        7B in bf16: 14 GB of RAM for seconds saved per job and per version loaded)."""
        s = self.settings
        if self._pristine is None:
            _, dtype = resolve_device(s.device, s.dtype)  # the served dtype, held on the CPU
            self._pristine = load(self.model_dir, device="cpu", family=s.model.family,
                                  dtype=str(dtype).removeprefix("torch."))  # fmt: skip
            self.base_loads += 1
        return copy_to(self._pristine, s.device, s.dtype)

    def _rows(self, configured: str) -> list[PoolRow]:
        if configured and configured not in self._read:
            self._read[configured] = read_rows(Path(configured))
        return self._read.get(configured, [])

    def _pool(self, configured: str, part: int = 0) -> list[Sample]:
        """`eval_samples` samples of a pool; parts 0 and 1 are disjoint (eval vs train)."""
        rows = self._rows(configured)
        n = self.settings.model.eval_samples
        shuffled = random.Random(self.settings.seed).sample(rows, len(rows))
        return as_samples(shuffled[part * n : (part + 1) * n])

    def pool_problems(self) -> list[str]:
        """What is wrong with the configured pools, in words a user can act on: a retain pool
        evaluation takes whole leaves nothing to train against (the first `eval_samples`
        rows of every pool are scored, the retain pool's next ones trained on)."""
        m, problems = self.settings.model, []
        n_eval = m.eval_samples
        text_only = not CLASSES[self.family].takes_images
        for key in ("retain_pool", "general_pool", "probe_sets"):
            configured = getattr(m, key)
            if not configured:
                continue
            rows = self._rows(configured)
            if text_only and any(r.image is not None for r in rows):
                problems.append(
                    f"[model] {key} {configured} has rows with an image; the {self.family} "
                    "model takes text only: leave `image` out"
                )
            if key == "probe_sets":
                continue
            n = len(rows)
            if n == 0:
                problems.append(f"[model] {key} {configured} has no rows")
            elif key == "retain_pool" and n <= n_eval:
                problems.append(
                    f"[model] retain_pool {configured} has {n} rows and evaluation takes "
                    f"{n_eval} ([model] eval_samples), leaving none to train against: give it "
                    f"more than {n_eval} rows ({2 * n_eval} fill both parts) or lower "
                    f"[model] eval_samples (e.g. {max(1, n // 2)})"
                )
        return problems

    def retain_pool(self, purpose: str = "eval") -> list[Sample]:
        """Retain samples to score on ("eval") or to train against ("train"): disjoint."""
        part = {"eval": 0, "train": 1}[purpose]
        return self._pool(self.settings.model.retain_pool, part)

    def retain_rows(self) -> list[Sample]:
        """Every row of the retain pool, text only (no image opened): what is known of the
        targets a deletion keeps."""
        return [Sample(r.question, r.answer, None, r.facts)
                for r in self._rows(self.settings.model.retain_pool)]  # fmt: skip

    def general_pool(self) -> list[Sample]:
        return self._pool(self.settings.model.general_pool)

    def background(self, limit: int = 512) -> list[Sample]:
        """Up to `limit` image rows of the retain and general pools together (seeded), the
        background a routed request's threshold is calibrated against."""
        rows = [r for key in (self.settings.model.retain_pool, self.settings.model.general_pool)
                for r in self._rows(key) if r.image is not None]  # fmt: skip
        if len(rows) > limit:
            rows = random.Random(self.settings.seed).sample(rows, limit)
        return as_samples(rows)

    def probe_sets(self, texts: Iterable[str]) -> dict[str, list[Sample]]:
        """`{"leak_<probe>": samples}` of the probe rows about the targets the texts name (a
        request's target name and forget answers); every probe the deployment has, empty when
        the request names none of its targets; {} without probe sets."""
        rows = self._rows(self.settings.model.probe_sets)
        chosen = probes.named({r.target for r in rows}, texts)
        out: dict[str, list[PoolRow]] = {f"leak_{r.probe}": [] for r in rows}
        for r in rows:
            if r.target in chosen:
                out[f"leak_{r.probe}"].append(r)
        return {name: as_samples(picked) for name, picked in out.items()}

    def centers(self, fam: ModelFamily) -> Centers:
        """The routing background: concept vectors of the retain and general pools' mean,
        which every concept and query vector is centred on (answer distributions: the retain
        pool's alone, when there is one; routing/concepts.py)."""
        retain = self.retain_pool("eval")
        background = retain + self.general_pool()
        if not background:
            raise DeploymentError(
                "routing needs a retain or general pool (model.retain_pool / general_pool)"
            )
        kind = self.settings.routing.visual_vector
        answers = retain if kind == "answer_distribution" and retain else None
        return Centers.from_samples(fam, background, kind, answers)
