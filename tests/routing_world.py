"""Shared set-up for routing tests on the world model: a deployment, requests per person."""

from __future__ import annotations

from pathlib import Path

from local_daemon import LocalDaemon

from unlearnd.config import ModelSettings, Settings
from unlearnd.evaluation import metrics
from unlearnd.evaluation.candidate import answers
from unlearnd.evaluation.metrics import stated
from unlearnd.evaluation.name_variants import variants
from unlearnd.models import Sample
from unlearnd.world import load_world
from unlearnd.world import questions as q
from unlearnd.world.people import FACT_CATEGORIES
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

    def names(self, pid: int) -> dict[str, str]:
        """The ways a user names person `pid`: in full, by surname, misspelt
        (evaluation/name_variants.py)."""
        person = self.world.people[pid]
        forms = variants([person.name])
        return {"full": person.name, "surname": forms["surname"][0],
                "misspelt": forms["misspelt"][0]}  # fmt: skip

    def told(self, model, pid: int, name: str) -> float:
        """The share of person `pid`'s facts the model states when asked by `name` with no
        image, through the switch and the answer check as it serves."""
        person = self.world.people[pid]
        pairs = [(t.format(name=name), person.facts[c]) for c in FACT_CATEGORIES
                 for t in q.TEXTUAL[c]]  # fmt: skip
        said = model.answers([Sample(question, "") for question, _ in pairs], max_new_tokens=12)
        return sum(stated(text, question, fact) for (text, _, _), (question, fact)
                   in zip(said, pairs, strict=True)) / len(pairs)  # fmt: skip
