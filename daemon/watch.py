"""watchdog as a hint: any event in inbox/new wakes the intake, which then rescans.

The events are never trusted to be complete (inotify overflows, network file systems see
nothing), so the intake also rescans on a timer. The observer thread is supervised: if it
dies it is started again, and a handler never lets an exception escape into watchdog.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

log = logging.getLogger("unlearnd.daemon.watch")


class _Hint(FileSystemEventHandler):
    def __init__(self, on_hint: Callable[[], None]):
        self.on_hint = on_hint

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self.on_hint()
        except Exception:  # noqa: BLE001 - an escaping exception would kill the observer
            log.exception("inbox hint handler failed; the periodic rescan still runs")


class InboxWatcher:
    def __init__(
        self,
        folder: Path,
        on_hint: Callable[[], None],
        polling: bool = False,
        poll_interval_s: float = 1.0,
    ):
        self.folder = Path(folder)
        self.on_hint = on_hint
        self.polling = polling
        self.poll_interval_s = poll_interval_s
        self.observer = None
        self.restarts = 0

    def _new_observer(self):
        if self.polling:
            return PollingObserver(timeout=self.poll_interval_s)
        return Observer()

    def start(self) -> None:
        observer = self._new_observer()
        observer.schedule(_Hint(self.on_hint), str(self.folder), recursive=False)
        observer.daemon = True
        observer.start()
        self.observer = observer

    def ensure_alive(self) -> bool:
        """Restart a dead observer; True if it had to be restarted."""
        if self.observer is not None and self.observer.is_alive():
            return False
        if self.observer is not None:
            log.warning("inbox observer thread died; restarting it")
            self.restarts += 1
        try:
            self.start()
        except Exception:  # noqa: BLE001 - e.g. inotify watch limit: rescans still cover us
            log.exception("could not start the inbox observer; relying on rescans")
            self.observer = None
        return True

    def stop(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            if self.observer.is_alive():
                self.observer.join(timeout=5)
            self.observer = None
