"""A version as a model: the base weights, every adapter its manifest names, and its switch.

Method adapters (`artifacts["adapter:<request>"]`) are always on. Refuser experts
(`experts[<id>]`) are switched per query by the expert switch built from the version's
concepts (`artifacts["concepts:<request>"]`). Used by the pipeline (train on the parent,
score the candidate), `unlearnd generate`, the API and the demo. Every artifact is verified
by the store before it is applied.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from unlearnd.methods import apply_artifact, suspended
from unlearnd.methods.shared import lora
from unlearnd.models import ModelFamily, Sample
from unlearnd.refusals import PERSON, RefusalTable, TargetType
from unlearnd.registry import ArtifactStore, RegistryStore
from unlearnd.routing.concepts import visual_vectors
from unlearnd.routing.switch import ExpertSwitch, SwitchSettings
from unlearnd.routing.tasks import load_tasks
from unlearnd.routing.text_door import text_keys
from unlearnd.serving.deployment import Deployment

ADAPTER_PREFIX = "adapter:"  # manifest["artifacts"] keys of method adapters: adapter:<request>
Routes = list[dict[str, float]]  # per query: expert id -> beta, for the experts it turns on
Refuse = Callable[[str, TargetType], str]  # a question, whom it is about -> its refusal
TARGET_TYPES = "target_types"  # manifest: expert id -> its target's type, where not a person


def base_manifest() -> dict[str, Any]:
    return {"experts": {}, "artifacts": {}, "concept_index": None}


def apply_manifest(
    fam: ModelFamily, manifest: dict[str, Any], artifacts: ArtifactStore
) -> list[str]:
    """Apply every method adapter of the manifest to `fam` in place (experts are not
    applied: see load_experts); returns their manifest keys."""
    applied = []
    for key, sha in sorted((manifest.get("artifacts") or {}).items()):
        if not key.startswith(ADAPTER_PREFIX):
            continue
        name = f"a{len(applied)}"  # PEFT adapter names must be attribute-safe
        apply_artifact(fam, artifacts.load_tensors(sha), artifacts.load_metadata(sha), name)
        applied.append(key)
    return applied


def load_experts(
    fam: ModelFamily, manifest: dict[str, Any], artifacts: ArtifactStore
) -> dict[str, str]:
    """Apply every expert of the manifest, switched off; returns expert id -> adapter name."""
    names = {}
    for i, (expert, sha) in enumerate(sorted((manifest.get("experts") or {}).items())):
        names[expert] = f"x{i}"
        apply_artifact(fam, artifacts.load_tensors(sha), artifacts.load_metadata(sha), f"x{i}")
    lora.set_weights(fam.model, dict.fromkeys(names.values(), 0.0))
    return names


def switch_settings(settings: Any) -> SwitchSettings:
    r = settings.routing
    return SwitchSettings(r.relevance_a, r.relevance_b, r.gate, r.hard_threshold, r.text_door,
                          r.answer_check)  # fmt: skip


def refuser_of(settings: Any) -> Refuse | None:
    """How routed queries are answered when not by generation: the deployment's refusal
    for the question's category (`routing.routed_answer = "refusal"`), else None."""
    if settings.routing.routed_answer != "refusal":
        return None
    return RefusalTable(settings.refusals)


