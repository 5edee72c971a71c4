"""The production pipeline: one deletion request -> a trained, stored, evaluated adapter.

parent version's model -> score parent -> method.fit -> artifact -> score candidate -> gate.
The worker around it owns the lease, the commit and the re-base (see daemon/worker.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from unlearnd.config import Settings
from unlearnd.daemon.deployment import Deployment
from unlearnd.daemon.pipeline import PipelineResult, WorkItem
from unlearnd.daemon.refusing import run_refuser
from unlearnd.daemon.request_files import open_image
from unlearnd.daemon.serving import (
    ADAPTER_PREFIX,
    RoutedModel,
    apply_manifest,
    base_manifest,
    routed,
)
from unlearnd.evaluation import gate, probes
from unlearnd.evaluation.candidate import score
from unlearnd.methods import get_method
from unlearnd.methods.apply import artifact_metadata
from unlearnd.models import Sample
from unlearnd.registry import AliasMoved

log = logging.getLogger("unlearnd.daemon.unlearn")


class UnlearningPipeline:
    """What `unlearnd serve` runs by default."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.deployment = Deployment(settings)
        self._fingerprint: str | None = None

    def fingerprint(self, fam) -> str:
        if self._fingerprint is None:  # hashing every weight is slow on real models: once
            self._fingerprint = fam.fingerprint()
        return self._fingerprint

    def prepare(self, store: Any) -> None:
        """First start on an empty registry: record the base model as version 1, live."""
        if store.get_alias("live") is not None:
            return
        fam = self.deployment.load_base()
        version = store.create_version(
            base_fingerprint=self.fingerprint(fam),
            parent_id=None,
            kind="base",
            manifest=base_manifest(),
            method=None,
            params={"model": str(self.deployment.model_dir)},
        )
        try:
            moved = store.move_alias(
                "live",
                version.id,
                expected_from=None,
                who="unlearnd",
                why="base model at first start",
            )
        except AliasMoved:  # PostgreSQL: the other worker's first insert won
            moved = False
        if not moved:  # another worker registered the base first: ours is never used
            store.mark_version_broken(version.id, "another worker registered the base model")
            return
        log.info("registered the base model as version %s", version.id)

    def run(self, job: Any, item: WorkItem, store: Any, progress: Any) -> PipelineResult:
        started = time.monotonic()
        timings: dict[str, float] = {}
        req = item.request
        method = get_method(req.method or self.settings.daemon.default_method)
        params = method.validate_params(req.params)
        forget = [Sample(s.question, s.answer, open_image(item.folder, s)) for s in req.forget]
        retain = [
            Sample(s.question, s.answer, open_image(item.folder, s)) for s in (req.retain or [])
        ] or self.deployment.retain_pool("train")

        progress.stage("loading")
        fam = self.deployment.load_base()
        base_fingerprint = self.fingerprint(fam)  # before any adapter joins the weights
        parent = store.get_version(item.parent_version_id) if item.parent_version_id else None
        manifest = {**base_manifest(), **parent.manifest} if parent else base_manifest()
        apply_manifest(fam, manifest, store.artifacts)
        model = routed(fam, manifest, store.artifacts, self.deployment)
        sets = {
            "forget": forget,
            "retain": self.deployment.retain_pool("eval"),
            "general": self.deployment.general_pool(),
        }
        # Leak probes (world only) score with the sets: leak_text_acc, parent_leak_text_acc...
        sets.update(probes.request_probe_sets(self.deployment.world, req))
        timings["load_s"] = time.monotonic() - started

        progress.stage("scoring parent")
        t = time.monotonic()
        before = score(model, sets)
        timings["score_parent_s"] = time.monotonic() - t

        progress.stage("training")
        t = time.monotonic()
        steps = lambda s, n, loss: progress.step(s, n, loss=loss)  # noqa: E731
        routing = records = None
        if method.name == "refuser":
            outcome = run_refuser(
                model, manifest, item, store, self.deployment, method, params, forget, retain, steps
            )
            new_manifest, candidate, losses = outcome.manifest, outcome.candidate, outcome.losses
            routing, records = outcome.decision.to_dict(), outcome.records
        else:
            result = method.fit(fam, forget, retain, params, progress=steps)
            progress.stage("storing")
            sha = store.artifacts.put_tensors(
                result.tensors, artifact_metadata(result, method.name)
            )
            key = f"{ADAPTER_PREFIX}{item.request_id}"
            new_manifest = {**manifest, "artifacts": {**manifest["artifacts"], key: sha}}
            candidate, losses = RoutedModel(fam, model.gate, model.adapters), result.losses
        timings["train_s"] = time.monotonic() - t
        progress.checkpoint("after_artifact")

        progress.stage("evaluating")
        t = time.monotonic()
        after = score(candidate, sets)
        timings["evaluate_s"] = time.monotonic() - t
        metrics: dict[str, Any] = {**after, **{f"parent_{k}": v for k, v in before.items()}}
        decision = gate.decide(metrics, gate.thresholds(self.settings.gate, req.gate))
        metrics["gate"] = decision.to_dict()
        metrics["final_loss"] = losses[-1] if losses else None
        if routing is not None:
            metrics["routing"] = routing
        timings["total_s"] = time.monotonic() - started

        version = {
            "base_fingerprint": base_fingerprint,
            "kind": "deletion",
            "manifest": new_manifest,
            "method": method.name,
            "params": params.model_dump(),
            "metrics": metrics,
            "timings": timings,
        }
        log.info(
            "request %s: %s, forget %.2f -> %.2f, gate %s",
            item.request_id,
            method.name,
            before.get("forget_acc", 0),
            after.get("forget_acc", 0),
            "passed" if decision.passed else f"failed ({'; '.join(decision.failed)})",
        )
        return PipelineResult(
            version,
            decision.passed,
            {
                "forget_acc": after.get("forget_acc"),
                "gate": decision.passed,
                **({"routing": routing} if routing else {}),
            },  # fmt: skip
            routing=records,
        )
