"""A cheap pipeline for the daemon's own tests and the intake benchmark (NOT an unlearning
method), and LocalDaemon: intake + worker one step at a time.

It does real, checkable work through the real interfaces: reads the request's images,
computes a small tensor from their pixels and the sample texts, writes it to the artifact
store as safetensors, and builds the version manifest on top of its parent's (so a chain of
versions shows each request applied exactly once). Its gate metric is a deterministic
stand-in derived from the content (`forget_acc` in [0, 1)), not a measurement of forgetting.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import torch

from unlearnd.config import Settings
from unlearnd.daemon.pipeline import PipelineResult, Progress, WorkItem
from unlearnd.daemon.request_store import open_image
from unlearnd.evaluation.promotion import decide, thresholds

STEP_ENV = "UNLEARND_TEST_STEP_S"  # seconds per "training" step, so tests can catch a run


class FingerprintPipeline:
    steps = 4

    def __init__(self, settings: Settings):
        self.settings = settings
        self.step_s = float(os.environ.get(STEP_ENV, "0"))

    def run(self, job: Any, request: WorkItem, store: Any, progress: Progress) -> PipelineResult:
        started = time.monotonic()
        req = request.request
        progress.stage("training")
        rows = []
        samples = list(req.forget) + list(req.retain or [])
        for i in range(self.steps):
            for sample in samples[i :: self.steps]:
                rows.append(_sample_row(request, sample))
            time.sleep(self.step_s)
            progress.step(i + 1, self.steps)
        weights = torch.stack(rows) if rows else torch.zeros(0, 8)
        sha = store.artifacts.put_tensors(
            {"fingerprint": weights.contiguous()},
            {"request_id": request.request_id, "producer": "tests/local_daemon.py"},
        )
        progress.checkpoint("after_artifact")
        progress.stage("evaluating")
        parent_artifacts: dict[str, str] = {}
        if request.parent_version_id is not None:
            parent = store.get_version(request.parent_version_id)
            parent_artifacts = dict(parent.manifest.get("artifacts", {}))
        digest = hashlib.sha256(weights.numpy().tobytes()).digest()
        metrics = {"forget_acc": digest[0] / 256, "rows": float(len(rows))}
        decision = decide(metrics, thresholds(self.settings.gate, req.gate))
        manifest = {
            "experts": {},
            "artifacts": {**parent_artifacts, request.request_id: sha},
            "concept_index": None,
        }
        version = {
            "base_fingerprint": "unlearnd-testing-base",
            "kind": "deletion",
            "manifest": manifest,
            "method": req.method,
            "params": dict(req.params),
            "metrics": {**metrics, "gate": decision.to_dict()},
            "timings": {"pipeline_s": time.monotonic() - started},
        }  # the worker sets the status from passed_gate
        return PipelineResult(version, decision.passed, {"artifact": sha})


def _sample_row(request: WorkItem, sample) -> torch.Tensor:
    """8 numbers per sample: mean RGB of its image (or zeros) and 5 bytes of its text hash."""
    image = open_image(request.folder, sample)
    if image is None:
        rgb = torch.zeros(3)
    else:
        pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
        rgb = pixels.view(-1, 3).float().mean(0) / 255
    text = hashlib.sha256(f"{sample.question}\x00{sample.answer}".encode()).digest()[:5]
    return torch.cat([rgb, torch.tensor(list(text), dtype=torch.float32) / 255])


class LocalDaemon:
    """A deployment's intake and worker run one step at a time, for tests and benchmarks:
    the registry, inbox, pipeline and commit of `unlearnd serve`, without its threads."""

    def __init__(self, settings: Settings, pipeline: Any = None):
        from unlearnd.daemon.intake import Intake
        from unlearnd.daemon.sink import RegistrySink
        from unlearnd.daemon.unlearn import UnlearningPipeline
        from unlearnd.registry import open_registry

        settings.daemon.stable_checks = 1  # a bundle is renamed in whole: no need to wait
        self.settings = settings
        self.store = open_registry(settings)
        self.pipeline = pipeline or UnlearningPipeline(settings)
        if hasattr(self.pipeline, "prepare"):
            self.pipeline.prepare(self.store)
        self.intake = Intake(settings, RegistrySink(self.store, settings.daemon.max_attempts))

    def submit(self, bundle: Path) -> str:
        """Move a bundle folder into the inbox, take it in, run its job; the request id."""
        bundle.rename(self.intake.inbox.dir("new") / bundle.name)
        rejected = self.intake.stats.rejected
        if self.intake.scan_once() != 1 or self.intake.stats.rejected > rejected:
            raise RuntimeError(f"intake did not accept {bundle.name} (see inbox/failed/)")
        request_id = self.intake.stats.accepted_ids[-1]
        if not self.work():
            raise RuntimeError(f"no job ran for request {request_id}")
        return request_id

    def work(self) -> bool:
        """Run the worker once (a queued job, e.g. a revert); False if the queue was empty."""
        from unlearnd.daemon.worker import Worker

        return Worker(self.settings, self.store, self.pipeline).run_one()

    def version(self, version_id: int | None = None):
        """A version as served (default: live), through the same loader as `generate`."""
        from unlearnd.serving import Deployment, load_version

        chosen = version_id if version_id is not None else self.store.get_alias("live")
        return load_version(Deployment(self.settings), self.store, chosen)
