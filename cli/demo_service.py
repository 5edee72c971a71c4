"""What both demos share: the service in a thread, a bundle submitted and watched to its end,
tables printed or kept for --json."""

from __future__ import annotations

import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from unlearnd.cli.common import console, err_console, fail, print_table
from unlearnd.cli.daemon_cmds import TERMINAL, watch_request


def tables(as_json: bool):
    """(table, shown): print a table, or under --json keep it in `shown` by name."""
    shown: dict = {}

    def table(name: str, rows: list, columns: tuple, title: str) -> None:
        if as_json:
            shown[name] = [dict(zip(columns, row, strict=True)) for row in rows]
        else:
            print_table(rows, columns, title=title)

    return table, shown


@contextmanager
def running(s):
    """The service (intake + worker) in a thread of this process; yields its store."""
    from unlearnd.daemon.service import Service
    from unlearnd.daemon.unlearn import UnlearningPipeline

    service = Service(s, UnlearningPipeline(s))
    thread = threading.Thread(target=service.run, name="unlearnd-service", daemon=True)
    thread.start()
    try:
        yield service.store
    finally:
        service.stop()
        thread.join(timeout=60)


def submit(s, store, bundle: Path, timeout_s: float, as_json: bool, what: str) -> str:
    """Drop `bundle` into the inbox, wait for intake, watch the job to its end; its id."""
    known = {r.request_id for r in store.list_requests(limit=1000)}  # earlier demo runs
    staged = s.inbox / "tmp" / bundle.name
    shutil.move(str(bundle), staged)
    staged.rename(s.inbox / "new" / bundle.name)  # Maildir: tmp/ then rename into new/
    (err_console if as_json else console).print(f"submitted a request to forget [bold]{what}[/]")
    request_id = None
    deadline = time.monotonic() + timeout_s
    while request_id is None and time.monotonic() < deadline:  # intake takes the bundle
        found = [r for r in store.list_requests(limit=20)
                 if r.source_name == bundle.name and r.request_id not in known]  # fmt: skip
        request_id = found[0].request_id if found else None
        time.sleep(0.2)
    if request_id is None:
        fail(f"the inbox did not take the request within {timeout_s:.0f} s")
    if watch_request(store, request_id, timeout_s, show=not as_json) not in TERMINAL:
        fail(f"the request did not finish within {timeout_s:.0f} s")
    return request_id
