"""A version as a model: the base weights, every adapter its manifest names, and its gate.

Method adapters (`artifacts["adapter:<request>"]`) are always on. Refuser experts
(`experts[<id>]`) are switched per query by the routing gate built from the version's
concepts (`artifacts["concepts:<request>"]`). Used by the pipeline (train on the parent,
score through the gate), `unlearnd generate`, the API and the demo. Every artifact is
verified by the store before it is applied.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from unlearnd.methods import lora
from unlearnd.methods.apply import apply_artifact
from unlearnd.models import ModelFamily, Sample
from unlearnd.routing.concepts import visual_vectors
from unlearnd.routing.gate import Gate, GateSettings
from unlearnd.routing.tasks import load_tasks

ADAPTER_PREFIX = "adapter:"  # manifest["artifacts"] keys of method adapters: adapter:<request>


def base_manifest() -> dict[str, Any]:
    return {"experts": {}, "artifacts": {}, "concept_index": None}


def apply_manifest(fam: ModelFamily, manifest: dict[str, Any], artifacts: Any) -> list[str]:
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


def load_experts(fam: ModelFamily, manifest: dict[str, Any], artifacts: Any) -> dict[str, str]:
    """Apply every expert of the manifest, switched off; returns expert id -> adapter name."""
    names = {}
    for i, (expert, sha) in enumerate(sorted((manifest.get("experts") or {}).items())):
        names[expert] = f"x{i}"
        apply_artifact(fam, artifacts.load_tensors(sha), artifacts.load_metadata(sha), f"x{i}")
    lora.set_weights(fam.model, dict.fromkeys(names.values(), 0.0))
    return names


def gate_settings(settings: Any) -> GateSettings:
    r = settings.routing
    return GateSettings(r.relevance_a, r.relevance_b, r.gate, r.hard_threshold)


class RoutedModel:
    """`fam` with its experts switched per query by `gate` (duck-types `generate` for
    evaluation.candidate)."""

    def __init__(self, fam: ModelFamily, gate: Gate | None, adapters: dict[str, str]):
        self.fam, self.gate, self.adapters = fam, gate, adapters

    @torch.no_grad()
    def routes(self, samples: list[Sample]) -> list[dict[str, float]]:
        if self.gate is None or not samples:
            return [{} for _ in samples]
        self.switch({})  # concept vectors are taken with every expert off (answer states move)
        text = self.fam.text_embedding([s.question for s in samples]).numpy()
        with_image = [i for i, s in enumerate(samples) if s.image is not None]
        visual = None
        if with_image:
            kind = self.gate.centers.visual_vector
            feats = visual_vectors(self.fam, [samples[i] for i in with_image], kind).numpy()
            visual = np.full((len(samples), feats.shape[1]), np.nan, np.float32)
            visual[with_image] = feats
        return self.gate.route(visual, text)

    def generate(self, batch: list[Sample], max_new_tokens: int = 16) -> list[str]:
        """Greedy answers; queries with the same expert weights share one forward pass."""
        routes = self.routes(batch)
        groups: dict[tuple, list[int]] = {}
        for i, betas in enumerate(routes):
            groups.setdefault(tuple(sorted((k, round(v, 3)) for k, v in betas.items())), []).append(
                i
            )
        out = [""] * len(batch)
        for key, idx in groups.items():
            self.switch(dict(key))
            texts = self.fam.generate([batch[i] for i in idx], max_new_tokens=max_new_tokens)
            for i, text in zip(idx, texts, strict=True):
                out[i] = text
        self.switch({})
        return out

    def switch(self, betas: dict[str, float]) -> None:
        weights = {name: betas.get(expert, 0.0) for expert, name in self.adapters.items()}
        if weights:
            lora.set_weights(self.fam.model, weights)


def routed(
    fam: ModelFamily, manifest: dict[str, Any], artifacts: Any, deployment: Any
) -> RoutedModel:
    """Load the manifest's experts into `fam` and build its gate (None when it has none)."""
    adapters = load_experts(fam, manifest, artifacts)
    tasks = load_tasks(manifest, artifacts)
    gate = None
    if tasks:
        gate = Gate(tasks, deployment.centers(fam), gate_settings(deployment.settings))
    return RoutedModel(fam, gate, adapters)


def load_version(deployment: Any, store: Any, version_id: int | None) -> RoutedModel:
    """The model as of `version_id` (None: the base model), with its gate."""
    fam = deployment.load_base()
    manifest = store.get_version(version_id).manifest if version_id is not None else {}
    apply_manifest(fam, manifest, store.artifacts)
    return routed(fam, manifest, store.artifacts, deployment)


@dataclass
class Answer:
    text: str
    version: int | None
    routing: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ServedVersion:
    """One version, loaded once, answering queries (what `generate` and the API use)."""

    def __init__(self, deployment: Any, store: Any, version_id: int | None):
        self.version_id = version_id
        self.model = load_version(deployment, store, version_id)

    @property
    def fam(self) -> ModelFamily:
        return self.model.fam

    def answer(
        self, prompt: str, image: Image.Image | None = None, max_new_tokens: int = 32
    ) -> Answer:
        sample = Sample(prompt, "", image)
        (betas,) = self.model.routes([sample])
        (text,) = self.model.generate([sample], max_new_tokens=max_new_tokens)
        gate = self.model.gate
        routing = {
            "gate": gate.settings.mode if gate else "none",
            "experts": {k: round(v, 4) for k, v in betas.items()},
            "base_model_only": not betas,
        }
        return Answer(text, self.version_id, routing)
