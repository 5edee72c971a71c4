"""`unlearnd report`: JSON, PNG plots and HTML of a version, from a real SQLite registry whose
versions carry metrics as the pipeline stores them (gate decisions made by the real gate)."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from unlearnd.cli import common
from unlearnd.cli.common import EXIT_NOT_FOUND
from unlearnd.cli.main import app
from unlearnd.config import GateSettings
from unlearnd.evaluation import gate
from unlearnd.registry import open_store

EMPTY = {"experts": {}, "artifacts": {}, "concept_index": None}


def deletion_metrics(forget: float, retain: float, general: float, **extra) -> dict:
    metrics = {
        "forget_acc": forget,
        "retain_acc": retain,
        "general_acc": general,
        "leak_text_acc": forget / 2,
        "leak_unseen_acc": forget,
        "parent_forget_acc": 1.0,
        "parent_retain_acc": 1.0,
        "parent_general_acc": 0.99,
        "parent_leak_text_acc": 1.0,
        "parent_leak_unseen_acc": 1.0,
        **extra,
    }
    metrics["gate"] = gate.decide(metrics, GateSettings()).to_dict()
    return metrics


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """base (live) -> v2 ga (committed, live) -> v3 refuser (gated: it kept too little)."""
    monkeypatch.setenv("UNLEARND_WORKDIR", str(tmp_path))
    monkeypatch.setattr(common.console, "width", 160)
    store = open_store(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")
    common_fields = {"base_fingerprint": "fp", "manifest": EMPTY}
    base = store.create_version(kind="base", **common_fields)
    ga = store.create_version(
        parent_id=base.id,
        method="ga",
        metrics=deletion_metrics(0.0, 0.9, 0.98),
        timings={"train_s": 3.2, "evaluate_s": 0.8, "total_s": 5.1},
        **common_fields,
    )
    refuser = store.create_version(
        parent_id=ga.id,
        method="refuser",
        status="gated",
        metrics=deletion_metrics(0.1, 0.4, 0.95, routing={"routed": True, "score": 0.7}),
        **common_fields,
    )
    store.move_alias("live", base.id, expected_from=None, who="t", why="base")
    store.move_alias("live", ga.id, expected_from=base.id, who="t", why="ga")
    yield store, tmp_path, (base.id, ga.id, refuser.id)
    store.close()


def run(*args):
    return CliRunner().invoke(app, list(args))


def test_report_of_the_live_version_writes_json_plots_and_html(registry):
    _, workdir, (_, ga_id, _) = registry
    result = run("report")
    assert result.exit_code == 0, result.output
    folder = workdir / "reports" / f"v{ga_id}"
    assert f"report: {folder / 'report.html'}" in result.output
    assert "forget_acc" in result.output and "gate passed" in result.output
    data = json.loads((folder / "report.json").read_text())
    assert data["summary"]["aliases"] == ["live"]
    assert data["summary"]["metrics"]["leak_text_acc"] == 0.0
    assert data["summary"]["parent_metrics"]["retain_acc"] == 1.0
    # The base has no metrics of its own: its point is what its child measured on it.
    assert [p["retain"] for p in data["curve"]] == [1.0, 0.9]
    assert data["curve"][0]["forget"] is None
    for png in ("curve.png", "methods.png"):
        with Image.open(folder / png) as im:
            assert im.width > 300 and im.height > 200
    page = (folder / "report.html").read_text()
    assert 'src="curve.png"' in page and 'src="methods.png"' in page


def test_report_of_a_gated_version_says_what_failed(registry, tmp_path):
    _, _, (_, _, refuser_id) = registry
    out = tmp_path / "elsewhere"
    result = run("report", str(refuser_id), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["html"] == str(out / "report.html") and (out / "report.json").is_file()
    assert not data["summary"]["gate"]["passed"]
    assert any("retain_ratio" in f for f in data["summary"]["gate"]["failed"])
    assert data["summary"]["routing"] == {"routed": True, "score": 0.7}
    assert [p["method"] for p in data["curve"]] == [None, "ga", "refuser"]
    assert set(data["methods"]) == {"ga", "refuser"}
    assert data["methods"]["refuser"]["retain_ratio"] == pytest.approx(0.4)


def test_missing_version_exits_4(registry):
    result = run("report", "99")
    assert result.exit_code == EXIT_NOT_FOUND
    assert "unknown version 99" in result.output


def test_empty_registry_has_no_live_version(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARND_WORKDIR", str(tmp_path))
    result = run("report")
    assert result.exit_code == EXIT_NOT_FOUND and "no live version" in result.output
