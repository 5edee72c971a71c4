"""The production pipeline: one deletion request -> a trained, stored, evaluated adapter.

parent version's model -> score parent -> method.fit -> artifact -> score candidate -> gate.
The worker around it owns the lease, the commit and the re-base (see daemon/worker.py).
A vision-language deployment answers questions and is scored on answers; a CLIP deployment
takes domain requests (ADU) and is scored on zero-shot accuracy per domain
(evaluation/domains.py). A request that does not fit the deployment fails before any loading.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from unlearnd.config import Settings
from unlearnd.daemon.deployment import Deployment, DeploymentError
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
from unlearnd.evaluation.domains import score_domains
from unlearnd.evaluation.metrics import normalise
from unlearnd.methods import get_method
from unlearnd.methods.apply import artifact_metadata
from unlearnd.methods.base import Method, MethodParams
from unlearnd.models import Sample
from unlearnd.registry import AliasMoved

log = logging.getLogger("unlearnd.daemon.unlearn")


class RequestMismatch(ValueError):
    """The request does not fit the deployment's model (its kind or its method)."""


def check_fits(kind: str, method: Method, family: str) -> None:
    """A CLIP classifies images: it takes domain requests only, and only a domain request
    needs one. The method must support the family (checked here, not after loading)."""
    if kind == "domain" and family != "clip":
        raise RequestMismatch(
            f"a domain request needs a CLIP deployment; this one serves a {family} model"
        )
    if family == "clip" and kind != "domain":
        raise RequestMismatch(f"a CLIP deployment takes domain requests only, not {kind!r}")
    if family not in method.families:
        raise RequestMismatch(
            f"method {method.name!r} supports {', '.join(method.families)}, "
            f"not this deployment's {family} model"
        )


def without_concept(pool: list[Sample], kind: str, forget: list[Sample]) -> list[Sample]:
    """A concept request's own answers are what it forgets: pool samples that answer with
    them (a giraffe picture in a pool of every class) are neither kept nor scored as kept."""
    if kind != "concept":
        return pool
    gone = {normalise(s.answer) for s in forget}
    return [s for s in pool if normalise(s.answer) not in gone]


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
        req = item.request
        method = get_method(req.method or self.settings.daemon.default_method)
        params = method.validate_params(req.params)
        check_fits(req.kind, method, self.deployment.family)
        if self.deployment.family == "clip":
            return self._run_domain(item, store, progress, method, params, started)
        timings: dict[str, float] = {}
        forget = [Sample(s.question, s.answer, open_image(item.folder, s)) for s in req.forget]
        retain = [
            Sample(s.question, s.answer, open_image(item.folder, s)) for s in (req.retain or [])
        ] or without_concept(self.deployment.retain_pool("train"), req.kind, forget)

        progress.stage("loading")
        fam = self.deployment.load_base()
        base_fingerprint = self.fingerprint(fam)  # before any adapter joins the weights
        parent = store.get_version(item.parent_version_id) if item.parent_version_id else None
        manifest = {**base_manifest(), **parent.manifest} if parent else base_manifest()
        apply_manifest(fam, manifest, store.artifacts)
        model = routed(fam, manifest, store.artifacts, self.deployment)
        sets = {
            "forget": forget,
            "retain": without_concept(self.deployment.retain_pool("eval"), req.kind, forget),
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
        return self._conclude(
            item, method, params, base_fingerprint, new_manifest, before, after, losses, timings,
            started, routing, records,
        )  # fmt: skip

    def _run_domain(
        self,
        item: WorkItem,
        store: Any,
        progress: Any,
        method: Method,
        params: MethodParams,
        started: float,
    ) -> PipelineResult:
        """A domain request on a CLIP: ADU's prompts on the parent's, scored per domain."""
        timings: dict[str, float] = {}
        req = item.request
        forget = [Sample(s.question, s.answer, open_image(item.folder, s)) for s in req.forget]
        gone = sorted({s.question for s in forget})
        own_retain = [
            Sample(s.question, s.answer, open_image(item.folder, s)) for s in (req.retain or [])
        ]
        # The pool holds every domain: the forgotten ones' rows are scored, never kept.
        pool_train = [s for s in self.deployment.retain_pool("train") if s.question not in gone]
        retain = own_retain or pool_train
        if not retain:
            raise DeploymentError(
                "a domain request needs images of the kept domains: give `retain` or "
                "configure the deployment's model.retain_pool"
            )
        # Held-out pool images of every domain plus the request's own: the forgotten domains'
        # unseen images say whether the forgetting generalises beyond the forget set.
        evaluation = [*self.deployment.retain_pool("eval"), *forget, *own_retain]
        classes = list(dict.fromkeys(s.answer for s in [*forget, *retain, *evaluation]))

        progress.stage("loading")
        fam = self.deployment.load_base()
        base_fingerprint = self.fingerprint(fam)
        parent = store.get_version(item.parent_version_id) if item.parent_version_id else None
        manifest = {**base_manifest(), **parent.manifest} if parent else base_manifest()
        apply_manifest(fam, manifest, store.artifacts)  # earlier domains stay forgotten
        timings["load_s"] = time.monotonic() - started

        progress.stage("scoring parent")
        t = time.monotonic()
        before = score_domains(fam, evaluation, classes, gone)
        timings["score_parent_s"] = time.monotonic() - t

        progress.stage("training")
        t = time.monotonic()
        steps = lambda s, n, loss: progress.step(s, n, loss=loss)  # noqa: E731
        result = method.fit(fam, forget, retain, params, progress=steps)  # prompts stay on fam
        progress.stage("storing")
        sha = store.artifacts.put_tensors(result.tensors, artifact_metadata(result, method.name))
        key = f"{ADAPTER_PREFIX}{item.request_id}"
        new_manifest = {**manifest, "artifacts": {**manifest["artifacts"], key: sha}}
        timings["train_s"] = time.monotonic() - t
        progress.checkpoint("after_artifact")

        progress.stage("evaluating")
        t = time.monotonic()
        after = score_domains(fam, evaluation, classes, gone)
        timings["evaluate_s"] = time.monotonic() - t
        return self._conclude(
            item, method, params, base_fingerprint, new_manifest, before, after, result.losses,
            timings, started,
        )  # fmt: skip

    def _conclude(
        self,
        item: WorkItem,
        method: Method,
        params: MethodParams,
        base_fingerprint: str,
        new_manifest: dict[str, Any],
        before: dict[str, Any],
        after: dict[str, Any],
        losses: list[float],
        timings: dict[str, float],
        started: float,
        routing: dict[str, Any] | None = None,
        records: dict[str, Any] | None = None,
    ) -> PipelineResult:
        """Candidate and parent metrics, the gate, and the version the worker commits."""
        req = item.request
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
