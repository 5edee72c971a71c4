"""Concept index latency and recall: flat vs IVF at 1e4, 1e5 and 1e6 concepts.

Times what the gate pays per request: one `ConceptIndex.search` of a single query (one
thread, top 10), p50 and p99 over many queries; build time (IVF: k-means training + add);
recall@1 and @10 of IVF against the exact flat index. Target (issue 6): IVF p50 <= 1 ms per
query at 1e6 concepts.

The data are clustered synthetic vectors (unit centres plus Gaussian noise), because
concept embeddings cluster (many samples of one person or object) and uniformly random unit
vectors have no structure for IVF to find: its recall on them says little. Queries are fresh
draws from the same mixture, not stored vectors.

    .venv/bin/python bench/routing_bench.py [--sizes 10000 100000 1000000] [--dim 192]
        [--centres 4096] [--noises 0.75 1.25] [--queries 1000] [--flat-queries-1e6 200] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np

from unlearnd.routing.index import ConceptIndex, default_nlist

K = 10


def mixture(n: int, centres: np.ndarray, noise: float, rng: np.random.Generator):
    """n draws (and their centre): a random centre plus noise of norm ~`noise`, so cosine to
    the centre ~1/sqrt(1+noise^2) and between draws of one centre ~1/(1+noise^2)."""
    dim = centres.shape[1]
    out = np.empty((n, dim), dtype=np.float32)
    labels = rng.integers(0, len(centres), n)
    for lo in range(0, n, 100_000):  # in chunks: float64 temporaries of 1e6 x 192 are 1.5 GB
        hi = min(n, lo + 100_000)
        noise_rows = (noise / np.sqrt(dim)) * rng.standard_normal((hi - lo, dim))
        out[lo:hi] = centres[labels[lo:hi]] + noise_rows
    return out, labels


def per_query_ms(index: ConceptIndex, queries: np.ndarray) -> dict[str, float]:
    index.search(queries[:1], K)  # warm-up: first touch of the index pages
    samples = []
    for row in queries:
        began = time.perf_counter()
        index.search(row[None, :], K)
        samples.append(time.perf_counter() - began)
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {
        "queries": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 4),
        "p99_ms": round(p99 * 1000, 4),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 4),
    }


def recall(got: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    at10 = np.mean([len(set(a) & set(b)) / K for a, b in zip(got, truth, strict=True)])
    return {
        "recall_at_1": round(float(np.mean(got[:, 0] == truth[:, 0])), 4),
        "recall_at_10": round(float(at10), 4),
    }


def same_centre(top1: np.ndarray, labels: np.ndarray, query_labels: np.ndarray) -> float:
    """Share of queries whose best match was drawn around the query's own centre: whether the
    gate finds the right concept, which is what routing needs (the exact neighbour matters less)."""
    return round(float(np.mean(labels[top1] == query_labels)), 4)


def bench(n: int, noise: float, args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(n)
    centres = rng.standard_normal((args.centres, args.dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    data, labels = mixture(n, centres, noise, rng)
    queries, query_labels = mixture(args.queries, centres, noise, rng)
    ids = np.arange(n, dtype=np.int64)

    began = time.perf_counter()
    flat = ConceptIndex.build(ids, data, kind="flat")
    flat_build_s = time.perf_counter() - began
    _, truth = flat.search(queries, K)  # batched, all threads: the exact answer
    flat_queries = queries[: args.flat_queries_1e6] if n >= 1_000_000 else queries
    flat_ms = per_query_ms(flat, flat_queries)
    del flat

    ivf = ConceptIndex(args.dim, kind="ivf", nlist=default_nlist(n), nprobe=args.nprobe)
    if args.train_points_per_list:
        ivf.index.cp.max_points_per_centroid = args.train_points_per_list
    began = time.perf_counter()
    ivf.train(data)
    train_s = time.perf_counter() - began
    ivf.add(ids, data)
    ivf_build_s = time.perf_counter() - began
    del data
    got = ivf.search(queries, K)[1]
    sweep: dict[str, dict] = {}
    result = {
        "concepts": n,
        "flat": {
            "build_s": round(flat_build_s, 3),
            "single_query": flat_ms,
            "top1_same_centre": same_centre(truth[:, 0], labels, query_labels),
        },
        "ivf": {
            "nlist": ivf.nlist,
            "nprobe": ivf.nprobe,
            "train_points_per_list": int(ivf.index.cp.max_points_per_centroid),
            "train_s": round(train_s, 2),
            "build_s": round(ivf_build_s, 2),
            "single_query": per_query_ms(ivf, queries),
            **recall(got, truth),
            "top1_same_centre": same_centre(got[:, 0], labels, query_labels),
        },
        "ivf_nprobe_sweep": sweep,
    }
    for nprobe in args.sweep:  # the recall/latency trade-off around the default
        ivf.index.nprobe = nprobe
        sweep[str(nprobe)] = {
            "p50_ms": per_query_ms(ivf, queries[:300])["p50_ms"],
            **recall(ivf.search(queries, K)[1], truth),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=192, help="the world model's text hidden size")
    parser.add_argument("--centres", type=int, default=4096)
    parser.add_argument(
        "--noises", type=float, nargs="+", default=[0.75, 1.25], help="the first gives the headline"
    )
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--flat-queries-1e6", type=int, default=200)
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument("--sweep", type=int, nargs="*", default=[4, 8, 32, 64])
    parser.add_argument("--train-points-per-list", type=int, default=0, help="0: the index's own")
    parser.add_argument("--out", default="bench/results/routing.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    by_noise: dict[str, dict[str, dict]] = {}
    for noise in args.noises:
        runs = by_noise[str(noise)] = {}
        for n in args.sizes:
            runs[str(n)] = bench(n, noise, args)
            print(f"noise {noise}:", json.dumps(runs[str(n)], indent=2), flush=True)
    runs = by_noise[str(args.noises[0])]
    out = {
        "benchmark": "routing_bench",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "faiss": faiss.__version__,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "data": {
            "dim": args.dim,
            "kind": "clustered synthetic: unit centres + Gaussian noise, queries fresh draws",
            "centres": args.centres,
            "noises": args.noises,
            "k": K,
        },
        "runs_by_noise": by_noise,
    }
    for n, tag in ((10_000, "1e4"), (100_000, "1e5"), (1_000_000, "1e6")):
        if str(n) in runs:
            run = runs[str(n)]
            out[f"ivf_p50_ms_{tag}"] = run["ivf"]["single_query"]["p50_ms"]
            out[f"ivf_p99_ms_{tag}"] = run["ivf"]["single_query"]["p99_ms"]
            out[f"ivf_recall_{tag}"] = run["ivf"]["recall_at_1"]
            out[f"ivf_recall10_{tag}"] = run["ivf"]["recall_at_10"]
            out[f"ivf_same_centre_{tag}"] = run["ivf"]["top1_same_centre"]
            out[f"flat_same_centre_{tag}"] = run["flat"]["top1_same_centre"]
            out[f"flat_p50_ms_{tag}"] = run["flat"]["single_query"]["p50_ms"]
            out[f"flat_p99_ms_{tag}"] = run["flat"]["single_query"]["p99_ms"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
