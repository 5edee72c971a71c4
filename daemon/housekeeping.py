"""Housekeeping on APScheduler 3.x: inbox rescans, lease reaping, artifact GC, re-evaluation.

Each task runs at most once at a time (a slow GC does not pile up) and never raises into
the scheduler: a failing task is logged and tried again at its next time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from unlearnd.config import Settings
from unlearnd.registry import RegistryStore

log = logging.getLogger("unlearnd.daemon.housekeeping")


def _guarded(name: str, fn: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        try:
            result = fn()
            if result:
                log.info("%s: %s", name, result, extra={"task": name})
        except Exception:  # noqa: BLE001 - the next run tries again
            log.exception("housekeeping task %s failed", name)

    return run


def build_scheduler(
    settings: Settings,
    store: RegistryStore,
    rescan: Callable[[], None] | None = None,
    reevaluate: Callable[[Any], Any] | None = None,
    gc_min_age_s: float | None = None,
) -> BackgroundScheduler:
    """A started-later scheduler with the service's periodic tasks.

    GC spares blobs younger than `gc_min_age_s` (the store's default when None): a worker
    writes its artifacts before the commit that references them.
    """
    d = settings.daemon
    scheduler = BackgroundScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
        timezone="UTC",
    )

    def every(name: str, seconds: float, fn: Callable[[], Any]) -> None:
        scheduler.add_job(_guarded(name, fn), "interval", seconds=seconds, id=name, name=name)

    if rescan is not None:
        every("rescan", d.rescan_interval_s, rescan)
    every("reap_leases", d.reap_interval_s, lambda: store.reap_expired(d.max_attempts))
    gc_age = {} if gc_min_age_s is None else {"min_age_s": gc_min_age_s}
    every("artifact_gc", d.gc_interval_s, lambda: store.gc(**gc_age))
    if reevaluate is not None and d.reevaluate_interval_s > 0:
        every("reevaluate", d.reevaluate_interval_s, lambda: reevaluate(store))
    return scheduler
