"""The production pipeline: one deletion request -> a trained, stored, evaluated adapter.

One path for every request, each step once, top to bottom:
inputs (job.py) -> the parent as served (serving) -> score parent -> train and place the
result (placement.py) -> score candidate -> promotion gate -> the version the worker commits.
The worker around it owns the lease, the commit and the re-base (see daemon/worker.py).
A request that does not fit the deployment fails before the model is loaded.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from unlearnd.config import ConfigError, Settings
from unlearnd.daemon.job import JobInputs, load_inputs
from unlearnd.daemon.pipeline import PipelineResult, Progress, WorkItem
from unlearnd.daemon.placement import Placed, placement_for
from unlearnd.daemon.revert import replay_revert
from unlearnd.evaluation import candidate, probes, promotion
from unlearnd.methods import ParamError, get_method, suspended
from unlearnd.models import ModelFamily
from unlearnd.registry import AliasMoved, RegistryStore
from unlearnd.serving import Deployment
from unlearnd.serving.version import base_manifest, load_onto, manifest_of

log = logging.getLogger("unlearnd.daemon.unlearn")


class UnlearningPipeline:
    """What `unlearnd serve` runs by default."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.deployment = Deployment(settings)
        self._fingerprint: str | None = None
        for name, defaults in settings.methods.items():  # a bad default fails at start-up
            try:
                get_method(name).validate_params(defaults)
            except (KeyError, ParamError) as e:
                raise ConfigError(f"[methods.{name}]: {e}") from None

    def fingerprint(self, fam: ModelFamily) -> str:
        if self._fingerprint is None:  # hashing every weight is slow on real models: once
            self._fingerprint = fam.fingerprint()
        return self._fingerprint

    def prepare(self, store: RegistryStore) -> None:
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

    def run(
        self, job: Any, item: WorkItem, store: RegistryStore, progress: Progress
    ) -> PipelineResult:
        started = time.monotonic()
        inputs = load_inputs(item, self.deployment)
        timings: dict[str, float] = {}

        progress.stage("loading")
        fam = self.deployment.load_base()
        base_fingerprint = self.fingerprint(fam)  # before any adapter joins the weights
        manifest = manifest_of(store, item.parent_version_id)
        parent = load_onto(fam, manifest, store.artifacts, self.deployment)
        timings["load_s"] = time.monotonic() - started

        progress.stage("scoring parent")
        t = time.monotonic()
        before = inputs.evaluation.measure(parent)
        base_forget = self.base_forget(inputs, fam, manifest, before)
        timings["score_parent_s"] = time.monotonic() - t

        progress.stage("training")
        t = time.monotonic()
        placement = placement_for(inputs, self.deployment)
        placed = placement.fit(inputs, parent, manifest, store, progress)
        timings["train_s"] = time.monotonic() - t
        progress.checkpoint("after_artifact")

        progress.stage("evaluating")
        t = time.monotonic()
        after = inputs.evaluation.measure(placed.candidate, before)  # also vs the parent's answers
        metrics = inputs.evaluation.compare(before, after)
        if base_forget is not None:
            metrics["base_forget_acc"] = base_forget
        metrics.update(self._attacks(inputs, placed, before))
        timings["evaluate_s"] = time.monotonic() - t
        return self._conclude(inputs, base_fingerprint, placed, metrics, timings, started)

    def revert(
        self, job: Any, item: WorkItem, store: RegistryStore, progress: Progress
    ) -> PipelineResult:
        """A revert job: the later requests replayed without the reverted one."""
        return replay_revert(self, job, item, store, progress)

    @staticmethod
    def base_forget(
        inputs: JobInputs, fam: ModelFamily, manifest: dict[str, Any], before: dict
    ) -> float | None:
        """The base model's forget accuracy, when the parent states none of the facts and is
        an earlier deletion (a second request about a person already refused): whether the
        facts were ever there to forget. None where the parent's own score says it."""
        forget = before.get("forget")
        if not forget or any(forget) or manifest == base_manifest():
            return None
        sets = getattr(inputs.evaluation, "sets", None)
        if sets is None:  # a CLIP's domain sets: the parent's score is the reference
            return None
        with suspended(fam):
            hit = candidate.hits(fam, sets["forget"], inputs.evaluation.names)
        return sum(hit) / len(hit)

    def _attacks(self, inputs: JobInputs, placed: Placed, before: dict) -> dict[str, float]:
        """Relearning and quantization, per door, for a version whose weights would be served
        merged (not a routed expert, not a CLIP's domain prompts)."""
        e = self.settings.evaluation
        sets = getattr(inputs.evaluation, "sets", None)
        if inputs.method.needs.routing or sets is None or not (e.relearn_steps or e.quantize_bits):
            return {}
        doors = {k: v for k, v in sets.items() if k == "forget" or k.startswith("leak_")}
        train_on = [s for s in inputs.forget if s.image is not None]
        return probes.attacked(placed.candidate.fam, train_on, doors, e.relearn_steps,
                               e.quantize_bits, before, inputs.evaluation.names)  # fmt: skip

    def _conclude(
        self,
        inputs: JobInputs,
        base_fingerprint: str,
        placed: Placed,
        metrics: dict[str, Any],
        timings: dict[str, float],
        started: float,
    ) -> PipelineResult:
        """Candidate and parent metrics, the promotion gate, and the version to commit."""
        req, method = inputs.request, inputs.method
        decision = promotion.decide(metrics, promotion.thresholds(self.settings.gate, req.gate))
        metrics["gate"] = decision.to_dict()
        metrics["final_loss"] = placed.losses[-1] if placed.losses else None
        if placed.routing is not None:
            metrics["routing"] = placed.routing
        timings["total_s"] = time.monotonic() - started

        version = {
            "base_fingerprint": base_fingerprint,
            "kind": "deletion",
            "manifest": placed.manifest,
            "method": method.name,
            "params": inputs.params.model_dump(),
            "metrics": metrics,
            "timings": timings,
        }
        silent = promotion.unmeasurable(metrics)  # doors whose parent stated nothing
        before, after = metrics.get("parent_forget_acc") or 0, metrics.get("forget_acc") or 0
        others = [d for d in silent if d != "forget"]
        log.info(
            "request %s: %s, forget %s, gate %s%s",
            inputs.request_id,
            method.name,
            promotion.PARENT_NONE if "forget" in silent else f"{before:.2f} -> {after:.2f}",
            "passed" if decision.passed else f"failed ({'; '.join(decision.failed)})",
            f"; {promotion.PARENT_NONE}: {', '.join(others)}" if others else "",
        )
        summary = {"forget_acc": metrics.get("forget_acc"), "gate": decision.passed}
        if silent:
            summary["not_measurable"] = silent
        if placed.routing:
            summary["routing"] = placed.routing
        return PipelineResult(version, decision.passed, summary, routing=placed.records)
