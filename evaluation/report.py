"""A version's report: JSON, PNG plots and a static HTML page, from the registry alone.

Every figure comes from metrics the pipeline stored with the versions (no model is loaded):
the version's own metrics against its parent's, the gate's checks, the routing decision and
timings; a curve of forget / retain / general along the version's ancestry (base first);
and per-method bars over every deletion version in the registry.

The worker stores each new version's report as one blob (an uncompressed tar of its files)
linked to the version (RegistryStore.set_version_report): a snapshot as of the commit.
`write` hands out the stored files, rendering only when there are none.
"""

from __future__ import annotations

import html
import io
import json
import logging
import re
import tarfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from statistics import mean
from typing import Any

from unlearnd.evaluation import plots
from unlearnd.evaluation.behaviour import BEHAVIOURS
from unlearnd.evaluation.promotion import PARENT_NONE
from unlearnd.registry import RegistryStore

log = logging.getLogger("unlearnd.evaluation.report")
# matplotlib is not thread-safe (font cache, text layout): one rendering at a time per process
# (workers in threads, the API).
_RENDER_LOCK = threading.Lock()

SPLITS = ("forget", "retain", "general")
PROBES = ("leak_text", "leak_unseen", "leak_paraphrase", "leak_context", "leak_cloze")
MAX_VERSIONS = 1000  # the per-method bars read at most this many newest versions
MAX_CURVE_POINTS = plots.MAX_CURVE_POINTS


def _numbers(metrics: dict[str, Any] | None) -> dict[str, float]:
    return {k: v for k, v in (metrics or {}).items() if isinstance(v, int | float)}


def ancestry(store: RegistryStore, version_id: int) -> list:
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


def doors(metrics: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per door the version was scored on (the forget sets and every leak probe): the
    candidate's and the parent's rate, the share of the parent's it kept, the sample count,
    what its answers say instead (refused, degenerate, hallucinated, informative shares:
    evaluation/behaviour.py), the gate's verdict on it, and a note when the parent stated
    nothing there."""
    metrics = metrics or {}
    verdicts = {c["name"]: c.get("status", "passed" if c["passed"] else "failed")
                for c in (metrics.get("gate") or {}).get("checks", [])}  # fmt: skip
    rows = []
    for key in sorted(k for k in metrics if k.endswith("_acc") and not k.startswith("parent_")):
        door = key.removesuffix("_acc")
        if not (door.startswith(("forget", "leak_"))):
            continue
        parent = metrics.get(f"parent_{key}")
        rows.append({"door": door, "acc": metrics[key], "parent": parent,
                     "kept": metrics.get(f"{door}_kept"), "n": metrics.get(f"{door}_n"),
                     **{b: metrics.get(f"{door}_{b}") for b in BEHAVIOURS},
                     "gate": verdicts.get(key, ""),
                     "note": PARENT_NONE if parent == 0 else ""})  # fmt: skip
    return rows


def score_line(key: str, value: float, parent: float | None) -> str:
    """A score beside its parent's, as the report and `unlearnd report` print it; a door the
    parent stated nothing through says so."""

    def shown(v: float) -> str:  # a count is a whole number: "forget_n 22", not 22.000
        return str(round(v)) if key.endswith("_n") else f"{v:.3f}"

    line = f"{shown(value)} (parent {'-' if parent is None else shown(parent)})"
    is_door = key.startswith(("forget", "leak_")) and key.endswith("_acc")
    return f"{line}: {PARENT_NONE}" if is_door and parent == 0 else line


def revert_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """A revert version: the reverted request's forget set (answered again) and each replayed
    request's (still forgotten), each against the head the revert started from."""
    rows = []
    reverted = metrics.get("reverted") or {}
    if reverted:
        rows.append({"request": reverted.get("request_id"), "role": "reverted",
                     "forget_acc": reverted.get("forget_acc"),
                     "parent": reverted.get("parent_forget_acc"), "gate": ""})  # fmt: skip
    for rid, scores in (metrics.get("replayed") or {}).items():
        passed = (scores.get("gate") or {}).get("passed")
        rows.append({"request": rid, "role": "replayed", "forget_acc": scores.get("forget_acc"),
                     "parent": scores.get("parent_forget_acc"),
                     "gate": "passed" if passed else "failed"})  # fmt: skip
    return rows


def summary(store: RegistryStore, version) -> dict[str, Any]:
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
        "doors": doors(metrics),
        "routing": metrics.get("routing"),
        "revert": revert_rows(metrics) if version.kind == "revert" else [],
        "timings": version.timings or {},
        "params": version.params or {},
    }


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


