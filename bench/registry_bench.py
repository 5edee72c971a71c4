"""Registry latency with many versions on SQLite: rollback, list, show, history.

Builds a registry with N versions in one chain (bulk-inserted: one row per deletion, a
manifest of 20 experts, one `live` alias event per version), then times the store's real
calls. Targets (issue 4): rollback <= 1 s at 1e4 versions; list/show p99 <= 10 ms at 1e5.

    .venv/bin/python bench/registry_bench.py [--sizes 10000 100000] [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from unlearnd.registry import open_store
from unlearnd.registry import tables as t

EXPERTS = 20
REPEATS = 300


def fill(store, n: int) -> None:
    """n versions, each the child of the one before, and the live alias at the newest."""
    start = datetime.now(UTC) - timedelta(days=30)
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(EXPERTS * 4)]
    versions, events = [], []
    for i in range(1, n + 1):
        experts = {f"e{k:02d}": shas[(i + k) % len(shas)] for k in range(EXPERTS)}
        at = start + timedelta(seconds=i)
        versions.append(
            {
                "id": i,
                "parent_id": i - 1 or None,
                "kind": "deletion" if i > 1 else "base",
                "base_fingerprint": "bench-base",
                "manifest": {"experts": experts, "artifacts": {}, "concept_index": shas[i % 7]},
                "method": "refuser",
                "params": {"lr": 1e-4, "steps": 40},
                "metrics": {"forget_acc": 0.05, "retain_ratio": 0.97},
                "timings": {"train_s": 12.5},
                "status": "committed",
                "created_at": at,
            }
        )
        events.append(
            {
                "alias": "live",
                "from_version": i - 1 or None,
                "to_version": i,
                "who": "bench",
                "why": f"request {i}",
                "at": at,
            }
        )
    with store._write() as conn:
        for lo in range(0, n, 5000):  # executemany in chunks
            conn.execute(insert(t.ModelVersion.__table__), versions[lo : lo + 5000])
        for lo in range(0, n, 5000):
            conn.execute(insert(t.AliasEventRow.__table__), events[lo : lo + 5000])
        conn.execute(insert(t.Alias.__table__).values(name="live", version_id=n, updated_at=start))


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        out.append(time.perf_counter() - began)
    return out


def summary_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(p99 * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


def bench(n: int, workdir: Path) -> dict:
    url = f"sqlite:///{workdir / f'registry_{n}.db'}"
    store = open_store(url, workdir / "artifacts")
    began = time.perf_counter()
    fill(store, n)
    fill_s = time.perf_counter() - began
    rng = random.Random(n)

    def rollback():
        target = rng.randrange(1, n)
        if target == store.get_alias():
            target = n
        store.rollback(target, who="bench", why="rollback benchmark")

    result = {
        "versions": n,
        "fill_s": round(fill_s, 2),
        "rollback": summary_ms(timed(rollback, REPEATS)),
        "list_versions_50": summary_ms(timed(lambda: store.list_versions(limit=50), REPEATS)),
        "list_versions_50_offset_half": summary_ms(
            timed(lambda: store.list_versions(limit=50, offset=n // 2), 30)
        ),
        "list_versions_50_before_half": summary_ms(
            timed(lambda: store.list_versions(limit=50, before=n // 2), REPEATS)
        ),
        "get_version": summary_ms(timed(lambda: store.get_version(rng.randrange(1, n)), REPEATS)),
        "alias_history_50": summary_ms(timed(lambda: store.alias_history(limit=50), REPEATS)),
        "get_alias": summary_ms(timed(store.get_alias, REPEATS)),
    }
    store.close()
    # What `unlearnd rollback` pays: open the store (schema check), roll back, close.
    began = time.perf_counter()
    cold = open_store(url, workdir / "artifacts")
    cold.rollback(1, who="bench", why="cold rollback")
    cold.close()
    result["rollback_cold_open_s"] = round(time.perf_counter() - began, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--out", default="bench/results/registry.json")
    args = parser.parse_args()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            runs[str(n)] = bench(n, Path(tmp))
            print(json.dumps(runs[str(n)], indent=2), flush=True)

    def worst(run: dict, keys: tuple[str, ...]) -> float:
        return max(run[k]["p99_ms"] for k in keys)

    out = {
        "benchmark": "registry_bench",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "backend": "sqlite (WAL)",
        "runs": runs,
    }
    if "10000" in runs:
        out["rollback_s_1e4"] = round(runs["10000"]["rollback"]["max_ms"] / 1000, 4)
        out["rollback_cold_open_s_1e4"] = runs["10000"]["rollback_cold_open_s"]
    if "100000" in runs:
        out["query_p99_ms_1e5"] = worst(
            runs["100000"], ("list_versions_50", "list_versions_50_before_half", "get_version")
        )
        out["rollback_s_1e5"] = round(runs["100000"]["rollback"]["max_ms"] / 1000, 4)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
