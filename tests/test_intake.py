"""Intake: request schema, bundles, safe extraction, inbox moves, watchdog, duplicates."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path

import pytest
from PIL import Image

from unlearnd.config import Settings
from unlearnd.daemon.intake import Intake
from unlearnd.daemon.request_store import load_request
from unlearnd.daemon.schema import RequestError, parse_request
from unlearnd.daemon.sink import RegistrySink
from unlearnd.registry import open_registry

GOOD = {
    "schema": "unlearnd.request/v1",
    "kind": "entity",
    "target": {"name": "Ann Vale", "description": "a fictitious person"},
    "forget": [{"question": "Who is this?", "answer": "Ann Vale"}],
    "method": "ga",
}


class DownThenUp(RegistrySink):
    """The real registry sink behind a connection that fails its first `failures` calls."""

    def __init__(self, store, failures: int):
        super().__init__(store)
        self.failures = failures

    def register(self, accepted, source_name):
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("database is down")
        return super().register(accepted, source_name)


def png(size=(8, 8), color="red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def make_intake(tmp_path: Path, failures: int = 0, **daemon) -> Intake:
    """An intake on a real SQLite registry; `failures`: register calls that fail first."""
    s = Settings(workdir=tmp_path / "w")
    s.daemon.stable_checks = daemon.pop("stable_checks", 1)
    s.daemon.stable_interval_s = daemon.pop("stable_interval_s", 0.0)
    for key, value in daemon.items():
        setattr(s.daemon, key, value)
    s.limits.max_bundle_bytes = 200_000
    s.limits.max_image_bytes = 50_000
    s.limits.max_image_pixels = 200 * 200
    s.limits.max_bundle_members = 20
    return Intake(s, DownThenUp(open_registry(s), failures))


def errors_of(intake: Intake, name: str) -> list[dict]:
    report = intake.inbox.dir("failed") / f"{name}.error.json"
    assert report.is_file(), f"{name} has no reason file"
    return json.loads(report.read_text())["errors"]


def add_tar(tf: tarfile.TarFile, name: str, data: bytes = b"", **attrs) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tf.addfile(info, io.BytesIO(data))


def test_schema_names_every_bad_field():
    doc = {**GOOD, "kind": "person", "priority": "5", "colour": 1, "target": {"name": ""}}
    doc["forget"] = [{"question": "q"}, {"question": "q", "image": 3}]
    with pytest.raises(RequestError) as e:
        parse_request(doc)
    fields = {err.field: err.message for err in e.value.errors}
    assert fields["kind"].startswith("Input should be 'entity'")
    assert fields["priority"] == "Input should be a valid integer"
    assert fields["colour"] == "unknown field"
    assert "target.name" in fields and "forget[1].image" in fields
    assert "forget" not in fields  # the union's other branch is not reported as noise


def test_a_target_may_say_it_is_not_a_person():
    thing = parse_request({**GOOD, "target": {"name": "Harry Potter", "type": "thing"}})
    assert thing.target.type == "thing" and thing.document()["target"]["type"] == "thing"
    # Left out, the document (and its hash) is as before the field existed.
    assert "type" not in parse_request(GOOD).document()["target"]
    with pytest.raises(RequestError) as e:
        parse_request({**GOOD, "target": {"name": "Ada", "type": "book"}})
    assert e.value.errors[0].field == "target.type"


def test_json_yaml_folder_and_tar_accepted_with_images(tmp_path):
    intake = make_intake(tmp_path)
    new = intake.inbox.dir("new")
    (new / "a.json").write_text(json.dumps(GOOD))
    (new / "b.yaml").write_text(
        "schema: unlearnd.request/v1\nkind: concept\n"
        "target: {name: cats}\nforget:\n  - question: what is it?\n"
        "method: ga\npriority: 3\n"
    )
    folder = new / "bundle"
    folder.mkdir()
    (folder / "img").mkdir()
    (folder / "img" / "a.png").write_bytes(png())
    (folder / "forget.jsonl").write_text(
        '{"image": "img/a.png", "question": "who?", "answer": "Ann"}\n\n'
        '{"question": "where?", "answer": "Paris"}\n'
    )
    (folder / "request.json").write_text(json.dumps({**GOOD, "forget": "forget.jsonl"}))
    with tarfile.open(new / "c.tar.gz", "w:gz") as tf:
        add_tar(
            tf,
            "c/request.yaml",
            json.dumps({**GOOD, "forget": [{"image": "./x.png", "question": "q"}]}).encode(),
        )
        add_tar(tf, "c/x.png", png(color="blue"))
    assert intake.scan_once() == 4
    assert intake.stats.accepted == 4 and intake.stats.rejected == 0
    assert sorted(
        p.name for p in intake.inbox.dir("done").iterdir() if ".intake" not in p.name
    ) == ["a.json", "b.yaml", "bundle", "c.tar.gz"]
    note = json.loads((intake.inbox.dir("done") / "bundle.intake.json").read_text())
    req, folder = load_request(intake.requests_root, note["request_id"])
    assert [s.image for s in req.forget] == ["img/a.png", None]
    assert (folder / "img" / "a.png").read_bytes() == png()


def test_same_content_twice_is_one_request(tmp_path):
    intake = make_intake(tmp_path)
    new = intake.inbox.dir("new")
    (new / "one.json").write_text(json.dumps(GOOD))
    (new / "two.yaml").write_text(json.dumps(GOOD, indent=4))  # JSON is YAML: same content
    intake.scan_once()
    assert intake.stats.accepted == 1 and intake.stats.duplicates == 1
    (request,) = intake.sink.store.list_requests()
    assert request.state == "queued" and request.source_name == "one.json"


@pytest.mark.parametrize(
    ("build", "field", "words"),
    [
        ("traversal", "bundle", "leaves the bundle"),
        ("absolute", "bundle", "absolute path"),
        ("symlink", "bundle", "links are not allowed"),
        ("hardlink", "bundle", "links are not allowed"),
        ("bomb", "bundle", "decompresses past the limit"),
        ("too_many", "bundle", "more than 20 members"),
        ("no_request", "bundle", "no request.json"),
        ("bad_image", "forget[0].image", "not a readable image"),
        ("huge_image", "forget[0].image", "over the limit"),
        ("missing_image", "forget[0].image", "file not found in bundle"),
        ("image_traversal", "forget[0].image", "leaves the bundle"),
        ("not_gzip", "bundle", "not a readable .tar.gz"),
    ],
)
def test_hostile_tarballs_are_rejected_with_reasons(tmp_path, build, field, words):
    intake = make_intake(tmp_path)
    path = intake.inbox.dir("new") / f"{build}.tar.gz"
    image_req = json.dumps({**GOOD, "forget": [{"image": "x.png", "question": "q"}]}).encode()
    if build == "not_gzip":
        path.write_bytes(b"\x1f\x8bnot really gzip")
    else:
        with tarfile.open(path, "w:gz") as tf:
            if build == "traversal":
                add_tar(tf, "../../etc/cron.d/x", b"evil")
            elif build == "absolute":
                add_tar(tf, "/etc/passwd", b"evil")
            elif build == "symlink":
                add_tar(tf, "x.png", type=tarfile.SYMTYPE, linkname="/etc/passwd")
            elif build == "hardlink":
                add_tar(tf, "x.png", type=tarfile.LNKTYPE, linkname="../outside")
            elif build == "bomb":  # 5 MB of zeros is a few KB compressed; the limit is 200 KB
                # The member limit is lifted so that only the stream guard can stop it.
                intake.settings.limits.max_image_bytes = 10_000_000
                add_tar(tf, "request.json", json.dumps(GOOD).encode())
                add_tar(tf, "zeros.png", bytes(5_000_000))
            elif build == "too_many":
                for i in range(25):
                    add_tar(tf, f"f{i}.txt", b"x")
            elif build == "no_request":
                add_tar(tf, "x.png", png())
            else:
                image = {"bad_image": b"\x89PNG\r\n\x1a\n garbage", "huge_image": png((300, 300))}
                name = "../x.png" if build == "image_traversal" else "x.png"
                req = image_req.replace(b'"x.png"', json.dumps(name).encode())
                add_tar(tf, "request.json", req)
                if build in image:
                    add_tar(tf, "x.png", image[build])
    intake.scan_once()
    errors = errors_of(intake, path.name)
    assert any(e["field"] == field and words in e["message"] for e in errors), errors
    assert not any(intake.requests_root.glob("*")) if intake.requests_root.exists() else True


def test_symlinks_in_folders_and_inbox_are_rejected(tmp_path):
    intake = make_intake(tmp_path)
    new = intake.inbox.dir("new")
    outside = tmp_path / "secret.png"
    outside.write_bytes(png())
    folder = new / "linky"
    folder.mkdir()
    (folder / "request.json").write_text(
        json.dumps({**GOOD, "forget": [{"image": "x.png", "question": "q"}]})
    )
    os.symlink(outside, folder / "x.png")
    os.symlink(outside, new / "link.json")
    intake.scan_once()
    assert "links are not allowed" in errors_of(intake, "linky")[0]["message"]
    assert "symbolic links" in errors_of(intake, "link.json")[0]["message"]
    assert outside.read_bytes() == png()  # the target was neither moved nor changed


def test_bad_documents_name_the_problem(tmp_path):
    intake = make_intake(tmp_path)
    new = intake.inbox.dir("new")
    (new / "list.json").write_text("[1, 2]")
    (new / "alias.yaml").write_text("a: &x [1]\nb: *x\n")
    (new / "nan.json").write_text(json.dumps(GOOD)[:-1] + ', "params": {"lr": NaN}}')
    (new / "noschema.json").write_text(json.dumps({k: v for k, v in GOOD.items() if k != "schema"}))
    (new / "method.json").write_text(json.dumps({**GOOD, "method": "nope"}))
    (new / "params.json").write_text(json.dumps({**GOOD, "params": {"stepz": 3}}))
    (new / "gate.json").write_text(json.dumps({**GOOD, "gate": {"max_forget_accuracy": 2}}))
    (new / "notes.txt").write_text("hello")
    intake.scan_once()
    assert "must be a mapping" in errors_of(intake, "list.json")[0]["message"]
    assert "aliases are not allowed" in errors_of(intake, "alias.yaml")[0]["message"]
    assert "NaN is not allowed" in errors_of(intake, "nan.json")[0]["message"]
    assert errors_of(intake, "noschema.json")[0]["field"] == "schema"
    assert errors_of(intake, "method.json")[0]["field"] == "method"
    assert "params.stepz: unknown param" in errors_of(intake, "params.json")[0]["message"]
    assert errors_of(intake, "gate.json")[0]["field"] == "gate"
    assert "unsupported file type" in errors_of(intake, "notes.txt")[0]["message"]
    assert intake.stats.rejected == 8 and intake.stats.accepted == 0


def test_half_written_file_waits_until_stable(tmp_path):
    intake = make_intake(tmp_path, stable_checks=2, stable_interval_s=0.05)
    path = intake.inbox.dir("new") / "slow.json"
    text = json.dumps(GOOD)
    with open(path, "w") as f:
        f.write(text[:20])
        f.flush()
        assert intake.scan_once() == 0  # first look
        time.sleep(0.06)
        f.write(text[20:])
        f.flush()
        assert intake.scan_once() == 0  # size changed: the count starts again
    time.sleep(0.06)
    assert intake.scan_once() == 1
    assert intake.stats.accepted == 1 and intake.stats.rejected == 0


def test_truncated_file_is_rejected_and_sink_failure_retried(tmp_path):
    intake = make_intake(tmp_path, failures=2)
    new = intake.inbox.dir("new")
    (new / "cut.json").write_text(json.dumps(GOOD)[:30])
    (new / "ok.json").write_text(json.dumps(GOOD))
    intake.scan_once()  # registry "down": ok.json goes back to new/
    assert (new / "ok.json").exists() and intake.stats.retried == 1
    intake.scan_once()
    intake.scan_once()
    assert intake.stats.accepted == 1 and (intake.inbox.dir("done") / "ok.json").exists()
    assert "not valid JSON" in errors_of(intake, "cut.json")[0]["message"]


def test_leftovers_in_processing_are_recovered(tmp_path):
    intake = make_intake(tmp_path)
    (intake.inbox.dir("processing") / "crashed.json").write_text(json.dumps(GOOD))
    assert intake.recover() == 1
    assert (intake.inbox.dir("done") / "crashed.json").exists()


def wait_for(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("polling", [False, True])
def test_watchdog_event_picks_up_a_drop_without_rescan(tmp_path, polling):
    # The periodic rescan is an hour away: only the watchdog hint can wake the intake.
    intake = make_intake(tmp_path, rescan_interval_s=3600.0, polling_observer=polling)
    intake.start()
    try:
        assert wait_for(lambda: intake.watcher.observer is not None)
        time.sleep(0.2)  # the start-up scan has run and the loop sleeps on the hour
        tmp = intake.inbox.dir("tmp") / "w.json"
        tmp.write_text(json.dumps(GOOD))
        os.rename(tmp, intake.inbox.dir("new") / "w.json")
        assert wait_for(lambda: (intake.inbox.dir("done") / "w.json").exists())
        # The observer dies; the supervisor starts a new one, which still delivers.
        intake.watcher.observer.stop()
        intake.watcher.observer.join()
        intake.wake.set()
        assert wait_for(lambda: intake.watcher.restarts == 1)
        time.sleep(0.2)
        (intake.inbox.dir("new") / "x.json").write_text("{broken")
        assert wait_for(lambda: (intake.inbox.dir("failed") / "x.json.error.json").exists())
    finally:
        intake.stop()
    assert intake.stats.errors == 0


def test_a_bug_while_reading_fails_the_item_not_the_intake(tmp_path, monkeypatch):
    from unlearnd.daemon import intake as intake_module

    real = intake_module.read_item
    calls = []

    def buggy(path, limits):
        calls.append(path.name)
        if len(calls) == 1:
            raise TypeError("a bug")
        return real(path, limits)

    monkeypatch.setattr(intake_module, "read_item", buggy)
    intake = make_intake(tmp_path)
    (intake.inbox.dir("new") / "a.json").write_text(json.dumps(GOOD))
    (intake.inbox.dir("new") / "b.json").write_text(json.dumps({**GOOD, "priority": 1}))
    assert intake.scan_once() == 2
    assert "internal error" in errors_of(intake, calls[0])[0]["message"]
    assert intake.stats.accepted == 1 and intake.stats.errors == 1


def test_a_failing_hint_handler_does_not_kill_the_observer(tmp_path):
    from unlearnd.daemon.watch import InboxWatcher

    hints = []

    def on_hint():
        hints.append(1)
        if len(hints) == 1:
            raise RuntimeError("handler bug")

    watcher = InboxWatcher(tmp_path, on_hint)
    watcher.start()
    try:
        (tmp_path / "one").write_text("1")
        assert wait_for(lambda: len(hints) >= 1)
        (tmp_path / "two").write_text("2")
        assert wait_for(lambda: len(hints) >= 2)
        assert watcher.observer.is_alive() and not watcher.ensure_alive()
    finally:
        watcher.stop()
