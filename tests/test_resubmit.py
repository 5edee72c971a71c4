"""Submitting a request again on purpose (`supersedes`, `unlearnd submit --again`), through the
real intake and a real SQLite registry; an accidental duplicate is still one request."""

from __future__ import annotations

import json
import logging

from test_intake import GOOD, errors_of, make_intake, png
from typer.testing import CliRunner

from unlearnd.cli.common import EXIT_DUPLICATE
from unlearnd.cli.main import app as cli_app
from unlearnd.daemon.request_store import load_request


def take(intake, name: str, doc: dict) -> None:
    (intake.inbox.dir("new") / name).write_text(json.dumps(doc))
    intake.scan_once()


def fail_for_good(store, request_id: str) -> None:
    """What a worker does with a job that cannot succeed: the request ends `failed`."""
    job = store.claim_job("w1", lease_s=60)
    assert job.request_id == request_id
    store.fail_job(job.id, "w1", "RuntimeError: out of memory", retry=False)
    assert store.get_request(request_id).state == "failed"


def test_a_failed_request_is_submitted_again_as_a_new_linked_request(tmp_path, monkeypatch, caplog):
    intake = make_intake(tmp_path)
    store = intake.sink.store
    take(intake, "a.json", GOOD)
    (old,) = intake.stats.accepted_ids
    take(intake, "a-copy.json", GOOD)  # an accidental duplicate of a live request
    assert intake.stats.duplicates == 1 and [r.request_id for r in store.list_requests()] == [old]

    take(intake, "early.json", {**GOOD, "supersedes": old})  # still queued: nothing to redo
    (error,) = errors_of(intake, "early.json")
    assert error["field"] == "supersedes" and f"{old} is queued" in error["message"]
    take(intake, "ghost.json", {**GOOD, "supersedes": "nope"})
    assert "unknown request 'nope'" in errors_of(intake, "ghost.json")[0]["message"]

    fail_for_good(store, old)
    with caplog.at_level(logging.WARNING, "unlearnd.daemon.sink"):
        take(intake, "a-again.json", GOOD)  # the same file again runs nothing, and says so
    assert intake.stats.duplicates == 2 and f"submit --again {old}" in caplog.text

    monkeypatch.setenv("UNLEARND_WORKDIR", str(intake.settings.workdir))
    runner = CliRunner()
    result = runner.invoke(cli_app, ["submit", "--again", old])
    assert result.exit_code == 0, result.output
    intake.scan_once()
    (new,) = intake.stats.accepted_ids[1:]
    record = store.get_request(new)
    assert new != old and record.state == "queued" and record.spec["supersedes"] == old
    assert {k: v for k, v in record.spec.items() if k != "supersedes"} == store.get_request(
        old
    ).spec
    (event,) = store.list_events(kind="request_resubmitted")
    assert event.request_id == new and event.data == {"supersedes": old}

    result = runner.invoke(cli_app, ["submit", "--again", old])  # twice: one new request
    assert result.exit_code == EXIT_DUPLICATE and f"duplicate of request {new}" in result.output
    assert intake.scan_once() == 0 and len(store.list_requests()) == 2
    result = runner.invoke(cli_app, ["submit", "--again", new])  # queued: refused at once
    assert result.exit_code == 1 and f"request {new} is queued" in result.output
    result = runner.invoke(cli_app, ["submit"])
    assert result.exit_code == 2 and "--again" in result.output


def test_a_bundle_is_submitted_again_with_its_images(tmp_path, monkeypatch):
    intake = make_intake(tmp_path)
    folder = intake.inbox.dir("new") / "bundle"
    (folder / "img").mkdir(parents=True)
    (folder / "img" / "a.png").write_bytes(png(color="blue"))
    doc = {**GOOD, "id": "ann-1", "forget": [{"image": "img/a.png", "question": "who?"}]}
    (folder / "request.json").write_text(json.dumps(doc))
    intake.scan_once()
    fail_for_good(intake.sink.store, "ann-1")

    monkeypatch.setenv("UNLEARND_WORKDIR", str(intake.settings.workdir))
    assert CliRunner().invoke(cli_app, ["submit", "--again", "ann-1"]).exit_code == 0
    intake.scan_once()
    (new,) = intake.stats.accepted_ids[1:]
    request, stored = load_request(intake.requests_root, new)
    assert new.startswith("req-") and request.supersedes == "ann-1" and request.id is None
    assert (stored / "img" / "a.png").read_bytes() == png(color="blue")


def test_submit_says_at_once_that_a_file_duplicates_a_request(tmp_path, monkeypatch):
    """The CLI checks a file as the intake will: a duplicate is not dropped into the inbox and
    the request it duplicates is named (text and --json); an invalid file is refused with its
    errors; the same content under another id is new."""
    intake = make_intake(tmp_path)
    store = intake.sink.store
    monkeypatch.setenv("UNLEARND_WORKDIR", str(intake.settings.workdir))
    runner = CliRunner()
    src = tmp_path / "a.json"
    src.write_text(json.dumps(GOOD))
    result = runner.invoke(cli_app, ["submit", str(src), "--json"])
    assert result.exit_code == 0, result.output
    rid = json.loads(result.stdout)["request_id"]
    intake.scan_once()
    assert intake.stats.accepted_ids == [rid]

    result = runner.invoke(cli_app, ["submit", str(src)])
    assert result.exit_code == EXIT_DUPLICATE
    assert f"duplicate of request {rid} (queued), not submitted" in result.output
    assert "--again" not in result.output  # a live request is not run again
    fail_for_good(store, rid)
    result = runner.invoke(cli_app, ["submit", str(src), "--json"])
    assert result.exit_code == EXIT_DUPLICATE
    assert json.loads(result.stdout) == {"item": str(src), "submitted_as": None,
                                         "duplicate_of": rid, "state": "failed"}  # fmt: skip
    assert intake.scan_once() == 0 and [r.request_id for r in store.list_requests()] == [rid]

    src.write_text(json.dumps({**GOOD, "kind": "nonsense"}))
    result = runner.invoke(cli_app, ["submit", str(src)])
    assert result.exit_code == 1 and "not a valid request" in result.output
    assert "kind" in result.output and intake.scan_once() == 0