DOOR_COLUMNS = ("door", "acc", "parent", "kept", "n", *BEHAVIOURS, "gate", "note")
REVERT_COLUMNS = ("request", "role", "forget_acc", "parent", "gate")


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    head = "".join(f"<th>{k}</th>" for k in columns)
    cells = [[html.escape(_fmt(r.get(k))) for k in columns] for r in rows]
    body = "".join(f"<tr><td>{'</td><td>'.join(row)}</td></tr>" for row in cells)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(report: dict[str, Any]) -> str:
    s = report["summary"]
    head = {k: s[k] for k in ("kind", "status", "method", "request_id", "parent_id", "aliases")}
    scores = {k: score_line(k, v, s["parent_metrics"].get(k)) for k, v in s["metrics"].items()}
    checks = (s["gate"] or {}).get("checks", [])
    gate_rows = "".join(
        f"<tr><td>{html.escape(c['name'])}</td><td>{_fmt(c['value']) or 'not measurable'} "
        f"{html.escape(c['op'])} {c['threshold']:.3f}</td>"
        f"<td>{html.escape(c.get('status', 'passed' if c['passed'] else 'failed'))}</td></tr>"
        for c in checks
    )
    revert = s.get("revert")
    plots = "".join(
        f'<p><img src="{html.escape(name)}" alt="{html.escape(name)}"></p>'
        for name in report["plots"].values()
    )
    verdict = ""
    if s["gate"]:  # a gated version says up front which threshold it missed
        failed = "; ".join(s["gate"]["failed"])
        text = "gate passed" if s["gate"]["passed"] else f"gate FAILED: {failed}"
        verdict = f'<p class="gate"><strong>{html.escape(text)}</strong></p>'
    silent = [d["door"] for d in s.get("doors", []) if d["parent"] == 0]
    if silent:
        verdict += f"<p>{html.escape(PARENT_NONE)}: {html.escape(', '.join(silent))}</p>"
    rendered = html.escape(report.get("rendered_at") or "")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>unlearnd v{s["version"]}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}}</style></head><body>
