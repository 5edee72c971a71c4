"""The expert switch at inference (CORE's gate): which experts a query turns on, how strongly.

Each modality a query has is a door of its own (ARCHITECTURE.md):
- the image door: the query's visual vector against each routed request's visual
  prototypes (one FAISS index, every prototype within reach searched, so every expert that
  passes can fire): r_v = sigmoid(a * (cos_v - t)), t the request's calibrated threshold
  (routing/calibration.py; the deployment's `relevance_b` for older requests);
- the text door: the question names the request's target (its name or an alias, whole
  words, normalised): r_t = 1. A question by name without a picture reaches the expert.
  And by meaning, for requests routed with a text door (routing/text_door.py): the query's
  key (what the base model is about to answer) against the request's text prototypes,
  r_t = sigmoid(a * (cos_t - t_t)), t_t its calibrated threshold: a surname, an initial or a
  typo reaches the expert when the model takes the question to be about the target.
An expert's weight beta is the highest r over its requests and doors: continuous mode
applies beta as is, hard mode applies 1; below `threshold` it stays off, so a query unrelated
to every deletion runs through the untouched model. After the model answers, the answer check
(routing/answer_check.py) turns on, at full weight, the expert of a request whose target the
answer names or whose facts it states (serving/version.py answers again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from unlearnd.routing.answer_check import AnswerCheck, Scope
from unlearnd.routing.concepts import Centers
from unlearnd.routing.index import ConceptIndex
from unlearnd.routing.pool import relevance
from unlearnd.routing.tasks import Task
from unlearnd.routing.text_door import best_cosines
from unlearnd.text import mentions, mentions_nearly

# Prototypes this far below a request's threshold have r < sigmoid(-a * REACH) ~ 0 (a = 100).
REACH = 0.2


@dataclass(frozen=True)
class SwitchSettings:
    a: float = 100.0
    b: float = 0.05  # the visual threshold of requests routed before calibration
    mode: str = "continuous"  # or "hard"
    threshold: float = 0.5
    text_door: bool = True
    answer_check: bool = True  # routing/answer_check.py


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
                    f"routing.visual_vector back, or revert the request and submit it again "
                    f"(`unlearnd revert {task.request_id}`, then "
                    f"`unlearnd submit --again {task.request_id}`)"
                )
        self.thresholds = np.array(
            [settings.b if t.visual_threshold is None else t.visual_threshold for t in tasks],
            np.float32,
        )
        rows = [(i, v) for i, t in enumerate(tasks) for v in t.visual]
        self.index: ConceptIndex | None = None
        if rows:
            self.owners = np.array([i for i, _ in rows], dtype=np.int64)
            vectors = centers.unit(np.stack([v for _, v in rows]), "visual")
            self.index = ConceptIndex.build(np.arange(len(rows)), vectors)
        self.meaning = [i for i, t in enumerate(tasks) if t.reads_meaning and settings.text_door]
        checked = tasks if settings.answer_check else []
        scopes = [Scope(t.scope, t.scoped, t.all_names, t.frame) for t in checked]
        self.answer_check = AnswerCheck([t.tells for t in checked], scopes)

    def told(self, answer: str, question: str = "") -> dict[str, float]:
        """The experts (at full weight) of the requests whose tells an answer (to
        `question`: its scoped tells too) contains."""
        return {self.tasks[i].expert_id: 1.0 for i in self.answer_check.told(answer, question)}

    @property
    def reads_meaning(self) -> bool:
        """Does routing need each query's text key (routing/text_door.text_keys)?"""
        return bool(self.meaning)

    @property
    def text_key_kinds(self) -> list[str]:
        """The kinds of text key the requests' doors were built on (each stored its own)."""
        return list(dict.fromkeys(self.tasks[i].text_key for i in self.meaning))

    def text_cosines(self, keys: dict[str, np.ndarray], n: int) -> np.ndarray:
        """[n queries, n_tasks]: each query's best cosine to each task's text prototypes (0
        where the task has no text door, or the cosine is not within REACH of its threshold).
        `keys`: kind -> the queries' keys of that kind."""
        best = np.zeros((n, len(self.tasks)), np.float32)
        for i in self.meaning:
            t = self.tasks[i]
            cos = best_cosines(keys[t.text_key], t.text_keys, t.text_center)
            best[:, i] = np.where(cos >= t.text_threshold - REACH, cos, 0.0)
        return best

    def visual_cosines(self, vectors: np.ndarray) -> np.ndarray:
        """[n_queries, n_tasks]: each query's best cosine to each task's prototypes (0 where
        none is within REACH of the task's threshold)."""
        best = np.zeros((len(vectors), len(self.tasks)), np.float32)
        if self.index is None or not len(vectors):
            return best
        k = len(self.index)  # all prototypes: a request beyond the k nearest could not fire
        sims, ids = self.index.search(self.centers.unit(vectors, "visual"), k)
        for q in range(len(vectors)):
            found = ids[q] >= 0
            owners = self.owners[ids[q][found]]
            np.maximum.at(best[q], owners, sims[q][found])
        best[best < self.thresholds - REACH] = 0.0
        return best

    def named(self, texts: Sequence[str]) -> np.ndarray:
        """[n_queries, n_tasks]: does the query's text name the task's target?"""
        out = np.zeros((len(texts), len(self.tasks)), bool)
        if not self.settings.text_door:
            return out
        for i, task in enumerate(self.tasks):
            names = task.all_names
            # A request routed since the text door read more than exact names (a door by
            # meaning or an answer check) also takes its names with one typo or run together:
            # the base model reads "Albert Einstien" as the name, so its answer tells anyway.
            near = task.reads_meaning or bool(task.tells)
            out[:, i] = [any(mentions(text, n) or (near and mentions_nearly(text, n))
                             for n in names) for text in texts]  # fmt: skip
        return out

    def route(
        self,
        visual: np.ndarray | None,
        texts: Sequence[str],
        keys: dict[str, np.ndarray] | None = None,
    ) -> list[dict[str, float]]:
        """Per query, expert -> beta for the experts it switches on. `visual` None: no image
        for any query; a row of NaN marks one query without an image. `keys`: kind -> the
        queries' text keys, every kind of `text_key_kinds` (None: by name alone)."""
        s = self.settings
        cv = np.zeros((len(texts), len(self.tasks)), np.float32)
        if visual is not None:
            visual = np.atleast_2d(visual)
            seen = ~np.isnan(visual).any(1)
            if seen.any():
                cv[seen] = self.visual_cosines(visual[seen])
        named = self.named(texts)
        ct = np.zeros_like(cv) if keys is None else self.text_cosines(keys, len(texts))
        routes = []
        for q in range(len(texts)):
            betas: dict[str, float] = {}
            for i, task in enumerate(self.tasks):
                r = 1.0 if named[q, i] else 0.0
                if cv[q, i] > 0:
                    r = max(r, relevance(float(cv[q, i]), 1.0, s.a, float(self.thresholds[i])))
                if ct[q, i] > 0:
                    r = max(r, relevance(float(ct[q, i]), 1.0, s.a, task.text_threshold))
                if r >= s.threshold:
                    weight = 1.0 if s.mode == "hard" else r
                    betas[task.expert_id] = max(weight, betas.get(task.expert_id, 0.0))
            routes.append(betas)
        return routes
