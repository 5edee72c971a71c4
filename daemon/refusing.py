"""The refuser path of a job: decompose, route to an expert, train it, build the candidate.

Separate from unlearn.py because only refuser requests touch the expert pool: every other
method trains one always-on adapter on top of the parent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from unlearnd.daemon.deployment import Deployment
from unlearnd.daemon.pipeline import WorkItem
from unlearnd.daemon.request_files import load_request, open_image, requests_root
from unlearnd.daemon.serving import RoutedModel, gate_settings
from unlearnd.methods import lora
from unlearnd.methods.apply import artifact_metadata
from unlearnd.methods.base import Method, MethodParams, Progress
from unlearnd.models import Sample
from unlearnd.routing.concepts import decompose
from unlearnd.routing.gate import Gate
from unlearnd.routing.pool import Decision, decide
from unlearnd.routing.tasks import CONCEPTS_PREFIX, Task, load_tasks

log = logging.getLogger("unlearnd.daemon.refusing")


@dataclass
class RefuserOutcome:
    manifest: dict[str, Any]  # the parent's, with this request's expert and concepts
    candidate: RoutedModel  # the model as the new version serves it, for scoring
    decision: Decision
    losses: list[float]
    records: dict[str, Any]  # the expert and concept rows the commit records


def replay_samples(settings: Any, request_ids: list[str]) -> list[Sample]:
    """The forget samples of earlier requests, read back from their saved folders."""
    out = []
    for rid in request_ids:
        request, folder = load_request(requests_root(settings), rid)
        out += [Sample(s.question, s.answer, open_image(folder, s)) for s in request.forget]
    return out


def run_refuser(
    parent: RoutedModel,
    manifest: dict[str, Any],
    item: WorkItem,
    store: Any,
    deployment: Deployment,
    method: Method,
    params: MethodParams,
    forget: list[Sample],
    retain: list[Sample],
    progress: Progress,
) -> RefuserOutcome:
    fam, settings = parent.fam, deployment.settings
    r = settings.routing
    centers = deployment.centers(fam)
    tasks = load_tasks(manifest, store.artifacts)
    target = item.request.target
    texts = [f"{target.name} . {target.description}".strip(" .")]
    kind = centers.visual_vector
    visual, textual = decompose(fam, forget, texts, r.prototypes, params.seed, kind)
    decision = decide(
        item.request_id,
        (visual, textual),
        tasks,
        centers,
        pool_size=r.pool_size,
        reuse_threshold=r.reuse_threshold,
        a=r.relevance_a,
        b=r.relevance_b,
    )
    log.info("request %s: %s expert %s", item.request_id, decision.action, decision.expert_id)

    experts = dict(manifest.get("experts") or {})
    init = None
    if decision.action != "new":
        init = store.artifacts.load_tensors(experts[decision.expert_id])
    replay = replay_samples(settings, decision.replay)
    parent.switch({})  # every other expert stays off (and frozen) while this one trains
    result = method.fit(fam, forget, retain, params, progress, init=init, replay=replay)

    expert_sha = store.artifacts.put_tensors(result.tensors, artifact_metadata(result, method.name))
    seq = 1 + max((t.seq for t in tasks), default=0)
    task = Task(item.request_id, decision.expert_id, target.name, visual, textual, seq, kind)
    concepts_sha = store.artifacts.put_tensors(task.tensors(), task.metadata())
    experts[decision.expert_id] = expert_sha
    new_manifest = {
        **manifest,
        "experts": experts,
        "artifacts": {**manifest["artifacts"], f"{CONCEPTS_PREFIX}{item.request_id}": concepts_sha},
    }

    # The candidate serves the trained adapter as this expert; its old copy stays off.
    adapters = {k: v for k, v in parent.adapters.items() if k != decision.expert_id}
    if decision.expert_id in parent.adapters:
        lora.set_weights(fam.model, {parent.adapters[decision.expert_id]: 0.0})
    adapters[decision.expert_id] = lora.ADAPTER
    gate = Gate([*tasks, task], centers, gate_settings(settings))
    candidate = RoutedModel(fam, gate, adapters)
    candidate.switch({})
    records = {
        "expert": {"id": decision.expert_id, "artifact_sha256": expert_sha,
                   "data": {"last_request": item.request_id, "action": decision.action}},
        "concepts": [{"modality": m, "vector": v.astype("<f4").tobytes(), "label": target.name}
                     for m, rows in (("visual", visual), ("textual", textual)) for v in rows],
    }  # fmt: skip
    return RefuserOutcome(new_manifest, candidate, decision, result.losses, records)
