"""Shared set-up for routing tests on the world model: a deployment, requests per person."""

from __future__ import annotations

from pathlib import Path

from unlearnd.config import ModelSettings, Settings
from unlearnd.daemon.intake import Intake
from unlearnd.daemon.service import open_registry
from unlearnd.daemon.sink import RegistrySink
from unlearnd.daemon.unlearn import UnlearningPipeline
from unlearnd.daemon.worker import Worker
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
        self.settings.daemon.stable_checks = 1
        self.settings.routing.pool_size = pool_size
        self.store = open_registry(self.settings)
        self.pipeline = UnlearningPipeline(self.settings)
        self.pipeline.prepare(self.store)
        self.intake = Intake(self.settings, RegistrySink(self.store, 3))
        self.tmp = tmp_path

    def delete(self, name: str, pid: int, categories=None, **fields) -> str:
        """Drop a bundle forgetting person `pid`, run the worker once; the request id."""
        folder = write_forget_bundle(self.world, pid, self.tmp / "inbox-tmp" / name, categories,
                                     **fields)  # fmt: skip
        folder.rename(self.intake.inbox.dir("new") / name)
        assert self.intake.scan_once() == 1
        request_id = self.intake.stats.accepted_ids[-1]
        assert Worker(self.settings, self.store, self.pipeline).run_one()
        return request_id

    def crr(self, model, pid: int, kind: str = "unseen_qa", categories=CATEGORIES) -> float:
        """Context-aware refusal rate on person `pid`'s questions (unseen portraits)."""
        items = [it for it in self.world.items(kind, [pid]) if it.category in categories]
        said = answers(model, [self.world.sample(it) for it in items])
        return metrics.context_refusal_rate(said, [it.category for it in items], q.REFUSALS)

    def accuracy(self, model, kind: str, pids=None) -> float:
        items = self.world.items(kind, pids)
        said = answers(model, [self.world.sample(it) for it in items])
        return metrics.answer_accuracy(said, [it.answer for it in items])
