"""/metrics (Prometheus text format), /healthz and /readyz.

The numbers are read from the registry at scrape time, so every API replica reports the
whole cluster's queue and versions and the workers need no metrics port of their own. The
collector has its own CollectorRegistry: nothing global, two apps in one process (tests)
do not clash.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)

from unlearnd import __version__
from unlearnd.api.state import ApiState, state
from unlearnd.evaluation.behaviour import ANSWERS, BEHAVIOURS
from unlearnd.registry import RegistryStore
from unlearnd.registry.records import JOB_KINDS, JOB_STATES

log = logging.getLogger("unlearnd.api.metrics")
router = APIRouter(tags=["operations"])

# Job durations run from seconds (small requests) to hours (large models): wide buckets.
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)
PAGE = 1000  # versions read per query when counting gate results


def _histogram(name: str, doc: str, by_label: dict[str, list[float]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["state"])
    for label, values in sorted(by_label.items()):
        buckets = [(str(b), float(sum(v <= b for v in values))) for b in DURATION_BUCKETS]
        buckets.append(("+Inf", float(len(values))))
        family.add_metric([label], buckets, sum_value=sum(values))
    return family


def _all_versions(store: RegistryStore):
    """Every version, newest first, a page at a time (keyset paging: no offset scans)."""
    before = None
    while True:
        page = store.list_versions(limit=PAGE, before=before)
        yield from page
        if len(page) < PAGE:
            return
        before = page[-1].id


class RegistryCollector:
    def __init__(self, api: ApiState):
        self.api = api

    def collect(self):
        up = GaugeMetricFamily("unlearnd_registry_up", "1 if the registry answered this scrape")
        try:
            families = list(self._from_registry(self.api.store()))
        except Exception as e:  # noqa: BLE001 - a scrape must still answer when the DB is down
            log.warning("metrics: registry unavailable: %s", e)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _from_registry(self, store: RegistryStore):
        # One query for every job metric. The store has no aggregate query (yet); at a few
        # thousand jobs this is milliseconds.
        jobs = store.list_jobs()
        by_state = Counter(j.state for j in jobs)
        states = GaugeMetricFamily("unlearnd_jobs", "Jobs by state", labels=["state"])
        for name in JOB_STATES:
            states.add_metric([name], by_state.get(name, 0))
        yield states
        doc = "Jobs by kind (a deletion, or a revert that replays) and state"
        kinds = GaugeMetricFamily("unlearnd_jobs_by_kind", doc, labels=["kind", "state"])
        by_kind = Counter((j.kind, j.state) for j in jobs)
        for kind in JOB_KINDS:
            for name in JOB_STATES:
                kinds.add_metric([kind, name], by_kind.get((kind, name), 0))
        yield kinds
        yield GaugeMetricFamily(
            "unlearnd_queue_depth", "Jobs waiting for a worker", value=by_state.get("queued", 0)
        )
        durations: dict[str, list[float]] = {"done": [], "failed": []}
        for j in jobs:
            if j.state in ("done", "failed") and j.started_at and j.finished_at:
                seconds = (j.finished_at - j.started_at).total_seconds()
                durations[j.state].append(seconds)
        yield _histogram(
            "unlearnd_job_duration_seconds",
            "Duration of a finished job's last attempt, claim to finish",
            durations,
        )
        gate = CounterMetricFamily(
            "unlearnd_gate_results", "Candidate versions by gate outcome", labels=["result"]
        )
        outcomes = Counter(
            "passed" if v.metrics["gate"].get("passed") else "failed"
            for v in _all_versions(store)
            if isinstance((v.metrics or {}).get("gate"), dict)
        )
        for result in ("passed", "failed"):
            gate.add_metric([result], outcomes.get(result, 0))
        yield gate
        aliases = store.list_aliases()
        live = GaugeMetricFamily(
            "unlearnd_live_version", "The version the live alias points to (0: not set)"
        )
        live.add_metric([], aliases.get("live", 0))
        yield live
        per_alias = GaugeMetricFamily(
            "unlearnd_alias_version", "The version each alias points to", labels=["alias"]
        )
        for name, version_id in sorted(aliases.items()):
            per_alias.add_metric([name], version_id)
        yield per_alias
        answers = GaugeMetricFamily(
            "unlearnd_alias_answers",
            "Of the doors' answers of the version each alias points to, the share that is "
            "refused, degenerate, hallucinated or informative",
            labels=["alias", "behaviour"],
        )
        for name, version_id in sorted(aliases.items()):
            metrics = store.get_version(version_id).metrics or {}
            for kind in BEHAVIOURS:
                if isinstance(metrics.get(f"{ANSWERS}_{kind}"), int | float):
                    answers.add_metric([name, kind], metrics[f"{ANSWERS}_{kind}"])
        yield answers


class GpuCollector:
    """GPU memory of this process (allocated, reserved) and of its devices (used by anyone,
    total). Only once this process has loaded torch (a model route ran) and may use CUDA:
    asking earlier would import torch (seconds) and create a CUDA context just to report."""

    def __init__(self, api: ApiState):
        self.api = api

    def collect(self):
        torch = sys.modules.get("torch")
        if torch is None or self.api.settings.device == "cpu":
            return

        if not torch.cuda.is_available():
            return
        family = GaugeMetricFamily(
            "unlearnd_gpu_memory_bytes", "GPU memory", labels=["device", "kind"]
        )
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            family.add_metric([str(i), "allocated"], torch.cuda.memory_allocated(i))
            family.add_metric([str(i), "reserved"], torch.cuda.memory_reserved(i))
            family.add_metric([str(i), "device_used"], total - free)
            family.add_metric([str(i), "device_total"], total)
        yield family


class BuildInfo:
    def collect(self):
        info = InfoMetricFamily("unlearnd_build", "The unlearnd version serving this API")
        info.add_metric([], {"version": __version__})
        yield info


def build_registry(api: ApiState) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    for collector in (RegistryCollector(api), GpuCollector(api), BuildInfo()):
        registry.register(collector)
    return registry


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The registry answers and the inbox is writable",
    responses={503: {"description": "Not ready: the registry or the inbox is unavailable."}},
)
def readyz(request: Request) -> Any:
    api = state(request)
    try:
        live = api.store().get_alias("live")
    except Exception as e:  # noqa: BLE001 - any failure means "not ready", with its reason
        return JSONResponse({"error": f"registry unavailable: {e}"}, status_code=503)
    new = api.settings.inbox / "new"
    if not os.access(new, os.W_OK):
        return JSONResponse({"error": f"inbox not writable: {new}"}, status_code=503)
    return {"status": "ready", "live": live}
