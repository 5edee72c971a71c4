"""`unlearnd submit`, `requests`, `request show` against a real SQLite registry."""

from __future__ import annotations

import json

import pytest
from local_daemon import FingerprintPipeline
from test_intake import GOOD
from typer.testing import CliRunner

from unlearnd.cli.common import EXIT_NOT_FOUND
from unlearnd.cli.main import app
from unlearnd.config import Settings
from unlearnd.daemon.intake import Intake
from unlearnd.daemon.sink import RegistrySink
from unlearnd.daemon.worker import Worker
from unlearnd.registry import open_registry


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARND_WORKDIR", str(tmp_path / "w"))
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), catch_exceptions=False)


def test_submit_then_list_and_show(tmp_path, cli):
    src = tmp_path / "req.json"
    src.write_text(json.dumps({**GOOD, "gate": {"max_forget_accuracy": 1.0}}))
    result = cli("submit", str(src), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["submitted_as"].endswith("new/req.json")
    settings = Settings(workdir=tmp_path / "w")
    assert [p.name for p in settings.inbox.joinpath("new").iterdir()] == ["req.json"]
    assert not list(settings.inbox.joinpath("tmp").iterdir())

    settings.daemon.stable_checks = 1
    store = open_registry(settings)
    intake = Intake(settings, RegistrySink(store))
    intake.scan_once()
    (rid,) = intake.stats.accepted_ids
    listed = json.loads(cli("requests", "--json").output)
    assert [(r["request_id"], r["state"]) for r in listed] == [(rid, "queued")]
    assert json.loads(cli("requests", "--state", "committed", "--json").output) == []

    Worker(settings, store, FingerprintPipeline(settings)).run_one()
    shown = json.loads(cli("request", "show", rid, "--json").output)
    assert shown["state"] == "committed"
    assert shown["jobs"][0]["attempts"] == 1 and shown["jobs"][0]["finished_at"]
    (version,) = shown["versions"]
    assert version["status"] == "committed" and version["timings"]["pipeline_s"] > 0
    table = cli("request", "show", rid)
    assert table.exit_code == 0 and rid in table.output and "committed" in table.output


def test_errors_have_meaningful_exit_codes(tmp_path, cli):
    assert cli("request", "show", "req-nope").exit_code == EXIT_NOT_FOUND
    assert cli("submit", str(tmp_path / "missing.json")).exit_code == EXIT_NOT_FOUND
    assert cli("requests", "--state", "bogus").exit_code == 2
    assert cli("serve", "--pipeline", "no.such.module:make").exit_code == 3


def test_request_show_watch_follows_a_running_request(tmp_path, cli):
    import threading

    settings = Settings(workdir=tmp_path / "w")
    settings.daemon.stable_checks = 1
    src = tmp_path / "req.json"
    src.write_text(json.dumps({**GOOD, "gate": {"max_forget_accuracy": 1.0}}))
    assert cli("submit", str(src)).exit_code == 0
    store = open_registry(settings)
    intake = Intake(settings, RegistrySink(store))
    intake.scan_once()
    (rid,) = intake.stats.accepted_ids
    worker = threading.Timer(1.0, Worker(settings, store, FingerprintPipeline(settings)).run_one)
    worker.start()  # the job runs while `--watch` is already following it
    shown = cli("request", "show", rid, "--watch", "--json")
    worker.join()
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["state"] == "committed"
