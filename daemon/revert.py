"""A revert that needs a replay, done by the daemon as a job of its own.

The plan (registry/revert.py) is the head's manifest minus what the reverted request changed:
a refuser expert it trained goes back to its tensors from before it. Every later request that
trained the same expert again lost its change with that restore, so each is re-run on top, in
order, from its stored samples and params: its expert is retrained from the restored tensors
with the forget samples of the requests it still serves replayed, never the reverted one's.

The candidate is scored against the head it started from: the reverted request's facts
(answered again: reported beside the base model's rate), each replayed request under its own
gate (still forgotten), and the retain and general sets (kept). The worker commits one
`revert` version whose parent is that head, by compare-and-set; when the alias moved
meanwhile the whole replay runs again on the new head.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from unlearnd.daemon.job import JobInputs, load_inputs
from unlearnd.daemon.pipeline import Permanent, PipelineResult, Progress, WorkItem
from unlearnd.daemon.placement import placement_for
from unlearnd.daemon.request_store import load_request, requests_root
from unlearnd.evaluation import promotion
from unlearnd.registry import Conflict, NotFound, RegistryStore
from unlearnd.routing.tasks import CONCEPTS_PREFIX
from unlearnd.serving.version import load_onto, manifest_of

log = logging.getLogger("unlearnd.daemon.revert")
KEPT = ("retain", "general")  # the sets whose keeping the reverted request's gate checks


def without_requests(manifest: dict[str, Any], request_ids: list[str]) -> dict[str, Any]:
    """The manifest without these requests' concepts: each is decided and trained again."""
    gone = {f"{CONCEPTS_PREFIX}{r}" for r in request_ids}
    artifacts = {k: v for k, v in manifest["artifacts"].items() if k not in gone}
    return {**manifest, "artifacts": artifacts}


def gate_of(checks: list[tuple[str, promotion.PromotionDecision]]) -> promotion.PromotionDecision:
    """One decision from several, each check named after the request it is about."""
    named = [dataclasses.replace(c, name=f"{prefix}{c.name}") for prefix, d in checks
             for c in d.checks]  # fmt: skip
    return promotion.PromotionDecision(all(d.passed for _, d in checks), named)


def replay_revert(pipeline: Any, job: Any, item: WorkItem, store: RegistryStore,
                  progress: Progress) -> PipelineResult:  # fmt: skip
    """`pipeline`: the UnlearningPipeline (its deployment, settings and scoring helpers)."""
    started = time.monotonic()
    deployment, settings = pipeline.deployment, pipeline.settings
    alias = (job.data or {}).get("alias", "live")
    try:
        plan = store.revert_plan(item.request_id, alias=alias)
    except (Conflict, NotFound) as e:  # e.g. a rollback took the request out of the alias
        raise Permanent(f"revert of {item.request_id}: {e}") from None
    root = requests_root(settings)
    inputs = {item.request_id: load_inputs(item, deployment)}
    for rid in plan.replay:
        request, folder = load_request(root, rid)
        replay_item = WorkItem(rid, request, folder, plan.head_version_id, settings)
        inputs[rid] = load_inputs(replay_item, deployment)
    timings: dict[str, float] = {}

    progress.stage("scoring head")
    fam = deployment.load_base()
    fingerprint = pipeline.fingerprint(fam)
    head_manifest = manifest_of(store, plan.head_version_id)
    head = load_onto(fam, head_manifest, store.artifacts, deployment)
    before = {rid: inp.evaluation.measure(head) for rid, inp in inputs.items()}
    base = {rid: pipeline.base_forget(inp, fam, head_manifest, before[rid])
            for rid, inp in inputs.items()}  # fmt: skip
    del head, fam
    timings["score_head_s"] = time.monotonic() - started

    manifest = without_requests(plan.manifest, plan.replay)
    replayed: dict[str, dict[str, Any]] = {}
    losses: dict[str, float | None] = {}
    t = time.monotonic()
    for i, rid in enumerate(plan.replay, 1):
        progress.stage(f"replaying {rid} ({i}/{len(plan.replay)})")
        parent = load_onto(deployment.load_base(), manifest, store.artifacts, deployment)
        placed = placement_for(inputs[rid], deployment).fit(inputs[rid], parent, manifest,
                                                            store, progress)  # fmt: skip
        manifest = placed.manifest
        losses[rid] = placed.losses[-1] if placed.losses else None
        if placed.records is not None:
            replayed[rid] = placed.records
        log.info("revert of %s: replayed %s (%s)", item.request_id, rid,
                 (placed.routing or {}).get("action", "adapter"))  # fmt: skip
    timings["replay_s"] = time.monotonic() - t
    progress.checkpoint("after_artifact")

    progress.stage("evaluating")
    t = time.monotonic()
    candidate = load_onto(deployment.load_base(), manifest, store.artifacts, deployment)
    metrics, decision = _score(inputs, item.request_id, before, base, candidate, settings)
    metrics["replay_final_loss"] = losses
    timings["evaluate_s"] = time.monotonic() - t
    timings["total_s"] = time.monotonic() - started
    version = {
        "base_fingerprint": fingerprint,
        "kind": "revert",
        "manifest": manifest,
        "method": None,
        "params": {"reverted_version": plan.reverted_version_id, "replayed": plan.replay,
                   "who": (job.data or {}).get("who"), "why": (job.data or {}).get("why")},
        "metrics": metrics,
        "timings": timings,
    }  # fmt: skip
    log.info("revert of %s: replayed %s, gate %s", item.request_id, ", ".join(plan.replay),
             "passed" if decision.passed else f"failed ({'; '.join(decision.failed)})")  # fmt: skip
    summary = {"reverted": item.request_id, "replayed": plan.replay, "gate": decision.passed}
    return PipelineResult(version, decision.passed, summary, routing=replayed)


def _score(inputs: dict[str, JobInputs], reverted: str, before: dict, base: dict, candidate,
           settings) -> tuple[dict[str, Any], promotion.PromotionDecision]:  # fmt: skip
    """The revert's metrics and its gate: kept sets against the head for the reverted request,
    every replayed request under its own gate."""
    metrics: dict[str, Any] = {"replayed": {}}
    checks = []
    for rid, inp in inputs.items():
        after = inp.evaluation.measure(candidate)
        scores = inp.evaluation.compare(before[rid], after)
        if base[rid] is not None:
            scores["base_forget_acc"] = base[rid]
        gate = promotion.thresholds(settings.gate, inp.request.gate)
        if rid == reverted:  # its facts come back: reported; what it kept is gated
            metrics["reverted"] = {"request_id": rid, **scores}
            kept = {k: v for k, v in scores.items() if k.removeprefix("parent_")
                    .split("_")[0] in KEPT}  # fmt: skip
            metrics.update(kept)  # retain_kept, general_kept, ...: as a deletion reports them
            checks.insert(0, ("", promotion.decide(kept, gate)))
        else:
            decision = promotion.decide(scores, gate)
            metrics["replayed"][rid] = {**scores, "gate": decision.to_dict()}
            checks.append((f"{rid}: ", decision))
    decision = gate_of(checks)
    metrics["gate"] = decision.to_dict()
    return metrics, decision