class RoutedModel:
    """`fam` with its experts switched per query by `switch` (duck-types `generate` for
    evaluation.candidate). `refuse`: answers a query that turns an expert on without
    generating (None: the expert generates); `withheld`: what an answer that still states a
    routed target becomes (routing/answer_check.py); both refuse about the target of the
    strongest expert (`targets`: expert id -> its type, where not a person)."""

    def __init__(
        self,
        fam: ModelFamily,
        switch: ExpertSwitch | None,
        adapters: dict[str, str],
        refuse: Refuse | None = None,
        withheld: Refuse | None = None,
        targets: dict[str, TargetType] | None = None,
    ):
        self.fam, self.switch, self.adapters, self.refuse = fam, switch, adapters, refuse
        self.withheld = withheld or RefusalTable()  # what an answer that still tells becomes
        self.targets = dict(targets or {})

    def about(self, betas: dict[str, float]) -> TargetType:
        """The type of the target of the strongest expert on (a person by default)."""
        return self.targets.get(max(betas, key=betas.__getitem__), PERSON) if betas else PERSON

    @torch.no_grad()
    def routes(self, samples: list[Sample]) -> Routes:
        if self.switch is None or not samples:
            return [{} for _ in samples]
        with_image = [i for i, s in enumerate(samples) if s.image is not None]
        visual, keys = None, None
        if self.switch.reads_meaning:  # the text door: the base model's keys of each question
            with suspended(self.fam):
                keys = {kind: text_keys(self.fam, [s.question for s in samples], kind)
                        for kind in self.switch.text_key_kinds}  # fmt: skip
        if with_image:
            kind = self.switch.centers.visual_vector
            with suspended(self.fam):  # the base model's vectors, as the requests' were taken
                feats = visual_vectors(self.fam, [samples[i] for i in with_image], kind).numpy()
            visual = np.full((len(samples), feats.shape[1]), np.nan, np.float32)
            visual[with_image] = feats
        return self.switch.route(visual, [s.question for s in samples], keys)

    def generate(
        self, batch: list[Sample], max_new_tokens: int = 16, routes: Routes | None = None
    ) -> list[str]:
        """Greedy answers, as served (the answer check included). `routes`: the batch's
        routing when the caller has it already (it is not redone)."""
        return [text for text, _, _ in self.answers(batch, max_new_tokens, routes)]

    def answers(
        self, batch: list[Sample], max_new_tokens: int = 16, routes: Routes | None = None
    ) -> list[tuple[str, dict[str, float], str]]:
        """Per query: (answer, the experts it was answered with, by what: routing_info's
        `answered_by`). A draft that tells of a routed request (routing/answer_check.py) is
        answered again with that request's expert on; one that still tells is withheld."""
        routes = self.routes(batch) if routes is None else routes
        texts = self._generate(batch, routes, max_new_tokens)
        out = [(text, betas, self._by(betas)) for text, betas in zip(texts, routes, strict=True)]
        if self.switch is None or not self.switch.answer_check:
            return out
        again: dict[int, dict[str, float]] = {}
        for i, (text, betas, _) in enumerate(out):
            told = self.switch.told(text, batch[i].question)
            if told and all(betas.get(e, 0.0) >= 1.0 or self.refuse for e in told):
                out[i] = (self.withheld(batch[i].question, self.about(told)), betas,
                          "answer check")  # fmt: skip
            elif told:
                again[i] = {**betas, **told}
        if again:
            idx = list(again)
            redone = self._generate([batch[i] for i in idx], [again[i] for i in idx],
                                    max_new_tokens)  # fmt: skip
            for i, text in zip(idx, redone, strict=True):
                if told := self.switch.told(text, batch[i].question):
                    text = self.withheld(batch[i].question, self.about(told))
                out[i] = (text, again[i], "answer check")
        return out

    def _generate(self, batch: list[Sample], routes: Routes, max_new_tokens: int) -> list[str]:
        """Answers with each query's experts on; queries with the same expert weights share
        one forward pass."""
        groups: dict[tuple, list[int]] = {}
        for i, betas in enumerate(routes):
            groups.setdefault(tuple(sorted((k, round(v, 3)) for k, v in betas.items())), []).append(
                i
            )
        out = [""] * len(batch)
        for key, idx in groups.items():
            if key and self.refuse is not None:  # routed: the deployment's refusal, always
                about = self.about(dict(key))
                for i in idx:
                    out[i] = self.refuse(batch[i].question, about)
                continue
            self.turn(dict(key))
            texts = self.fam.generate([batch[i] for i in idx], max_new_tokens=max_new_tokens)
            for i, text in zip(idx, texts, strict=True):
                out[i] = text
        self.turn({})
        return out

    def _by(self, betas: dict[str, float]) -> str:
        return "base model" if not betas else "refusal" if self.refuse else "expert"

    def turn(self, betas: dict[str, float]) -> None:
        """Set every expert's weight: `betas` (expert id -> beta), the others off."""
        weights = {name: betas.get(expert, 0.0) for expert, name in self.adapters.items()}
        if weights:
            lora.set_weights(self.fam.model, weights)

    def routing_info(self, betas: dict[str, float], by: str | None = None) -> dict[str, Any]:
        """One query's routing as answers report it (`by`: what answered, from `answers`)."""
        answered = by or self._by(betas)
        return {
            "gate": self.switch.settings.mode if self.switch else "none",
            "experts": {k: round(v, 4) for k, v in betas.items()},
            "base_model_only": not betas,
            "answered_by": answered,
        }


def routed(
    fam: ModelFamily, manifest: dict[str, Any], artifacts: ArtifactStore, deployment: Deployment
) -> RoutedModel:
    """Load the manifest's experts into `fam` and build its switch (None when it has none)."""
    adapters = load_experts(fam, manifest, artifacts)
    tasks = load_tasks(manifest, artifacts)
    switch = None
    if tasks:
        switch = ExpertSwitch(tasks, deployment.centers(fam), switch_settings(deployment.settings))
    targets = manifest.get(TARGET_TYPES) or {}
    return answering(fam, switch, adapters, deployment.settings, targets)


def answering(
    fam: ModelFamily,
    switch: ExpertSwitch | None,
    adapters: dict[str, str],
    settings: Any,
    targets: dict[str, TargetType] | None = None,
) -> RoutedModel:
    """`fam` with these experts and switch, answering as the deployment's settings say."""
    return RoutedModel(fam, switch, adapters, refuser_of(settings),
                       RefusalTable(settings.refusals), targets)  # fmt: skip


def manifest_of(store: RegistryStore, version_id: int | None) -> dict[str, Any]:
    """A version's manifest with every section present (None: the base model's)."""
    if version_id is None:
        return base_manifest()
    return {**base_manifest(), **store.get_version(version_id).manifest}


def load_onto(
    fam: ModelFamily, manifest: dict[str, Any], artifacts: ArtifactStore, deployment: Deployment
) -> RoutedModel:
    """`fam` (base weights) as the version with this manifest serves it."""
    apply_manifest(fam, manifest, artifacts)
    return routed(fam, manifest, artifacts, deployment)


def load_version(
    deployment: Deployment, store: RegistryStore | None, version_id: int | None
) -> RoutedModel:
    """The model as of `version_id` (None: the base model, which needs no registry), with its
    switch."""
    manifest = manifest_of(store, version_id)  # type: ignore[arg-type]
    artifacts = store.artifacts if store is not None else None  # the base reads no artifact
    return load_onto(deployment.load_base(), manifest, artifacts, deployment)  # type: ignore[arg-type]
