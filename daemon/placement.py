"""Where a trained result goes in the new version, by what the method declares it needs.

- An always-on adapter (every method without `needs.routing`): trained on the parent as it
  serves, stored as `artifacts["adapter:<request>"]`, applied to every query.
- A routed expert (`needs.routing`, CORE): the request is decomposed into concepts, the pool
  picks an expert (new, reused or adapted), the expert trains from its current tensors with
  the forget samples of the requests it already serves replayed, and the version stores it
  as `experts[<id>]` with this request's concepts (`artifacts["concepts:<request>"]`); the
  switch turns it on per query.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from unlearnd.daemon.job import JobInputs, without_concept
from unlearnd.daemon.pipeline import Progress
from unlearnd.daemon.request_store import load_request, open_image, requests_root
from unlearnd.daemon.text_door import answer_tells, text_door
from unlearnd.methods import artifact_metadata, suspended
from unlearnd.methods.shared import lora
from unlearnd.models import Sample
from unlearnd.refusals import PERSON
from unlearnd.registry import RegistryStore
from unlearnd.routing.calibration import calibrate
from unlearnd.routing.concepts import (
    concept_rows,
    prototypes,
    textual_prototypes,
    visual_rows,
)
from unlearnd.routing.pool import decide
from unlearnd.routing.switch import ExpertSwitch
from unlearnd.routing.tasks import CONCEPTS_PREFIX, Task, load_tasks
from unlearnd.serving import Deployment, RoutedModel
from unlearnd.serving.version import ADAPTER_PREFIX, TARGET_TYPES, answering, switch_settings

log = logging.getLogger("unlearnd.daemon.placement")


@dataclass
class Placed:
    manifest: dict[str, Any]  # the parent's, with this request's result
    candidate: RoutedModel  # the model as the new version serves it, for scoring
    losses: list[float]
    routing: dict[str, Any] | None = None  # the pool's decision, for the version's metrics
    records: dict[str, Any] | None = None  # expert and concept rows the commit records


def _steps(progress: Progress):
    return lambda s, n, loss: progress.step(s, n, loss=loss)


class AdapterPlacement:
    def __init__(self, deployment: Deployment):
        self.deployment = deployment

    def fit(
        self,
        inputs: JobInputs,
        parent: RoutedModel,
        manifest: dict[str, Any],
        store: RegistryStore,
        progress: Progress,
    ) -> Placed:
        method = inputs.method
        result = method.fit(parent.fam, inputs.forget, inputs.retain, inputs.params,
                            progress=_steps(progress))  # fmt: skip
        progress.stage("storing")
        sha = store.artifacts.put_tensors(result.tensors, artifact_metadata(result, method.name))
        key = f"{ADAPTER_PREFIX}{inputs.request_id}"
        new_manifest = {**manifest, "artifacts": {**manifest["artifacts"], key: sha}}
        # The adapter stays attached to the parent's weights: that is the candidate.
        return Placed(new_manifest, parent, result.losses)


def replay_samples(settings: Any, request_ids: list[str]) -> list[Sample]:
    """The forget samples of earlier requests, read back from their saved folders."""
    out = []
    for rid in request_ids:
        request, folder = load_request(requests_root(settings), rid)
        out += [Sample(s.question, s.answer, open_image(folder, s)) for s in request.forget]
    return out


class ExpertPlacement:
    def __init__(self, deployment: Deployment):
        self.deployment = deployment

    def concepts(self, inputs: JobInputs, fam: Any, centers: Any) -> tuple:
        """(visual prototypes, textual prototypes, calibration or None, text door or None),
        on the base model."""
        r, kind, seed = self.deployment.settings.routing, centers.visual_vector, inputs.params.seed
        target = inputs.request.target
        texts = [f"{target.name} . {target.description}".strip(" .")]
        with suspended(fam):  # vectors of the base model, as the switch takes a query's
            rows, images = concept_rows(fam, inputs.forget, kind)
            visual = prototypes(rows, r.prototypes, seed)
            textual = textual_prototypes(fam, inputs.forget, texts, r.prototypes, seed)
            door = None  # the door by meaning is opt-in (routing.meaning_door)
            if r.meaning_door:
                door = text_door(fam, inputs.request.kind, target.names, inputs.forget,
                                 self.deployment, seed)  # fmt: skip
            if not len(visual):
                return visual, textual, None, door
            background = without_concept(self.deployment.background(), inputs.request.kind,
                                         inputs.forget)  # fmt: skip
            fallback = r.relevance_b if r.visual_threshold is None else r.visual_threshold
            calibration = calibrate(rows, images, visual, visual_rows(fam, background, kind),
                                    centers, r.prototypes, fallback, seed)  # fmt: skip
        return visual, textual, calibration, door

    def fit(
        self,
        inputs: JobInputs,
        parent: RoutedModel,
        manifest: dict[str, Any],
        store: RegistryStore,
        progress: Progress,
    ) -> Placed:
        fam, settings = parent.fam, self.deployment.settings
        r = settings.routing
        centers = self.deployment.centers(fam)
        tasks = load_tasks(manifest, store.artifacts)
        target = inputs.request.target
        kind = centers.visual_vector
        visual, textual, calibration, door = self.concepts(inputs, fam, centers)
        threshold = r.visual_threshold
        if threshold is None and calibration is not None:
            threshold = calibration.threshold
        decision = decide(
            inputs.request_id,
            (visual, textual),
            tasks,
            centers,
            pool_size=r.pool_size,
            reuse_threshold=r.reuse_threshold,
            a=r.relevance_a,
            b=r.relevance_b,
        )
        log.info("request %s: %s expert %s", inputs.request_id, decision.action,
                 decision.expert_id)  # fmt: skip

        experts = dict(manifest.get("experts") or {})
        init = None
        if decision.action != "new":
            init = store.artifacts.load_tensors(experts[decision.expert_id])
        replay = replay_samples(settings, decision.replay)
        parent.turn({})  # every other expert stays off (and frozen) while this one trains
        method = inputs.method
        result = method.fit(fam, inputs.forget, inputs.retain, inputs.params, _steps(progress),
                            init=init, replay=replay)  # fmt: skip

        expert_sha = store.artifacts.put_tensors(
            result.tensors, artifact_metadata(result, method.name)
        )
        seq = 1 + max((t.seq for t in tasks), default=0)
        stored = door.task_fields() if door is not None else {}
        told = answer_tells(inputs.request.kind, target.names, inputs.forget, self.deployment)
        task = Task(inputs.request_id, decision.expert_id, target.name, visual, textual, seq,
                    kind, tuple(target.names), threshold, **stored, **told)  # fmt: skip
        concepts_sha = store.artifacts.put_tensors(task.tensors(), task.metadata())
        experts[decision.expert_id] = expert_sha
        concepts_key = f"{CONCEPTS_PREFIX}{inputs.request_id}"
        new_manifest = {
            **manifest,
            "experts": experts,
            "artifacts": {**manifest["artifacts"], concepts_key: concepts_sha},
        }
        # Whom each expert's routed refusals speak of; a person where none is recorded.
        types = {k: v for k, v in (manifest.get(TARGET_TYPES) or {}).items()
                 if k != decision.expert_id}  # fmt: skip
        if inputs.target_type != PERSON:
            types[decision.expert_id] = inputs.target_type
        new_manifest.pop(TARGET_TYPES, None)
        if types:
            new_manifest[TARGET_TYPES] = types

        # The candidate serves the trained adapter as this expert; its old copy stays off.
        adapters = {k: v for k, v in parent.adapters.items() if k != decision.expert_id}
        if decision.expert_id in parent.adapters:
            lora.set_weights(fam.model, {parent.adapters[decision.expert_id]: 0.0})
        adapters[decision.expert_id] = lora.ADAPTER
        switch = ExpertSwitch([*tasks, task], centers, switch_settings(settings))
        candidate = answering(fam, switch, adapters, settings, types)
        candidate.turn({})
        records = {
            "expert": {"id": decision.expert_id, "artifact_sha256": expert_sha,
                       "kind": method.name,
                       "data": {"last_request": inputs.request_id, "action": decision.action}},
            "concepts": [{"modality": m, "vector": v.astype("<f4").tobytes(),
                          "label": target.name}
                         for m, rows in (("visual", visual), ("textual", textual)) for v in rows],
        }  # fmt: skip
        routing = decision.to_dict()
        routing["visual_threshold"] = threshold
        if calibration is not None:
            routing["calibration"] = calibration.to_dict(with_samples=True)  # gate scan plot
        if door is not None:
            routing["text_threshold"] = door.calibration.threshold
            routing["text_calibration"] = door.calibration.to_dict(with_samples=True)
        return Placed(new_manifest, candidate, result.losses, routing, records)


def placement_for(inputs: JobInputs, deployment: Deployment) -> AdapterPlacement | ExpertPlacement:
    return (
        ExpertPlacement(deployment) if inputs.method.needs.routing else AdapterPlacement(deployment)
    )
