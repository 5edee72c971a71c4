"""`unlearnd serve`: intake + worker + housekeeping in one process until SIGTERM/SIGINT.

Shutdown order: stop taking new work (intake, scheduler), let the worker finish its current
step and release (or commit) its job, then close the store.
"""

from __future__ import annotations

import logging
import signal
import threading

from unlearnd.config import Settings
from unlearnd.daemon.intake import Intake
from unlearnd.daemon.pipeline import Pipeline
from unlearnd.daemon.sink import RegistrySink
from unlearnd.daemon.worker import Worker
from unlearnd.registry import RegistryStore, open_registry

log = logging.getLogger("unlearnd.daemon.service")


class Service:
    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline | None,
        *,
        intake: bool = True,
        worker: bool = True,
        store: RegistryStore | None = None,
    ):
        from unlearnd.daemon.housekeeping import build_scheduler

        if worker and pipeline is None:
            raise ValueError("a worker needs a pipeline")
        self.settings = settings
        self.store = store if store is not None else open_registry(settings)
        self.stopped = threading.Event()
        self.intake = (
            Intake(settings, RegistrySink(self.store, settings.daemon.max_attempts))
            if intake
            else None
        )
        self.worker = Worker(settings, self.store, pipeline) if worker else None
        prepare = getattr(pipeline, "prepare", None)
        if worker and prepare is not None:
            prepare(self.store)  # e.g. record the base model as the first version
        reevaluate = getattr(pipeline, "reevaluate", None)
        self.scheduler = build_scheduler(
            settings,
            self.store,
            rescan=self.intake.request_rescan if self.intake else None,
            reevaluate=reevaluate,
        )

    def install_signal_handlers(self) -> None:
        def handle(signum, frame) -> None:  # noqa: ANN001 - signal's signature
            log.info("received %s: stopping after the current step", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def run(self) -> None:
        """Block until stop(): the worker runs in this thread, the rest in the background."""
        log.info(
            "unlearnd serving: inbox %s, registry %s",
            self.settings.inbox,
            _redact(self.settings.db_url),
        )
        if self.intake is not None:
            self.intake.start()
        self.scheduler.start()
        try:
            if self.worker is not None:
                self.worker.run_forever()
            else:
                while not self.stopped.wait(0.5):  # short waits: signal handlers run between
                    pass
        finally:
            self.shutdown()

    def stop(self) -> None:
        self.stopped.set()
        if self.worker is not None:
            self.worker.stop()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if self.intake is not None:
            self.intake.stop()
        close = getattr(self.store, "close", None)
        if close is not None:
            close()
        log.info("unlearnd stopped")


def _redact(url: str) -> str:
    """The database URL without its password, for logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url
