"""Shared set-up for routing tests on the world model: a deployment, requests per person."""

from __future__ import annotations

from pathlib import Path

from local_daemon import LocalDaemon

from unlearnd.config import ModelSettings, Settings
from unlearnd.evaluation import metrics
from unlearnd.evaluation.candidate import answers
from unlearnd.world import load_world
from unlearnd.world import questions as q
from unlearnd.world.requests import write_forget_bundle

CATEGORIES = tuple(q.VISUAL)


class WorldDeployment:
    """The world model served by a real daemon pipeline (SQLite registry, real intake)."""

    def __init__(self, tmp_path: Path, pool_size: int = 20, eval_samples: int = 32):
        self.world = load_world()
        model = ModelSettings(eval_samples=eval_samples)
        self.settings = Settings(workdir=tmp_path / "w", model=model)
        self.settings.routing.pool_size = pool_size
        self.daemon = LocalDaemon(self.settings)
        self.store, self.pipeline = self.daemon.store, self.daemon.pipeline
        self.tmp = tmp_path

    def delete(self, name: str, pid: int, categories=None, **fields) -> str:
        """Drop a bundle forgetting person `pid`, run the worker once; the request id."""
        folder = write_forget_bundle(self.world, pid, self.tmp / "inbox-tmp" / name, categories,
                                     **fields)  # fmt: skip
        return self.daemon.submit(folder)

    def crr(self, model, pid: int, kind: str = "unseen_qa", categories=CATEGORIES) -> float:
        """Context-aware refusal rate on person `pid`'s questions (unseen portraits)."""
        items = [it for it in self.world.items(kind, [pid]) if it.category in categories]
        said = answers(model, [self.world.sample(it) for it in items])
        return metrics.context_refusal_rate(said, [it.category for it in items], q.REFUSALS)

    def accuracy(self, model, kind: str, pids=None, items=None) -> float:
        items = self.world.items(kind, pids) if items is None else items
        said = answers(model, [self.world.sample(it) for it in items])
        return metrics.answer_accuracy(said, [it.answer for it in items])
