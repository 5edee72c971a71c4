"""The expert switch at inference (CORE's gate): which experts a query turns on, how strongly.

The query's image and instruction are embedded like concept vectors and searched in one
FAISS index per modality; for each request in the version, cos_v and cos_t are the best
matches among its prototypes, and r = sigmoid(a * (cos_v * cos_t - b)) as in the pool. An
expert's weight beta is the highest r over its requests: continuous mode applies beta as is,
hard mode applies 1; below the threshold an expert stays off, so a query unrelated to every
deletion runs through the untouched model. A text-only query has no visual match (cos_v 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unlearnd.routing.concepts import Centers
from unlearnd.routing.index import ConceptIndex
from unlearnd.routing.pool import relevance
from unlearnd.routing.tasks import Task

SEARCH_K = 64  # neighbours per modality; requests beyond them count as unrelated


@dataclass(frozen=True)
class SwitchSettings:
    a: float = 100.0
    b: float = 0.05
    mode: str = "continuous"  # or "hard"
    threshold: float = 0.5


class ExpertSwitch:
    def __init__(self, tasks: list[Task], centers: Centers, settings: SwitchSettings):
        if settings.mode not in ("continuous", "hard"):
            raise ValueError(f"gate mode must be continuous or hard, not {settings.mode!r}")
        self.tasks, self.centers, self.settings = tasks, centers, settings
        for task in tasks:
            if task.visual_vector != centers.visual_vector:
                raise ValueError(
                    f"request {task.request_id} was routed on {task.visual_vector} vectors but "
                    f"the deployment now routes on {centers.visual_vector}: set "
                    f"routing.visual_vector back, or revert the request and submit it again"
                )
        self.indexes: dict[str, tuple[ConceptIndex, np.ndarray]] = {}
        for modality in ("visual", "textual"):
            rows = [(i, v) for i, t in enumerate(tasks) for v in getattr(t, modality)]
            if not rows:
                continue
            owners = np.array([i for i, _ in rows], dtype=np.int64)
            vectors = centers.unit(np.stack([v for _, v in rows]), modality)
            index = ConceptIndex.build(np.arange(len(rows)), vectors)
            self.indexes[modality] = (index, owners)

    def _best(self, modality: str, vectors: np.ndarray | None) -> np.ndarray:
        """[n_queries, n_tasks]: each query's best cosine to each task's prototypes."""
        n = 1 if vectors is None else len(vectors)
        best = np.zeros((n, len(self.tasks)), np.float32)
        if vectors is None or modality not in self.indexes:
            return best
        index, owners = self.indexes[modality]
        sims, ids = index.search(self.centers.unit(vectors, modality), min(SEARCH_K, len(index)))
        for q in range(n):
            for sim, id_ in zip(sims[q], ids[q], strict=True):
                if id_ >= 0:
                    task = owners[id_]
                    best[q, task] = max(best[q, task], sim)
        return best

    def route(self, visual: np.ndarray | None, textual: np.ndarray) -> list[dict[str, float]]:
        """Per query, expert -> beta for the experts it switches on. `visual` None: no image
        for any query; a row of NaN marks one query without an image."""
        textual = np.atleast_2d(textual)
        if visual is not None:
            visual = np.atleast_2d(visual)
            missing = np.isnan(visual).any(1)
            visual = np.where(missing[:, None], 0.0, visual)
        cv = self._best("visual", visual)
        if visual is not None:
            cv[missing] = 0.0
        ct = self._best("textual", textual)
        s = self.settings
        routes = []
        for q in range(len(textual)):
            betas: dict[str, float] = {}
            for i, task in enumerate(self.tasks):
                r = relevance(float(cv[q, i]) if visual is not None else 0.0, float(ct[q, i]),
                              s.a, s.b)  # fmt: skip
                if r >= s.threshold:
                    weight = 1.0 if s.mode == "hard" else r
                    betas[task.expert_id] = max(weight, betas.get(task.expert_id, 0.0))
            routes.append(betas)
        return routes
