"""A version's report: JSON, PNG plots and a static HTML page, from the registry alone.

Every figure comes from metrics the pipeline stored with the versions (no model is loaded):
the version's own metrics against its parent's, the gate's checks, the routing decision and
timings; a curve of forget / retain / general along the version's ancestry (base first);
and per-method bars over every deletion version in the registry.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from statistics import mean
from typing import Any

from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas by default

SPLITS = ("forget", "retain", "general")
PROBES = ("leak_text", "leak_unseen", "leak_paraphrase")
MAX_VERSIONS = 1000  # the per-method bars read at most this many newest versions


def _numbers(metrics: dict[str, Any] | None) -> dict[str, float]:
    return {k: v for k, v in (metrics or {}).items() if isinstance(v, int | float)}


def ancestry(store, version_id: int) -> list:
    """The version and its parents, base first (raises NotFound for an unknown id)."""
    out = [store.get_version(version_id)]
    while out[-1].parent_id is not None and len(out) < MAX_VERSIONS:
        out.append(store.get_version(out[-1].parent_id))
    return out[::-1]


def _own_and_parent(metrics: dict[str, Any] | None) -> tuple[dict, dict]:
    nums = _numbers(metrics)
    parent = {k.removeprefix("parent_"): v for k, v in nums.items() if k.startswith("parent_")}
    own = {k: v for k, v in nums.items() if not k.startswith("parent_")}
    return own, parent


def curve(chain: list) -> list[dict[str, Any]]:
    """One point per version: its scores (a version without metrics, like the base, takes
    its child's parent_* scores, which were measured on it)."""
    points = []
    for i, v in enumerate(chain):
        own, parent = _own_and_parent(v.metrics)
        if not own and i + 1 < len(chain):
            own = _own_and_parent(chain[i + 1].metrics)[1]
            own.pop("forget_acc", None)  # the child's forget set says nothing of this one
        point = {"version": v.id, "kind": v.kind, "method": v.method, "status": v.status}
        point["forget_before"] = parent.get("forget_acc")  # the parent on this request's set
        for key in (*SPLITS, *PROBES):
            point[key] = own.get(f"{key}_acc")
        points.append(point)
    return points


def method_bars(versions: list) -> dict[str, dict[str, float]]:
    """Per method, over its deletion versions: mean forget accuracy and mean retain / general
    kept relative to the parent (candidate / parent, as the gate computes it)."""
    grouped: dict[str, list[dict[str, float]]] = {}
    for v in versions:
        if v.kind != "deletion" or not v.method:
            continue
        own, parent = _own_and_parent(v.metrics)
        row = {"forget_acc": own.get("forget_acc")}
        for split in ("retain", "general"):
            a, b = own.get(f"{split}_acc"), parent.get(f"{split}_acc")
            row[f"{split}_ratio"] = (a / b if b else 1.0) if a is not None else None
        grouped.setdefault(v.method, []).append(row)
    out = {}
    for method, rows in sorted(grouped.items()):
        out[method] = {"versions": len(rows)}
        for key in ("forget_acc", "retain_ratio", "general_ratio"):
            values = [r[key] for r in rows if r[key] is not None]
            out[method][key] = mean(values) if values else None
    return out


def summary(store, version) -> dict[str, Any]:
    own, parent = _own_and_parent(version.metrics)
    metrics = version.metrics or {}
    aliases = [name for name, vid in store.list_aliases().items() if vid == version.id]
    return {
        "version": version.id,
        "kind": version.kind,
        "status": version.status,
        "method": version.method,
        "request_id": version.request_id,
        "parent_id": version.parent_id,
        "aliases": aliases,
        "created_at": version.created_at.isoformat(),
        "metrics": own,
        "parent_metrics": parent,
        "gate": metrics.get("gate"),
        "routing": metrics.get("routing"),
        "timings": version.timings or {},
        "params": version.params or {},
    }


def _label(point: dict[str, Any]) -> str:
    gated = "" if point["status"] == "committed" else f"\n({point['status']})"
    return f"v{point['version']}\n{point['method'] or point['kind']}{gated}"


def plot_curve(points: list[dict[str, Any]], path: Path) -> None:
    fig = Figure(figsize=(max(5.0, 1.1 * len(points) + 2), 3.8), layout="constrained")
    ax = fig.add_subplot()
    xs = range(len(points))
    styles = {"forget": "o-", "forget_before": "o", "retain": "s-", "general": "^-"}
    styles |= {"leak_text": "x--", "leak_unseen": "+--", "leak_paraphrase": "d--"}
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
    ax.set_title(f"scores along the ancestry of v{points[-1]['version']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.savefig(path, dpi=110)


def plot_methods(bars: dict[str, dict[str, float]], path: Path) -> None:
    fig = Figure(figsize=(max(6.0, 1.4 * len(bars) + 2), 4.0), layout="constrained")
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
    fig.savefig(path, dpi=110)


def _rows(data: dict[str, Any]) -> str:
    return "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in data.items()
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return "" if value is None else str(value)


def render_html(report: dict[str, Any]) -> str:
    s = report["summary"]
    head = {k: s[k] for k in ("kind", "status", "method", "request_id", "parent_id", "aliases")}
    scores = {
        k: f"{_fmt(v)} (parent {_fmt(s['parent_metrics'].get(k)) or '-'})"
        for k, v in s["metrics"].items()
    }
    checks = (s["gate"] or {}).get("checks", [])
    gate_rows = "".join(
        f"<tr><td>{html.escape(c['name'])}</td><td>{c['value']:.3f} {html.escape(c['op'])} "
        f"{c['threshold']:.3f}</td><td>{'pass' if c['passed'] else 'FAIL'}</td></tr>"
        for c in checks
    )
    plots = "".join(
        f'<p><img src="{html.escape(name)}" alt="{html.escape(name)}"></p>'
        for name in report["plots"].values()
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>unlearnd v{s["version"]}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}}</style></head><body>
<h1>Version {s["version"]}</h1>
<table>{_rows(head)}</table>
<h2>Scores</h2><table>{_rows(scores)}</table>
<h2>Gate</h2><table>{gate_rows or "<tr><td>no gate checks</td></tr>"}</table>
{f"<h2>Routing</h2><table>{_rows(s['routing'])}</table>" if s["routing"] else ""}
<h2>Timings (s)</h2><table>{_rows(s["timings"])}</table>
<h2>Plots</h2>{plots}
</body></html>
"""


def build(store, version_id: int) -> dict[str, Any]:
    """The report data of a version (raises registry.NotFound for an unknown id)."""
    version = store.get_version(version_id)
    points = curve(ancestry(store, version_id))
    return {
        "summary": summary(store, version),
        "curve": points,
        "methods": method_bars(store.list_versions(limit=MAX_VERSIONS)),
    }


def write(store, version_id: int, out_dir: str | Path) -> dict[str, Any]:
    """report.json, curve.png, methods.png (when there is a deletion) and report.html in
    `out_dir`; returns the report with its file names under "plots" and "html"."""
    report = build(store, version_id)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report["plots"] = {"curve": "curve.png"}
    plot_curve(report["curve"], out / "curve.png")
    if report["methods"]:
        report["plots"]["methods"] = "methods.png"
        plot_methods(report["methods"], out / "methods.png")
    report["html"] = str(out / "report.html")
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.html").write_text(render_html(report))
    return report
