"""Intake throughput: files per minute from the drop into inbox/new to a queued job.

Runs the real intake thread (watchdog + rescans, default stability checks) against a real
SQLite registry, drops N distinct valid requests the Maildir way (write to tmp/, rename into
new/), some as .tar.gz bundles with an image, and waits until every one has a queued job.

    .venv/bin/python bench/intake_bench.py [--files 2000] [--out bench/results/intake.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

from unlearnd.config import Settings
from unlearnd.daemon.intake import Intake
from unlearnd.daemon.sink import RegistrySink
from unlearnd.daemon.validate import default_method_check
from unlearnd.registry import open_registry


def request(i: int, image: str | None = None) -> dict:
    return {
        "schema": "unlearnd.request/v1",
        "kind": "entity",
        "target": {"name": f"Person {i}", "description": "benchmark target"},
        "forget": [{"image": image, "question": f"Who is person {i}?", "answer": f"P{i}"}],
        "method": "ga",
        "requested_by": "bench",
    }


def write_item(tmp: Path, i: int, bundle: bool) -> Path:
    if not bundle:
        path = tmp / f"r{i}.json"
        path.write_text(json.dumps(request(i)))
        return path
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (i % 256, (i // 256) % 256, 7)).save(buf, "PNG")
    path = tmp / f"r{i}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, data in (
            ("request.json", json.dumps(request(i, "face.png")).encode()),
            ("face.png", buf.getvalue()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def run(files: int, bundle_every: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="unlearnd-intake-bench-"))
    settings = Settings(workdir=workdir)
    store = open_registry(settings)
    default_method_check("ga", {})  # import the methods (torch) before the clock starts
    intake = Intake(settings, RegistrySink(store))
    intake.start()
    time.sleep(0.5)
    tmp, new = intake.inbox.dir("tmp"), intake.inbox.dir("new")
    dropped: dict[str, float] = {}
    start = time.monotonic()
    for i in range(files):
        path = write_item(tmp, i, bundle_every > 0 and i % bundle_every == 0)
        os.rename(path, new / path.name)
        dropped[path.name] = time.time()
    drop_s = time.monotonic() - start
    # The sink enqueues the job before intake counts the file as accepted.
    while intake.stats.accepted + intake.stats.rejected < files:
        if time.monotonic() - start > 600:
            raise SystemExit("not every file was queued within 10 minutes")
        time.sleep(0.02)
    elapsed = time.monotonic() - start
    intake.stop()
    queued = len(store.list_jobs(state="queued"))
    assert queued == files, f"{queued} jobs queued for {files} files"
    done = intake.inbox.dir("done")
    latencies = []
    for name, t in dropped.items():
        note = json.loads((done / f"{name}.intake.json").read_text())
        accepted = datetime.fromisoformat(note["accepted_at"]).timestamp()
        latencies.append(accepted - t)
    latencies.sort()
    assert intake.stats.rejected == 0 and intake.stats.accepted == files
    return {
        "files_per_min": round(files / elapsed * 60),
        "files": files,
        "bundles": sum(1 for n in dropped if n.endswith(".tar.gz")),
        "seconds": round(elapsed, 2),
        "drop_seconds": round(drop_s, 2),
        "latency_p50_s": round(statistics.median(latencies), 3),
        "latency_p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3),
        "stable_checks": settings.daemon.stable_checks,
        "stable_interval_s": settings.daemon.stable_interval_s,
        "database": "sqlite",
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).date().isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--bundle-every", type=int, default=10, help="every Nth file a .tar.gz")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results/intake.json")
    args = parser.parse_args()
    result = run(args.files, args.bundle_every)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
