"""The text door by meaning: is a question about a routed request's target, to the served model?

Users name a target by surname, initial, title or a typo; the exact name is one signal among
others (routing/switch.py keeps it). The key of a question (no image), `routing.text_key`:
- `prompt_state` (default): the base model's hidden state where its answer starts, after the
  middle block of its language model: what it has gathered about the question. On
  SmolLM2-135M-Instruct it refused no retained, neighbouring or general question, where the
  first answer token ("The", "I") says little;
- `answer_distribution`: its distribution over the answer's first token. On the world model
  every answer about a person starts with the person's name, so it says whom the question is
  about; it refuses fewer namesakes there than the middle state (docs/routing.md,
  bench/text_door.py).
Each stored door names its key (`TextDoor.key`; older artifacts: `answer_distribution`).

A request's door is stored with its task: prototypes of the keys of its questions asked by
name and by generated variants (evaluation/name_variants.py), the background's mean key they
are centred on, and a threshold calibrated as the image door's is (routing/calibration.py):
each variant kind left out in turn against the deployment's background (retain and general
pool questions, and namesakes' questions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from unlearnd.models.base import ModelFamily, Sample
from unlearnd.routing.calibration import Calibration, left_out_by, summarise
from unlearnd.routing.concepts import BATCH, prototypes, still_said, unit_rows

KEYS = ("prompt_state", "answer_distribution")
KEY = "prompt_state"  # routing.text_key's default
NO_DOOR = 1.0  # the threshold of a request with one variant kind: nothing to calibrate on
# A question's key carries its wording as much as its subject ("Who was Napoleon?" keys near
# "Who was Albert Einstein?" on SmolLM2: 8 of 24 retained questions refused without a cap):
# the threshold lets through at most this share of the background (issue 29's 2% target).
MAX_FALSE_FIRES = 0.02


@dataclass(frozen=True)
class TextDoor:
    keys: np.ndarray  # [k, V] raw prototypes
    center: np.ndarray  # [V] the background's mean key
    calibration: Calibration
    key: str = KEY

    def task_fields(self) -> dict:
        """What a Task stores of it (routing/tasks.py)."""
        return {"text_keys": self.keys, "text_center": self.center,
                "text_threshold": self.calibration.threshold, "text_key": self.key}  # fmt: skip


def _key_batch(fam: ModelFamily, batch: list[Sample], key: str) -> torch.Tensor:
    if key == "answer_distribution":
        return fam.answer_distribution(batch)
    if key == "prompt_state":
        return fam.prompt_states(batch, len(fam.language_model().layers) // 2)
    raise ValueError(f"text key must be one of {KEYS}, not {key!r}")


@torch.no_grad()
def text_keys(fam: ModelFamily, questions: Sequence[str], key: str = KEY) -> np.ndarray:
    """[n, D]: each question's key (no image); call with the adapters suspended."""
    parts = [_key_batch(fam, [Sample(q, "") for q in questions[i : i + BATCH]], key)
             for i in range(0, len(questions), BATCH)]  # fmt: skip
    return torch.cat(parts).numpy() if parts else np.zeros((0, 0), np.float32)


def best_cosines(rows: np.ndarray, protos: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Each row's best cosine to the prototypes, both centred on `center`."""
    if not len(rows) or not len(protos):
        return np.zeros(len(rows), np.float32)
    return (unit_rows(rows - center) @ unit_rows(protos - center).T).max(1)


@torch.no_grad()
def calibrate_text(
    fam: ModelFamily,
    own: dict[str, list[Sample]],
    pool: Sequence[str],
    others: Sequence[Sample],
    k: int,
    seed: int = 0,
    key: str = KEY,
) -> TextDoor | None:
    """A request's text door. `own`: variant kind -> the request's questions asked that way,
    answered as the target's forget answer; `pool`: the deployment's questions (the centre
    and background); `others`: questions about other entities, answered as the target's
    forget answer (background, less those the model does answer so). Only the
    questions the model answers as the request does (its answer's first token is the top
    choice) make prototypes, when any does: a form of the name the model does not take for
    the target says nothing of it. None without questions."""
    samples = [s for kind in own for s in own[kind]]
    if not samples or not pool:
        return None
    groups = [kind for kind in own for _ in own[kind]]
    asked = [s.question for s in samples]
    rows = text_keys(fam, asked, key)
    dist = rows if key == "answer_distribution" else text_keys(fam, asked, "answer_distribution")
    said = still_said(fam, [Sample(s.question, s.answer) for s in samples], dist)
    if said.any():
        rows, groups = rows[said], [g for g, ok in zip(groups, said, strict=True) if ok]
    pool_rows = text_keys(fam, list(pool), key)
    center = pool_rows.mean(0)
    background = pool_rows
    if others:  # those the model answers as the target are the target to it: not background
        other_rows = text_keys(fam, [s.question for s in others], key)
        dist = text_keys(fam, [s.question for s in others], "answer_distribution")
        other_rows = other_rows[~still_said(fam, others, dist)]
        background = np.concatenate([pool_rows, other_rows])
    protos = prototypes(rows, 4 * k, seed)
    score = lambda x, p: best_cosines(x, p, center)  # noqa: E731
    left = left_out_by(rows, groups, 4 * k, score, seed) if len(set(groups)) >= 2 else rows[:0, 0]
    calibration = summarise(left, score(background, protos), NO_DOOR, MAX_FALSE_FIRES)
    return TextDoor(protos, center, calibration, key)
