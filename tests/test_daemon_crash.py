"""A real `unlearnd serve` process killed with SIGKILL at named points, then restarted:
every request ends committed exactly once, and no version exists without its request."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_intake import GOOD

from unlearnd.config import Settings
from unlearnd.daemon.inbox import submit
from unlearnd.registry import open_registry

PIPELINE = "local_daemon:FingerprintPipeline"  # tests/local_daemon.py, on PYTHONPATH below
TESTS = str(Path(__file__).resolve().parent)


class Served:
    """A `unlearnd serve` subprocess whose output is collected by a reader thread."""

    def __init__(self, workdir: Path, *args: str, pipeline: str = PIPELINE, **env: str):
        clean = {k: v for k, v in os.environ.items() if not k.startswith("UNLEARND_")}
        clean.update(
            {
                "UNLEARND_WORKDIR": str(workdir),
                "UNLEARND_DAEMON__STABLE_CHECKS": "1",
                "UNLEARND_DAEMON__RESCAN_INTERVAL_S": "0.3",
                "UNLEARND_DAEMON__LEASE_S": "4",  # margin for a loaded 2-core machine
                "UNLEARND_DAEMON__HEARTBEAT_S": "0.5",
                "UNLEARND_DAEMON__REAP_INTERVAL_S": "0.3",
                "UNLEARND_TEST_STEP_S": "0.05",
                "PYTHONPATH": os.pathsep.join(filter(None, [TESTS, os.environ.get("PYTHONPATH")])),
                **env,
            }
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "unlearnd.cli.main", "serve", "--pipeline", pipeline, *args],
            env=clean,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for_line(self, text: str, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(text in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} in the output:\n{''.join(self.lines)[-3000:]}")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(10)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self._reader.join(10)  # the last lines are still in the pipe when it exits
        return code


def requests_for(n: int) -> list[dict]:
    return [
        {**GOOD, "target": {"name": f"Person {i}"}, "gate": {"max_forget_accuracy": 1.0}}
        for i in range(n)
    ]


def wait_all_committed(store, n: int, served: Served, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        states = [r.state for r in store.list_requests(limit=1000)]
        if len(states) == n and set(states) == {"committed"}:
            return
        time.sleep(0.2)
    raise AssertionError(f"states {states}; output:\n{''.join(served.lines)[-3000:]}")


def check_exactly_once(store, n: int) -> None:
    versions = store.list_versions(limit=1000)
    request_ids = [v.request_id for v in versions]
    assert len(versions) == n and len(set(request_ids)) == n  # one version per request
    # The live chain applies each request once: walk it from the head to the root.
    head = store.get_version(store.get_alias("live"))
    assert sorted(head.manifest["artifacts"]) == sorted(request_ids)
    chain, version = [], head
    while version is not None:
        chain.append(version.request_id)
        version = store.get_version(version.parent_id) if version.parent_id else None
    assert sorted(chain) == sorted(request_ids)
    for sha in head.manifest["artifacts"].values():
        assert store.artifacts.load_tensors(sha)["fingerprint"].shape[1] == 8


POINTS = ["after_claim", "during_training", "after_artifact", "before_alias"]


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_a_named_point_then_restart(tmp_path, point):
    workdir = tmp_path / "w"
    settings = Settings(workdir=workdir)
    store = open_registry(settings)
    for i, doc in enumerate(requests_for(3)):
        src = tmp_path / f"r{i}.json"
        src.write_text(json.dumps(doc))
        submit(src, settings.inbox)

    first = Served(workdir, UNLEARND_TEST_PAUSE_AT=point)
    first.wait_for_line(f"UNLEARND-PAUSED {point}")
    first.kill9()
    (running,) = store.list_jobs(state="running")  # the killed worker's job, still leased
    assert store.get_request(running.request_id).state in ("running", "evaluating")
    assert all(v.request_id != running.request_id for v in store.list_versions())

    second = Served(workdir)
    wait_all_committed(store, 3, second)
    assert second.terminate() == 0
    check_exactly_once(store, 3)
    retried = [j for j in store.list_jobs() if j.request_id == running.request_id]
    assert [j.attempts for j in retried] == [2]  # the killed attempt, then the one that committed
    assert not list(settings.inbox.joinpath("processing").iterdir())


@pytest.mark.slow
def test_sigterm_stops_serve_cleanly_with_json_logs(tmp_path):
    workdir = tmp_path / "w"
    settings = Settings(workdir=workdir)
    store = open_registry(settings)
    src = tmp_path / "r.json"
    src.write_text(json.dumps(requests_for(1)[0]))
    submit(src, settings.inbox)
    served = Served(workdir, UNLEARND_LOG_FORMAT="json")
    wait_all_committed(store, 1, served)
    assert served.terminate() == 0
    logs = [json.loads(line) for line in served.lines if line.startswith("{")]
    assert any(e["msg"].startswith("accepted ") and e.get("request_id") for e in logs)
    assert any("committed version" in e["msg"] and e.get("version_id") for e in logs)
    assert logs[-1]["msg"] == "unlearnd stopped"


@pytest.mark.slow
def test_sigterm_during_training_releases_the_job(tmp_path):
    workdir = tmp_path / "w"
    settings = Settings(workdir=workdir)
    store = open_registry(settings)
    src = tmp_path / "r.json"
    src.write_text(json.dumps(requests_for(1)[0]))
    submit(src, settings.inbox)
    served = Served(workdir, UNLEARND_TEST_STEP_S="1.0")  # 4 steps of 1 s
    served.wait_for_line(": training")  # the worker log line "job 1: training"
    assert served.terminate() == 0
    assert any("released: service stopping" in line for line in served.lines), served.lines
    (job,) = store.list_jobs()
    assert job.state == "queued" and job.attempts == 0  # the stopped attempt does not count
    assert store.list_versions() == []
