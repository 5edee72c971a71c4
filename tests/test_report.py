"""`unlearnd report`: JSON, PNG plots and HTML of a version, from a real SQLite registry whose
versions carry metrics as the pipeline stores them (gate decisions made by the real gate)."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from PIL import Image
from typer.testing import CliRunner

from unlearnd.cli import common
from unlearnd.cli.common import EXIT_NOT_FOUND
from unlearnd.cli.main import app
from unlearnd.config import PromotionSettings
from unlearnd.evaluation import promotion
from unlearnd.evaluation import report as rep
from unlearnd.registry import open_store

EMPTY = {"experts": {}, "artifacts": {}, "concept_index": None}


def deletion_metrics(forget: float, retain: float, general: float, **extra) -> dict:
    metrics = {
        "forget_acc": forget,
        "retain_acc": retain,
        "general_acc": general,
        "leak_text_acc": forget / 2,
        "leak_unseen_acc": forget / 2,
        "parent_forget_acc": 1.0,
        "parent_retain_acc": 1.0,
        "parent_general_acc": 0.99,
        "parent_leak_text_acc": 1.0,
        "parent_leak_unseen_acc": 1.0,
        **extra,
    }
    metrics["gate"] = promotion.decide(metrics, PromotionSettings()).to_dict()
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
    assert data["source"] == "rendered"  # made before reports were stored: rendered now
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
    result = run("report")  # no registry at all: said so, nothing created
    assert result.exit_code == EXIT_NOT_FOUND and "no registry here" in result.output
    open_store(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts").close()
    result = run("report")
    assert result.exit_code == EXIT_NOT_FOUND and "no live version" in result.output


def test_a_stored_report_is_a_snapshot_that_the_command_hands_out(registry, tmp_path):
    store, _, (base_id, ga_id, refuser_id) = registry
    sha = rep.store_report(store, ga_id)
    assert store.get_version_report(ga_id) == sha
    packed = rep.unpack(store.artifacts.read_bytes(sha))
    assert set(packed) == {"report.json", "report.html", "curve.png", "methods.png"}
    # Later history: a third method, and `live` rolled back to the base.
    store.create_version(
        parent_id=refuser_id,
        method="npo",
        metrics=deletion_metrics(0.0, 0.95, 0.97),
        base_fingerprint="fp",
        manifest=EMPTY,
    )
    store.rollback(base_id, who="t", why="test")

    out = tmp_path / "stored"
    result = run("report", str(ga_id), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["source"] == "stored" and data["artifact"] == sha
    assert set(data["methods"]) == {"ga", "refuser"}  # as it was at the commit, no npo
    assert data["summary"]["aliases"] == [] and data["summary"]["aliases_at_render"] == ["live"]
    for name, content in packed.items():  # the stored bytes, not a new rendering
        assert (out / name).read_bytes() == content

    result = run("report", str(ga_id), "--out", str(tmp_path / "now"), "--json", "--fresh")
    data = json.loads(result.output)
    assert data["source"] == "rendered" and set(data["methods"]) == {"ga", "refuser", "npo"}

    result = run("report", str(ga_id), "--out", str(out))
    assert f"report: {out / 'report.html'}" in result.output
    assert f"stored report {sha[:12]}" in result.output


def test_a_gated_versions_stored_page_says_which_threshold_failed(registry, tmp_path):
    store, _, (_, _, refuser_id) = registry
    rep.store_report(store, refuser_id)
    result = run("report", str(refuser_id), "--out", str(tmp_path / "g"))
    assert result.exit_code == 0, result.output
    assert "gate failed: " in result.output and "retain_ratio 0.400 not >= 0.900" in result.output
    page = (tmp_path / "g" / "report.html").read_text()
    assert "gate FAILED: retain_ratio 0.400 not &gt;= 0.900" in page


def test_an_unreadable_stored_report_is_rendered_again(registry, tmp_path):
    store, _, (_, ga_id, _) = registry
    not_a_tar = store.artifacts.put_bytes(b"not a tar at all")
    store.set_version_report(ga_id, not_a_tar)
    data = rep.write(store, ga_id, tmp_path / "a")
    assert data["source"] == "rendered" and (tmp_path / "a" / "curve.png").is_file()
    escaping = store.artifacts.put_bytes(_tar({"../evil.json": b"{}", "report.json": b"{}"}))
    store.set_version_report(ga_id, escaping)
    assert rep.write(store, ga_id, tmp_path / "b")["source"] == "rendered"
    assert not (tmp_path / "evil.json").exists()
    not_a_report = store.artifacts.put_bytes(rep.pack({"report.json": b"[]"}))
    store.set_version_report(ga_id, not_a_report)
    assert rep.write(store, ga_id, tmp_path / "c")["source"] == "rendered"
    assert store.get_version(ga_id).status == "committed"


def test_pack_is_deterministic_and_unpack_takes_plain_report_files_only():
    files = {"report.json": b'{"a": 1}', "curve.png": b"\x89PNG..."}
    assert rep.pack(files) == rep.pack(dict(reversed(files.items())))
    assert rep.unpack(rep.pack(files)) == files
    with pytest.raises(ValueError, match="plain names"):
        rep.pack({"sub/report.json": b"{}"})
    with pytest.raises(ValueError, match="no report.json"):
        rep.unpack(rep.pack({"curve.png": b"x"}))
    with pytest.raises(ValueError, match="not a report file"):
        rep.unpack(_tar({"/etc/report.json": b"{}"}))


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_a_long_ancestry_keeps_every_point_in_json_but_plots_the_newest(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "artifacts")
    parent = store.create_version(kind="base", base_fingerprint="fp", manifest=EMPTY).id
    for i in range(rep.MAX_CURVE_POINTS + 5):
        parent = store.create_version(
            parent_id=parent,
            method="ga",
            metrics=deletion_metrics(0.0, 1.0 - i / 100, 0.98),
            base_fingerprint="fp",
            manifest=EMPTY,
        ).id
    data, files = rep.render(store, parent)
    store.close()
    assert len(data["curve"]) == rep.MAX_CURVE_POINTS + 6
    with Image.open(io.BytesIO(files["curve.png"])) as im:  # 20 points wide, not 26
        assert im.width <= (1.1 * rep.MAX_CURVE_POINTS + 2) * 110 + 1
