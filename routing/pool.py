"""The expert pool: does a new request reuse an expert, get a new one, or adapt the least used?

Relevance of the new request to an earlier one (CORE): r = sigmoid(a * (cos_v * cos_t - b)),
cosines between the two requests' mean concept vectors (centred, normalised), each floored
at 0 (two negatives must not multiply into a match). An expert's
relevance is the highest over the requests it serves. Above the reuse threshold the most
relevant expert is reused; otherwise a new expert is made, unless the pool is full, when the
least used one (fewest requests, then oldest) is adapted.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from unlearnd.routing.concepts import Centers, unit_rows
from unlearnd.routing.tasks import EXPERT_PREFIX, Task


def relevance(cos_visual: float, cos_textual: float, a: float, b: float) -> float:
    x = a * (cos_visual * cos_textual - b)
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


def mean_direction(x: np.ndarray, centers: Centers, modality: str) -> np.ndarray | None:
    if len(x) == 0:
        return None
    return unit_rows(centers.unit(x, modality).mean(0))[0]


def best_pair(x: np.ndarray, y: np.ndarray, centers: Centers, modality: str) -> float | None:
    if len(x) == 0 or len(y) == 0:
        return None
    return float((centers.unit(x, modality) @ centers.unit(y, modality).T).max())


def floored(cos: float | None) -> float:
    """A modality one side lacks (a text-only request) does not separate them (1); an
    anti-aligned one never counts as similar (0)."""
    return 1.0 if cos is None else max(0.0, cos)


def task_relevance(
    new: tuple[np.ndarray, np.ndarray], old: Task, centers: Centers, a: float, b: float
) -> float:
    """Visual: cosine of the two requests' mean vectors (CORE). Textual: the best pair of
    prototypes, so a request naming the same target, or asking the same kind of question,
    matches even when it asks about other facts (task means would dilute that)."""
    u, v = mean_direction(new[0], centers, "visual"), mean_direction(old.visual, centers, "visual")
    cos_v = None if u is None or v is None else float(u @ v)
    cos_t = best_pair(new[1], old.textual, centers, "textual")
    return relevance(floored(cos_v), floored(cos_t), a, b)


def new_expert_id(request_id: str) -> str:
    return EXPERT_PREFIX + hashlib.sha256(request_id.encode()).hexdigest()[:12]


@dataclass
class Decision:
    action: str  # "new", "reuse" or "adapt"
    expert_id: str
    relevance: dict[str, float] = field(default_factory=dict)  # expert -> best relevance
    uses: dict[str, int] = field(default_factory=dict)  # expert -> requests it serves
    replay: list[str] = field(default_factory=list)  # requests whose samples the expert keeps

    def to_dict(self) -> dict:
        return asdict(self)


def decide(
    request_id: str,
    new: tuple[np.ndarray, np.ndarray],
    tasks: list[Task],
    centers: Centers,
    *,
    pool_size: int,
    reuse_threshold: float,
    a: float,
    b: float,
) -> Decision:
    best: dict[str, float] = {}
    uses: dict[str, int] = {}
    order: list[str] = []  # experts in the order they first served a request
    for task in sorted(tasks, key=lambda t: t.seq):
        r = task_relevance(new, task, centers, a, b)
        best[task.expert_id] = max(r, best.get(task.expert_id, 0.0))
        uses[task.expert_id] = uses.get(task.expert_id, 0) + 1
        if task.expert_id not in order:
            order.append(task.expert_id)
    rounded = {k: round(v, 4) for k, v in best.items()}
    if best and max(best.values()) >= reuse_threshold:
        action, expert = "reuse", max(best, key=lambda e: (best[e], -order.index(e)))
    elif len(best) < pool_size:
        action, expert = "new", new_expert_id(request_id)
    else:
        action, expert = "adapt", min(order, key=lambda e: (uses[e], order.index(e)))
    replay = [t.request_id for t in tasks if t.expert_id == expert]
    return Decision(action, expert, rounded, uses, replay)
