"""Intake: take items from inbox/new, validate them, hand accepted requests to a sink.

Every item claimed ends in done/ (accepted, or a duplicate of an accepted request) or in
failed/ with a reason file; if the sink (the registry) fails, the item goes back to new/ and
is tried again later. Nothing here lets an exception stop the intake loop.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from unlearnd.config import Settings
from unlearnd.daemon.bundle import read_item
from unlearnd.daemon.inbox import Inbox, Signature, now_iso, signature
from unlearnd.daemon.request_store import requests_root, save_request
from unlearnd.daemon.schema import FieldError, RequestError
from unlearnd.daemon.validate import Accepted, MethodCheck, accept, default_method_check
from unlearnd.daemon.watch import InboxWatcher

log = logging.getLogger("unlearnd.daemon.intake")

MAX_SINK_ATTEMPTS = 5  # then the item is failed with the sink's error, not retried forever


class RequestSink(Protocol):
    def register(self, accepted: Accepted, source_name: str) -> tuple[str, bool]:
        """Record the request (idempotent on content hash); (request_id, newly created)."""

    def rejected(self, source_name: str, errors: list[FieldError]) -> None:
        """Note a rejected input (audit); must not raise for the intake to go on."""


@dataclass
class IntakeStats:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    retried: int = 0
    errors: int = 0
    accepted_ids: list[str] = field(default_factory=list)


@dataclass
class _Look:
    sig: Signature
    count: int
    first_at: float


class Intake:
    def __init__(
        self,
        settings: Settings,
        sink: RequestSink,
        method_check: MethodCheck | None = default_method_check,
    ):
        self.settings = settings
        self.sink = sink
        self.method_check = method_check
        self.inbox = Inbox(settings.inbox)
        self.requests_root = requests_root(settings)
        self.stats = IntakeStats()
        self.wake = threading.Event()
        self._looks: dict[str, _Look] = {}
        self._sink_failures: dict[str, int] = {}
        self._lock = threading.Lock()  # scan_once may be called by the loop and a rescan job
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._deployment = None  # read on the first request that needs it (pools, family)
        self.watcher = InboxWatcher(
            self.inbox.dir("new"),
            self.wake.set,
            polling=settings.daemon.polling_observer,
            poll_interval_s=min(1.0, settings.daemon.rescan_interval_s),
        )

    # --- one pass ---------------------------------------------------------------------
    def recover(self) -> int:
        """Take again what a crashed intake left in processing/ (one intake per inbox)."""
        done = 0
        for claimed in self.inbox.leftovers():
            log.info("recovering %s from processing/", claimed.name)
            self._handle(claimed, claimed.name)
            done += 1
        return done

    def scan_once(self) -> int:
        """Look at new/ once; take the items whose size and mtime held still long enough."""
        with self._lock:
            d = self.settings.daemon
            now = time.monotonic()
            names = self.inbox.waiting()
            for gone in set(self._looks) - set(names):
                del self._looks[gone]
            taken = 0
            for name in names:
                sig = signature(self.inbox.dir("new") / name)
                if sig is None:
                    continue
                look = self._looks.get(name)
                if look is None or look.sig != sig:
                    look = _Look(sig, 1, now)
                else:
                    look.count += 1
                self._looks[name] = look
                waited = now - look.first_at >= d.stable_interval_s * (d.stable_checks - 1)
                if look.count < d.stable_checks or not waited:
                    continue
                del self._looks[name]
                claimed = self.inbox.claim(name)
                if claimed is not None:  # None: another intake took it
                    self._handle(claimed, name)
                    taken += 1
            return taken

    @property
    def pending(self) -> int:
        return len(self._looks)

    # --- one item ---------------------------------------------------------------------
    def _handle(self, claimed: Path, original: str) -> None:
        try:
            self._process(claimed, original)
        except Exception as e:  # noqa: BLE001 - the loop must survive anything one item does
            self.stats.errors += 1
            log.exception("intake of %s failed unexpectedly", original)
            if claimed.exists() or claimed.is_symlink():  # never leave it hidden in processing/
                msg = f"internal error while taking this item: {type(e).__name__}: {e}"
                try:
                    self._reject(claimed, original, [FieldError("", msg)])
                except Exception:  # noqa: BLE001 - e.g. the disk is full: recovered at restart
                    log.exception("could not move %s to failed/", original)

    def _process(self, claimed: Path, original: str) -> None:
        limits = self.settings.limits
        try:
            contents = read_item(claimed, limits)
            accepted = accept(
                contents,
                limits,
                self.settings.daemon.default_method,
                self.method_check,
                self.settings.methods,
            )
            misfits = self._misfits(accepted)
            if misfits:
                raise RequestError(misfits)
        except RequestError as e:
            self._reject(claimed, original, e.errors)
            return
        except (MemoryError, RecursionError, OSError, ValueError) as e:
            self._reject(
                claimed, original, [FieldError("", f"unreadable: {type(e).__name__}: {e}")]
            )
            return
        try:
            save_request(accepted, self.requests_root)
            request_id, created = self.sink.register(accepted, original)
        except RequestError as e:  # e.g. the id is taken by a different request
            self._reject(claimed, original, e.errors)
            return
        except Exception as e:  # noqa: BLE001 - our side failed, not the input: try again later
            self._sink_failed(claimed, original, e)
            return
        self._sink_failures.pop(original, None)
        note = {
            "file": original,
            "request_id": request_id,
            "content_sha256": accepted.content_sha256,
            "duplicate": not created,
            "accepted_at": now_iso(),
        }
        self.inbox.finish_done(claimed, note)
        if created:
            self.stats.accepted += 1
            self.stats.accepted_ids.append(request_id)
            log.info(
                "accepted %s as request %s",
                original,
                request_id,
                extra={"request_id": request_id, "file": original},
            )
        else:
            self.stats.duplicates += 1
            log.info(
                "%s is a duplicate of request %s",
                original,
                request_id,
                extra={"request_id": request_id, "file": original},
            )

    def _misfits(self, accepted: Accepted) -> list[FieldError]:
        """What the deployment cannot take, known without loading its model: a kind or a
        method its family does not serve, pools too small to both score and train (unless
        the request brings its own retain samples). A model folder that cannot be read is
        the job's to report."""
        from unlearnd.daemon.job import RequestMismatch, check_fits, has_images
        from unlearnd.methods import UnknownMethod, get_method
        from unlearnd.models import ModelLoadError
        from unlearnd.serving import Deployment, DeploymentError

        if self._deployment is None:
            self._deployment = Deployment(self.settings)
        request = accepted.request
        try:
            family = self._deployment.family
            # A request that brings its own retain samples trains against those.
            pools = [] if request.retain else self._deployment.pool_problems()
            errors = [FieldError("model", p) for p in pools]
        except (DeploymentError, ModelLoadError, OSError):
            return []
        try:
            check_fits(request.kind, get_method(request.method), family, has_images(request))
        except RequestMismatch as e:
            errors.append(FieldError("kind", str(e)))
        except UnknownMethod:
            pass  # the method check names it
        return errors

    def _reject(self, claimed: Path, original: str, errors: list[FieldError]) -> None:
        self.inbox.finish_failed(claimed, errors, original)
        self.stats.rejected += 1
        log.warning(
            "rejected %s: %s",
            original,
            "; ".join(map(str, errors))[:2000],
            extra={"file": original},
        )
        try:
            self.sink.rejected(original, errors)
        except Exception:  # noqa: BLE001 - the reason file is the record; the audit is a copy
            log.exception("could not record the rejection of %s", original)

    def _sink_failed(self, claimed: Path, original: str, error: Exception) -> None:
        failures = self._sink_failures.get(original, 0) + 1
        self._sink_failures[original] = failures
        log.error("registering %s failed (%d/%d): %s", original, failures, MAX_SINK_ATTEMPTS, error)
        if failures >= MAX_SINK_ATTEMPTS:
            self._sink_failures.pop(original, None)
            msg = f"could not be registered after {failures} tries: {error}"
            self._reject(claimed, original, [FieldError("", msg)])
        else:
            self.stats.retried += 1
            self.inbox.give_back(claimed)

    # --- the loop ---------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="unlearnd-intake", daemon=True)
        self._thread.start()

    def request_rescan(self) -> None:
        self.wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.watcher.stop()

    def _run(self) -> None:
        self.watcher.ensure_alive()
        self._guarded(self.recover)
        while not self._stop.is_set():
            self.wake.clear()
            self.watcher.ensure_alive()
            self._guarded(self.scan_once)
            d = self.settings.daemon
            self.wake.wait(d.stable_interval_s if self._looks else d.rescan_interval_s)

    def _guarded(self, fn) -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - e.g. the inbox folder vanished: log, go on
            self.stats.errors += 1
            log.exception("intake pass failed")
            self._stop.wait(0.5)  # no hot loop if the failure repeats
