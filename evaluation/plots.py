"""The report's plots (PNG, matplotlib's Agg canvas, no pyplot): scores along a version's
ancestry, per-method bars, and the image door's calibration (`gate scan`)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

# The curve plot shows the newest points only (report.json keeps them all): drawn as wide as
# 300 versions it took 5 s and was 36,000 pixels wide; 20 points take ~0.5 s (2 CPU cores).
MAX_CURVE_POINTS = 20


def _label(point: dict[str, Any]) -> str:
    gated = "" if point["status"] == "committed" else f"\n({point['status']})"
    return f"v{point['version']}\n{point['method'] or point['kind']}{gated}"


def _figure(width: float, height: float):
    # Imported here: matplotlib costs ~0.5 s to import, and reading a stored report needs none.
    # No pyplot: no global state, the Agg canvas by default.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def plot_curve(points: list[dict[str, Any]], path: Path | io.BytesIO) -> None:
    shown = points[-MAX_CURVE_POINTS:]
    title = f"scores along the ancestry of v{points[-1]['version']}"
    if len(shown) < len(points):
        title += f" (newest {len(shown)} of {len(points)})"
    points = shown
    fig = _figure(max(5.0, 1.1 * len(points) + 2), 3.8)
    ax = fig.add_subplot()
    xs = range(len(points))
    styles = {"forget": "o-", "forget_before": "o", "retain": "s-", "general": "^-"}
    styles |= {"leak_text": "x--", "leak_unseen": "+--", "leak_paraphrase": "d--",
               "leak_context": "*--", "leak_cloze": "v--"}  # fmt: skip
    for key, style in styles.items():
        ys = [math.nan if p[key] is None else p[key] for p in points]
        if all(math.isnan(y) for y in ys):
            continue
        if key == "forget_before":  # hollow: the same forget set, measured on the parent
            ax.plot(xs, ys, style, mfc="none", color="C0", label="forget (parent)")
        else:
            ax.plot(xs, ys, style, label=key.replace("_", " "))
    ax.set_xticks(list(xs), [_label(p) for p in points], fontsize=8)
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("accuracy (leak: share of facts said)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.savefig(path, dpi=110, format="png")


def plot_methods(bars: dict[str, dict[str, float]], path: Path | io.BytesIO) -> None:
    fig = _figure(max(6.0, 1.4 * len(bars) + 2), 4.0)
    ax = fig.add_subplot()
    keys = ("forget_acc", "retain_ratio", "general_ratio")
    width = 0.8 / len(keys)
    for j, key in enumerate(keys):
        xs = [i + (j - 1) * width for i in range(len(bars))]
        ys = [b[key] if b[key] is not None else 0.0 for b in bars.values()]
        drawn = ax.bar(xs, ys, width, label=key.replace("_", " "))
        ax.bar_label(drawn, fmt="%.2f", fontsize=7)
    names = [f"{m}\n(n={b['versions']})" for m, b in bars.items()]
    ax.set_xticks(range(len(bars)), names, fontsize=8)
    ax.set_ylim(0, 1.15)
    ax.set_title("per method: forget (lower is better), retain / general kept vs parent")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    fig.savefig(path, dpi=110, format="png")


def plot_scan(scans: dict[str, dict[str, Any]], path: Path | io.BytesIO) -> None:
    """Per routed request: its own left-out images' cosines against the background's, and
    the threshold between them (routing/calibration.py)."""
    fig = _figure(6.5, 1.0 + 1.6 * len(scans))
    for i, (label, c) in enumerate(scans.items()):
        ax = fig.add_subplot(len(scans), 1, i + 1)
        bins = [x / 50 for x in range(-50, 51)]
        ax.hist(c.get("background") or [], bins=bins, alpha=0.6, label="retain + general")
        ax.hist(c.get("own") or [], bins=bins, alpha=0.8, label="own images (left out)")
        ax.axvline(c["threshold"], color="k", ls="--", label=f"threshold {c['threshold']:.2f}")
        ax.set_title(f"{label} miss {c['miss']:.0%}, false fires {c['false_fire']:.1%}".strip(),
                     fontsize=9)  # fmt: skip
        ax.set_yscale("log")
        ax.legend(fontsize=7, loc="upper left")
    fig.axes[-1].set_xlabel("cosine to the request's visual prototypes (centred)")
    fig.savefig(path, dpi=110, format="png")
