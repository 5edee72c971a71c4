"""One version, loaded once, answering queries: what `generate`, `classify` and the API use."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from PIL import Image

from unlearnd.models import ModelFamily, Sample, UnsupportedOperation
from unlearnd.registry import RegistryStore
from unlearnd.serving.deployment import Deployment
from unlearnd.serving.version import load_version


@dataclass
class Answer:
    text: str
    version: int | None
    routing: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ServedVersion:
    def __init__(self, deployment: Deployment, store: RegistryStore | None, version_id: int | None):
        self.deployment, self.version_id = deployment, version_id
        self.model = load_version(deployment, store, version_id)

    @property
    def fam(self) -> ModelFamily:
        return self.model.fam

    def answer_batch(self, samples: list[Sample], max_new_tokens: int = 32) -> list[Answer]:
        """Answers in order; each query is routed once, and queries that turn on the same
        experts share one forward pass."""
        return [
            Answer(text, self.version_id, self.model.routing_info(betas, by))
            for text, betas, by in self.model.answers(samples, max_new_tokens)
        ]

    def answer(
        self, prompt: str, image: Image.Image | None = None, max_new_tokens: int = 32
    ) -> Answer:
        (answer,) = self.answer_batch([Sample(prompt, "", image)], max_new_tokens)
        return answer

    def classify(
        self, images: list[Image.Image], labels: list[str], template: str | None = None
    ) -> torch.Tensor:
        """Class probabilities [n_images, n_labels] through a CLIP version's adapters."""
        self.check_classifies()
        extra = {} if template is None else {"template": template}
        return self.fam.classify(images, labels, **extra)

    def check_classifies(self) -> None:
        """UnsupportedOperation unless this version can classify."""
        if self.fam.family != "clip":
            raise UnsupportedOperation(
                f"classify needs a CLIP deployment; this one serves a {self.fam.family} model"
            )
        if self.model.switch is not None or self.model.adapters:
            # No method trains routed experts for CLIP; if one ever does, classify must turn
            # them on per image instead of silently ignoring them.
            raise UnsupportedOperation(
                "this version has refuser experts, which classify does not route"
            )
