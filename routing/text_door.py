"""The text door by meaning: is a question about a routed request's target, to the served model?

Users name a target by surname, initial, title or a typo; the exact name is one signal among
others (routing/switch.py keeps it). The key of a question is what the base model is about to
answer to it, with no image: its distribution over the answer's first token
(`fam.answer_distribution`). On the world model every question about a person starts its
answer with that person's name, whatever the category or the form of the name, so the key
says whom the model takes the question to be about (a question by surname alone keys like one
by full name; one by a namesake's full name keys like the namesake).

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

NO_DOOR = 1.0  # the threshold of a request with one variant kind: nothing to calibrate on


@dataclass(frozen=True)
class TextDoor:
    keys: np.ndarray  # [k, V] raw prototypes
    center: np.ndarray  # [V] the background's mean key
    calibration: Calibration

    def task_fields(self) -> dict:
        """What a Task stores of it (routing/tasks.py)."""
        return {"text_keys": self.keys, "text_center": self.center,
                "text_threshold": self.calibration.threshold}  # fmt: skip


@torch.no_grad()
def text_keys(fam: ModelFamily, questions: Sequence[str]) -> np.ndarray:
    """[n, V]: each question's key (the base model's answer distribution, no image); call
    with the adapters suspended."""
    parts = [fam.answer_distribution([Sample(q, "") for q in questions[i : i + BATCH]])
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
    rows = text_keys(fam, [s.question for s in samples])
    said = still_said(fam, [Sample(s.question, s.answer) for s in samples], rows)
    if said.any():
        rows, groups = rows[said], [g for g, ok in zip(groups, said, strict=True) if ok]
    pool_rows = text_keys(fam, list(pool))
    center = pool_rows.mean(0)
    background = pool_rows
    if others:  # those the model answers as the target are the target to it: not background
        other_rows = text_keys(fam, [s.question for s in others])
        other_rows = other_rows[~still_said(fam, others, other_rows)]
        background = np.concatenate([pool_rows, other_rows])
    protos = prototypes(rows, 4 * k, seed)
    score = lambda x, p: best_cosines(x, p, center)  # noqa: E731
    left = left_out_by(rows, groups, 4 * k, score, seed) if len(set(groups)) >= 2 else rows[:0, 0]
    return TextDoor(protos, center, summarise(left, score(background, protos), NO_DOOR))
