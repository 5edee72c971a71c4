"""The interface between the worker and the work: `Pipeline.run(job, request, store, progress)`.

A pipeline turns one request into the kwargs of a new model version (its artifacts already in
the store) and says whether the candidate passed its gate. The worker owns everything around
it: the lease, heartbeats, the final commit, re-basing when the alias moved, retries.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from unlearnd.config import Settings
from unlearnd.daemon.schema import RequestV1
from unlearnd.registry import RegistryStore

# The pipeline `unlearnd serve` runs without --pipeline ("module:factory").
DEFAULT_PIPELINE = "unlearnd.daemon.unlearn:UnlearningPipeline"
PAUSE_ENV = "UNLEARND_TEST_PAUSE_AT"  # crash tests: pause (forever) at this named checkpoint


@dataclass(frozen=True)
class WorkItem:
    """What a pipeline gets to know about the request it works on."""

    request_id: str
    request: RequestV1  # validated, forget/retain resolved, method filled in
    folder: Path  # images, relative paths as in request.forget[i].image
    parent_version_id: int | None  # the alias head when this run started
    settings: Settings


@dataclass
class PipelineResult:
    # create_version kwargs except parent_id, request_id and status, which the worker sets:
    # base_fingerprint, kind, manifest, method, params, metrics, timings
    version: dict[str, Any]
    passed_gate: bool
    summary: dict[str, Any] = field(default_factory=dict)
    # A refuser's expert and concept rows, recorded by the commit (RegistryStore.commit_result)
    routing: dict[str, Any] | None = None


class Interrupted(Exception):
    """The service is stopping: the worker releases the lease at this step boundary."""


class LeaseLost(Exception):
    """Our lease expired and may be someone else's now: stop without committing."""


class Permanent(Exception):
    """A failure no retry can fix (the request does not fit the deployment, a revert that no
    longer applies): the job fails at once, with this message."""


class Progress(Protocol):
    def stage(self, name: str) -> None:
        """Entering a stage ("training", "evaluating"): shown in `unlearnd request show`."""

    def step(self, done: int, total: int, **metrics: float) -> None:
        """One unit of work finished (e.g. an optimizer step)."""

    def checkpoint(self, name: str) -> None:
        """A named point where stopping is safe (e.g. "after_artifact")."""


class Pipeline(Protocol):
    def run(
        self, job: Any, request: WorkItem, store: RegistryStore, progress: Progress
    ) -> PipelineResult:
        """Do the work; raise to fail the job (it is retried up to the attempt limit)."""

    # Optional: `revert(job, request, store, progress)` runs a revert job (job.kind "revert",
    # daemon/revert.py); a pipeline without it fails such jobs with a message saying so.


def pause_point(name: str) -> None:
    """Crash tests only: when UNLEARND_TEST_PAUSE_AT names this point, say so and wait forever.

    The test sees the marker line on stdout and kills the process with SIGKILL right here.
    """
    if os.environ.get(PAUSE_ENV) == name:
        print(f"UNLEARND-PAUSED {name}", flush=True)
        sys.stdout.flush()
        while True:
            time.sleep(3600)


def load_pipeline(spec: str, settings: Settings) -> Pipeline:
    """`module:attribute`: a Pipeline class or factory, called with the settings."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"pipeline {spec!r}: expected 'module:attribute'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"pipeline {spec!r} cannot be loaded: {e}") from None
    return factory(settings)