<h1>Version {s["version"]}</h1>
{verdict}<p>rendered {rendered}</p>
<table>{_rows(head)}</table>
<h2>Scores</h2><table>{_rows(scores)}</table>
<h2>Doors</h2>{_table(s.get("doors", []), DOOR_COLUMNS)}
{f"<h2>Revert</h2>{_table(revert, REVERT_COLUMNS)}" if revert else ""}
<h2>Gate</h2><table>{gate_rows or "<tr><td>no gate checks</td></tr>"}</table>
{f"<h2>Routing</h2><table>{_rows(s['routing'])}</table>" if s["routing"] else ""}
<h2>Timings (s)</h2><table>{_rows(s["timings"])}</table>
<h2>Plots</h2>{plots}
</body></html>
"""


def build(store: RegistryStore, version_id: int) -> dict[str, Any]:
    """The report data of a version (raises registry.NotFound for an unknown id)."""
    version = store.get_version(version_id)
    points = curve(ancestry(store, version_id))
    return {
        "summary": summary(store, version),
        "curve": points,
        "methods": method_bars(store.list_versions(limit=MAX_VERSIONS)),
    }


def render(store: RegistryStore, version_id: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The report and its files (report.json, report.html, curve.png, methods.png when there
    is a deletion), in memory; "html" and "plots" name files beside report.json."""
    report = build(store, version_id)
    report["rendered_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    files: dict[str, bytes] = {}
    report["plots"] = {"curve": "curve.png"}
    calibration = (report["summary"]["routing"] or {}).get("calibration")
    with _RENDER_LOCK:
        files["curve.png"] = _png(plots.plot_curve, report["curve"])
        if report["methods"]:
            report["plots"]["methods"] = "methods.png"
            files["methods.png"] = _png(plots.plot_methods, report["methods"])
        if calibration and calibration.get("background") is not None:
            report["plots"]["gate_scan"] = "gate_scan.png"
            files["gate_scan.png"] = _png(plots.plot_scan, {"": calibration})
    report["html"] = "report.html"
    files["report.json"] = json.dumps(report, indent=2).encode()
    files["report.html"] = render_html(report).encode()
    return report, files


def _png(plot, data) -> bytes:
    buf = io.BytesIO()
    plot(data, buf)
    return buf.getvalue()


# -- the stored report: one blob per version ------------------------------------------------

_FILE_NAME = re.compile(r"^[a-z0-9_]{1,64}\.(json|html|png)$")
MAX_REPORT_BYTES = 64 << 20


def pack(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar (PNGs are compressed already), the same bytes for the same files:
    sorted names, no times, no owners."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            if not _FILE_NAME.match(name):
                raise ValueError(f"report file name {name!r}: plain names only")
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[name]))
    return buf.getvalue()


def unpack(data: bytes) -> dict[str, bytes]:
    """The files of a packed report. Only plain files with plain names (no folders, no
    links, no `..`): the blob's hash was verified, but a reader should not trust a path."""
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for info in tar:
            if not info.isfile() or not _FILE_NAME.match(info.name):
                raise ValueError(f"report blob holds {info.name!r}, not a report file")
            if info.size > MAX_REPORT_BYTES:
                raise ValueError(f"report file {info.name!r} is {info.size} bytes")
            files[info.name] = tar.extractfile(info).read()
    if "report.json" not in files:
        raise ValueError("report blob has no report.json")
    return files


def store_report(store: RegistryStore, version_id: int) -> str:
    """Render the version's report, store it as a blob and link it to the version; its sha."""
    _, files = render(store, version_id)
    sha = store.artifacts.put_bytes(pack(files))
    store.set_version_report(version_id, sha)
    return sha


def stored(store: RegistryStore, version_id: int) -> tuple[dict[str, Any], dict[str, bytes]] | None:
    """The version's stored report and files, or None when it has none (or it cannot be read:
    then the caller renders it again)."""
    from unlearnd.registry import ArtifactCorrupt, NotFound

    sha = store.get_version_report(version_id)  # NotFound for an unknown version
    if sha is None:
        return None
    try:
        files = unpack(store.artifacts.read_bytes(sha))
        report = json.loads(files["report.json"])
        if not isinstance(report, dict) or not isinstance(report.get("summary"), dict):
            raise ValueError("report.json is not a report")
    except (NotFound, ArtifactCorrupt, tarfile.TarError, ValueError) as e:
        log.warning("version %s: stored report %s unreadable (%s); rendering", version_id, sha, e)
        return None
    report["artifact"] = sha
    return report, files


def write(
    store: RegistryStore, version_id: int, out_dir: str | Path, fresh: bool = False
) -> dict[str, Any]:
    """The version's report files in `out_dir`: the stored ones (source "stored"), else, or
    with `fresh`, rendered now from the registry (source "rendered"). Returns the report
    with "html" the page's path."""
    found = None if fresh else stored(store, version_id)
    if found is None:
        report, files = render(store, version_id)
        report["source"] = "rendered"
    else:
        report, files = found
        report["source"] = "stored"
        # The snapshot's aliases are those at its commit; the caller wants today's.
        summary = report["summary"]
        summary["aliases_at_render"] = summary["aliases"]
        summary["aliases"] = [n for n, v in store.list_aliases().items() if v == version_id]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out / name).write_bytes(data)
    report["html"] = str(out / "report.html")
    return report
