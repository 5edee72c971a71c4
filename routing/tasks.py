"""A routed request ("task" in CORE's words): its concept prototypes and the expert serving it.

Stored as one artifact per request (manifest key `concepts:<request_id>`), so a version's
concept set is exactly the requests its manifest names: a rollback routes as that version
did, and reverting a request drops its concepts with its manifest key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

CONCEPTS_PREFIX = "concepts:"
EXPERT_PREFIX = "expert-"


@dataclass(frozen=True)
class Task:
    request_id: str
    expert_id: str
    label: str
    visual: np.ndarray  # [kv, dv] raw prototypes (kv may be 0: a text-only request)
    textual: np.ndarray  # [kt, dt]
    seq: int = 0  # 1 + the number of requests routed before it on this chain: oldest first
    visual_vector: str = "vision_tower"  # what `visual` holds (routing/concepts.py)
    names: tuple[str, ...] = ()  # the target's names: a question naming one is about it
    visual_threshold: float | None = None  # calibrated cosine (None: the deployment's b)
    # The text door by meaning (routing/text_door.py): prototypes of the questions' keys, the
    # background's mean key, the calibrated cosine. None (older artifacts): by name alone.
    text_keys: np.ndarray | None = None
    text_center: np.ndarray | None = None
    text_threshold: float | None = None
    text_key: str = "answer_distribution"  # what `text_keys` hold (older artifacts: this)
    # Names and facts an answer about the target gives away (routing/answer_check.py); older
    # artifacts have none.
    tells: tuple[str, ...] = ()
    # Scoped tells: the words of its names that no pool uses, and the facts that tell only
    # where a question names one of them alone (routing/answer_check.py); older: none.
    scope: tuple[str, ...] = ()
    scoped: tuple[str, ...] = ()
    frame: tuple[str, ...] = ()  # words that are no name beside a scope word (lower case)

    @property
    def reads_meaning(self) -> bool:
        return self.text_threshold is not None and self.text_keys is not None

    @property
    def all_names(self) -> tuple[str, ...]:
        """The names the text door looks for (older artifacts: the label)."""
        return self.names or ((self.label,) if self.label else ())

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"visual": self.visual, "textual": self.textual}
        if self.reads_meaning:
            out.update(text_keys=self.text_keys, text_center=np.atleast_2d(self.text_center))
        return {k: torch.from_numpy(np.ascontiguousarray(v, np.float32)) for k, v in out.items()}

    def metadata(self) -> dict[str, str]:
        meta = {"kind": "concepts", "request": self.request_id, "expert": self.expert_id,
                "label": self.label, "seq": str(self.seq), "visual_vector": self.visual_vector,
                "names": json.dumps(list(self.names)),
                "tells": json.dumps(list(self.tells)), "scope": json.dumps(list(self.scope)),
                "scoped": json.dumps(list(self.scoped)),
                "frame": json.dumps(list(self.frame))}  # fmt: skip
        if self.visual_threshold is not None:
            meta["visual_threshold"] = repr(self.visual_threshold)
        if self.reads_meaning:
            meta.update(text_threshold=repr(self.text_threshold), text_key=self.text_key)
        return meta

    @classmethod
    def from_artifact(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Task:
        if metadata.get("kind") != "concepts":
            raise ValueError(f"not a concepts artifact: kind {metadata.get('kind')!r}")
        return cls(
            metadata["request"],
            metadata["expert"],
            metadata.get("label", ""),
            tensors["visual"].float().numpy(),
            tensors["textual"].float().numpy(),
            int(metadata.get("seq", "0")),
            metadata.get("visual_vector", "vision_tower"),
            tuple(json.loads(metadata.get("names", "[]"))),
            float(metadata["visual_threshold"]) if "visual_threshold" in metadata else None,
            *_text_door(tensors, metadata),
            tells=tuple(json.loads(metadata.get("tells", "[]"))),
            scope=tuple(json.loads(metadata.get("scope", "[]"))),
            scoped=tuple(json.loads(metadata.get("scoped", "[]"))),
            frame=tuple(json.loads(metadata.get("frame", "[]"))),
        )


def _text_door(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> tuple:
    """(keys, center, threshold, key) of a stored text door; Nones when it has none."""
    if "text_threshold" not in metadata or "text_keys" not in tensors:
        return None, None, None, "answer_distribution"
    return (tensors["text_keys"].float().numpy(), tensors["text_center"].float().numpy()[0],
            float(metadata["text_threshold"]),
            metadata.get("text_key", "answer_distribution"))  # fmt: skip


def load_tasks(manifest: dict, artifacts) -> list[Task]:
    """Every task of a version, oldest first (artifacts are verified on load)."""
    keys = [k for k in (manifest.get("artifacts") or {}) if k.startswith(CONCEPTS_PREFIX)]
    shas = [manifest["artifacts"][k] for k in keys]
    tasks = [
        Task.from_artifact(artifacts.load_tensors(s), artifacts.load_metadata(s)) for s in shas
    ]
    return sorted(tasks, key=lambda t: (t.seq, t.request_id))
