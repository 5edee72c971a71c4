"""`unlearnd versions / version show / history / rollback / revert` on a real SQLite registry."""

from __future__ import annotations

import json

import pytest
import typer
from test_registry_support import add_request, blob, version
from typer.testing import CliRunner

from unlearnd.cli import common, registry_cmds
from unlearnd.cli.common import EXIT_NOT_FOUND
from unlearnd.registry import open_store


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """The commands on a bare Typer app, and the store behind them (three deletions)."""
    monkeypatch.setenv("UNLEARND_WORKDIR", str(tmp_path))
    monkeypatch.delenv("UNLEARND_TEST_PG_URL", raising=False)  # not a config key
    monkeypatch.setattr(common.console, "width", 160)  # a wide terminal: no truncated cells
    app = typer.Typer()
    registry_cmds.register(app)
    store = open_store(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")
    head = version(store, kind="base")
    store.move_alias("live", head.id, expected_from=None, who="setup", why="base model")
    experts = {}
    for name, expert, seed in (("r1", "e1", 1), ("r2", "e2", 2), ("r3", "e1", 3)):
        add_request(store, name)
        experts = {**experts, expert: blob(store, seed)}
        new = version(store, parent=head.id, request_id=name, experts=experts, method="refuser")
        store.move_alias("live", new.id, expected_from=head.id, who="daemon", why=name)
        head = new
    runner = CliRunner()

    def run(*args):
        return runner.invoke(app, list(args))

    yield run, store
    store.close()


def test_versions_and_show(cli):
    run, store = cli
    result = run("versions", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["id"] for r in rows] == [4, 3, 2, 1] and rows[0]["aliases"] == ["live"]
    table = run("versions")
    assert table.exit_code == 0 and "refuser" in table.output and "live" in table.output
    shown = json.loads(run("version", "show", "2", "--json").output)
    assert shown["request_id"] == "r1" and shown["manifest"]["experts"]["e1"] == blob(store, 1)
    plain = run("version", "show", "2")
    assert plain.exit_code == 0 and "expert e1" in plain.output
    missing = run("version", "show", "99")
    assert missing.exit_code == EXIT_NOT_FOUND and "unknown version 99" in missing.output


def test_rollback_then_history(cli):
    run, store = cli
    result = run("rollback", "--to", "2", "--why", "r2 broke answers", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["to_version"] == 2 and store.get_alias() == 2
    history = json.loads(run("history", "--json").output)
    assert [(e["from_version"], e["to_version"]) for e in history] == [
        (None, 1),
        (1, 2),
        (2, 3),
        (3, 4),
        (4, 2),
    ]
    assert history[-1]["why"] == "r2 broke answers"
    assert "r2 broke answers" in run("history", "--alias", "live").output
    assert run("rollback", "--to", "77", "--why", "x").exit_code == EXIT_NOT_FOUND
    missing_why = run("rollback", "--to", "3")
    assert missing_why.exit_code == 2  # typer: --why is required


def test_revert_commits_when_no_replay_is_needed(cli):
    run, store = cli
    result = run("revert", "r2", "--why", "asked by the owner", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["committed"] and out["plan"]["dropped"]["experts"] == ["e2"]
    assert store.get_alias() == out["version"]["id"] == 5
    assert set(store.get_version(5).manifest["experts"]) == {"e1"}


def test_revert_that_needs_a_replay_queues_a_job_for_the_daemon(cli):
    run, store = cli
    result = run("revert", "r1", "--why", "undo r1")
    assert result.exit_code == 0, result.output
    assert "replay" in result.output and "r3" in result.output and "queued as job" in result.output
    assert store.get_alias() == 4  # nothing moved yet: the daemon commits the replay
    (job,) = store.list_jobs(request_id="r1", state="queued")
    assert job.kind == "revert" and job.data["replay"] == ["r3"] and job.data["why"] == "undo r1"
    assert store.get_request("r1").state == "reverting"
    assert store.list_events(kind="revert_queued")[0].request_id == "r1"
    again = json.loads(run("revert", "r1", "--why", "undo r1", "--json").output)
    assert again["job"]["id"] == job.id  # asked twice: still one job
    unknown = run("revert", "nope", "--why", "x")
    assert unknown.exit_code == EXIT_NOT_FOUND and "nope" in unknown.output


@pytest.mark.parametrize(
    "args",
    [("versions",), ("version", "show", "1"), ("history",), ("requests",), ("report",),
     ("rollback", "--to", "1", "--why", "x"), ("export", "live", "--out", "out")],
)  # fmt: skip
def test_read_commands_on_a_folder_with_no_registry_say_so_and_create_nothing(tmp_path, args):
    from unlearnd.cli.main import app

    out = CliRunner().invoke(app, list(args))
    assert out.exit_code == EXIT_NOT_FOUND, out.output
    assert "no registry here" in out.output and "registry.db does not exist" in out.output
    assert list(tmp_path.iterdir()) == []  # no ./unlearnd-data, no registry.db


def test_versions_are_taken_as_an_id_or_an_alias(cli, tmp_path):
    from unlearnd.cli.main import app

    run, store = cli
    store.move_alias("base", 1, expected_from=None, who="test", why="the base model")
    main = CliRunner()
    by_alias = main.invoke(app, ["generate", "-p", "hi", "--version", "base", "--json",
                                 "--max-new-tokens", "2"])  # fmt: skip
    assert by_alias.exit_code == 0, by_alias.output
    assert json.loads(by_alias.stdout)["version"] == 1
    by_id = main.invoke(app, ["generate", "-p", "hi", "-v", "1", "--json", "--max-new-tokens", "2"])
    assert json.loads(by_id.stdout)["text"] == json.loads(by_alias.stdout)["text"]
    scan = main.invoke(app, ["gate", "scan", "--version", "base"])
    assert scan.exit_code == 0 and "version 1 routes no request" in scan.output, scan.output
    for argv in (["generate", "-p", "hi", "-v", "nope"], ["gate", "scan", "-v", "nope"]):
        unknown = main.invoke(app, argv)
        assert unknown.exit_code == EXIT_NOT_FOUND and "'nope'" in unknown.output


def test_tables_show_ids_whole_and_text_as_written(cli, monkeypatch):
    from unlearnd.cli.main import app

    run, store = cli
    long_id = "req-452e2f0c9d1b4a7e8f6a5b4c3d2e1f00aa"
    add_request(store, long_id)
    monkeypatch.setattr(common.console, "width", 70)  # a narrow terminal, or a pipe
    out = CliRunner().invoke(app, ["requests"])
    assert out.exit_code == 0 and long_id in out.output, out.output
    monkeypatch.setattr(common.console, "width", 400)
    methods = CliRunner().invoke(app, ["methods"])  # a help text with brackets, not markup
    assert "over the deployment's `[refusals]` (identity" in methods.output
