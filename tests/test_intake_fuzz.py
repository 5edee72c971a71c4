"""Generated bad input: every malformed file or bundle is rejected with a reason file, the
intake stays up, and nothing dropped is lost (each name ends in done/ or failed/)."""

from __future__ import annotations

import json
import os
import tarfile
import time
from itertools import count
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_intake import GOOD, add_tar, make_intake, png, wait_for

# What the running intake thread imports on its first request (the deployment check, the
# method check), imported here first: hypothesis walks sys.modules from this thread while it
# draws, and a module appearing meanwhile breaks its walk ("dictionary changed size").
import unlearnd.daemon.job  # noqa: E402, F401
import unlearnd.serving.deployment  # noqa: E402, F401
import unlearnd.world.deployment  # noqa: E402, F401  (the provider of a deployment with no model)
from unlearnd.methods import METHODS

FIELDS = set(GOOD) | {"id", "retain", "params", "gate", "requested_by", "reason", "priority"}
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_value = st.recursive(
    json_leaf,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=6,
)
not_str = st.none() | st.booleans() | st.integers() | st.lists(json_leaf, max_size=2)
not_dict = json_leaf | st.lists(json_leaf, max_size=2)

# For each field, values that can never be valid there.
WRONG = {
    "schema": st.text(max_size=20).filter(lambda s: s != "unlearnd.request/v1") | not_str,
    "id": st.sampled_from(["../up", "/abs", "", "a b", "x" * 65, ".hidden"])
    | st.booleans()
    | st.integers()
    | st.lists(json_leaf, max_size=2),
    "kind": st.text(max_size=10).filter(
        lambda s: s not in ("entity", "concept", "domain", "samples")
    )
    | not_str,
    "target": not_dict | st.just({}) | st.just({"name": ""}) | st.just({"name": "a", "x": 1}),
    "forget": st.just([])
    | st.just("")
    | st.integers()
    | st.booleans()
    | st.dictionaries(st.text(max_size=3), json_leaf, max_size=2)
    | st.lists(not_dict, min_size=1, max_size=3),
    "retain": st.integers() | st.booleans() | st.lists(not_dict, min_size=1, max_size=2),
    "method": st.text(min_size=1, max_size=10).filter(lambda s: s not in METHODS)
    | st.integers()
    | st.booleans(),
    "params": st.lists(json_leaf, max_size=2) | st.integers() | st.just({"no_such_param": 1}),
    "gate": st.integers() | st.just({"max_forget_accuracy": 5}) | st.just({"bogus": 1}),
    "requested_by": st.integers() | st.booleans() | st.lists(json_leaf, min_size=1, max_size=2),
    "priority": st.text(max_size=3)
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.integers(min_value=1001)
    | st.integers(max_value=-1001),
}
BAD_SAMPLES = st.sampled_from(
    [
        {"image": "missing.png", "question": "q"},
        {"image": "../../etc/passwd", "question": "q"},
        {"image": "/etc/passwd", "question": "q"},
        {"question": ""},
        {"answer": "no question"},
        {"question": "q", "extra": True},
        {"question": "q", "image": 7},
    ]
)


@st.composite
def bad_document(draw) -> dict:
    doc = json.loads(json.dumps(GOOD))
    how = draw(st.sampled_from(["drop", "unknown", "wrong", "sample"]))
    if how == "drop":
        del doc[draw(st.sampled_from(["schema", "kind", "target", "forget"]))]
    elif how == "unknown":
        key = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in FIELDS))
        doc[key] = draw(json_value)
    elif how == "wrong":
        field = draw(st.sampled_from(sorted(WRONG)))
        doc[field] = draw(WRONG[field])
    else:
        doc["forget"] = doc["forget"] + [draw(BAD_SAMPLES)]
    return doc


@st.composite
def case(draw) -> tuple[str, object]:
    """(file name suffix, how to build it); every case here is invalid."""
    kind = draw(
        st.sampled_from(
            ["json", "yaml", "folder", "tar", "garbage", "truncated", "hostile_tar", "bad_folder"]
        )
    )
    if kind in ("json", "yaml", "folder", "tar"):
        return kind, draw(bad_document())
    if kind == "garbage":
        return draw(st.sampled_from(["json", "yaml", "tar", "txt"])), draw(st.binary(max_size=200))
    if kind == "truncated":
        text = json.dumps(GOOD)
        return "json", text[: draw(st.integers(0, len(text) - 1))].encode()
    if kind == "hostile_tar":
        return "hostile_tar", draw(
            st.sampled_from(
                [
                    "traversal",
                    "absolute",
                    "symlink",
                    "hardlink",
                    "device",
                    "bomb",
                    "many",
                    "empty",
                    "two_requests",
                ]
            )
        )
    return "bad_folder", draw(st.sampled_from(["symlink", "no_request", "bad_image", "fifo"]))


def build(folder: Path, name: str, kind: str, payload) -> Path:
    """Write the case into `folder` (tmp/ or new/) and return its path."""
    if kind == "json":
        path = folder / f"{name}.json"
        path.write_bytes(payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    elif kind == "yaml":
        path = folder / f"{name}.yaml"
        path.write_bytes(
            payload if isinstance(payload, bytes) else yaml.safe_dump(payload).encode()
        )
    elif kind == "txt":
        path = folder / f"{name}.txt"
        path.write_bytes(payload)
    elif kind == "folder":
        path = folder / name
        path.mkdir()
        (path / "request.json").write_text(json.dumps(payload))
    elif kind == "tar" and isinstance(payload, bytes):
        path = folder / f"{name}.tar.gz"
        path.write_bytes(payload)
    elif kind == "tar":
        path = folder / f"{name}.tar.gz"
        with tarfile.open(path, "w:gz") as tf:
            add_tar(tf, "request.json", json.dumps(payload).encode())
    elif kind == "hostile_tar":
        path = folder / f"{name}.tar.gz"
        with tarfile.open(path, "w:gz") as tf:
            add_tar(tf, "request.json", json.dumps(GOOD).encode())
            if payload == "traversal":
                add_tar(tf, "a/../../x", b"x")
            elif payload == "absolute":
                add_tar(tf, "/tmp/x", b"x")
            elif payload == "symlink":
                add_tar(tf, "l", type=tarfile.SYMTYPE, linkname="../../etc/passwd")
            elif payload == "hardlink":
                add_tar(tf, "l", type=tarfile.LNKTYPE, linkname="request.json")
            elif payload == "device":
                add_tar(tf, "dev", type=tarfile.CHRTYPE)
            elif payload == "bomb":
                for i in range(6):
                    add_tar(tf, f"z{i}.png", bytes(45_000))
            elif payload == "many":
                for i in range(30):
                    add_tar(tf, f"f{i}", b"")
            elif payload == "two_requests":
                add_tar(tf, "request.yaml", b"{}")
        if payload == "empty":
            with tarfile.open(path, "w:gz"):
                pass
    else:
        path = folder / name
        path.mkdir()
        req = {**GOOD, "forget": [{"image": "x.png", "question": "q"}]}
        if payload != "no_request":
            (path / "request.json").write_text(json.dumps(req))
        if payload == "symlink":
            os.symlink("/etc/hostname", path / "x.png")
        elif payload == "bad_image":
            (path / "x.png").write_bytes(png()[:40])
        elif payload == "fifo":
            os.mkfifo(path / "x.png")
        else:
            (path / "x.png").write_bytes(png())
    return path


def check_all_rejected(intake, names: list[str]) -> None:
    failed = intake.inbox.dir("failed")
    assert not os.listdir(intake.inbox.dir("new")) and not os.listdir(
        intake.inbox.dir("processing")
    )
    assert not [p for p in intake.inbox.dir("done").iterdir()]
    for name in names:
        report = json.loads((failed / f"{name}.error.json").read_text())
        assert report["errors"] and all(e["message"] for e in report["errors"]), name
        assert (failed / name).exists() or (failed / name).is_symlink()
    assert intake.stats.rejected == len(names) and intake.stats.errors == 0
    audit = intake.sink.store.list_events(kind="request_rejected", limit=len(names) + 10)
    assert len(audit) == len(names)  # each reject is also in the registry's audit trail


def test_generated_bad_input_quick(tmp_path):
    intake = make_intake(tmp_path)
    numbers = count()
    names: list[str] = []

    @settings(
        max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case())
    def drop_one(c):
        kind, payload = c
        path = build(intake.inbox.dir("new"), f"c{next(numbers)}", kind, payload)
        names.append(path.name)
        assert intake.scan_once() == 1

    drop_one()
    check_all_rejected(intake, names)


@pytest.mark.slow
def test_generated_bad_input_1200_through_the_running_intake(tmp_path):
    """The real loop (watchdog + rescans) under a stream of 1200 bad drops."""
    intake = make_intake(tmp_path, stable_checks=2, stable_interval_s=0.05, rescan_interval_s=0.5)
    numbers = count()
    names: list[str] = []
    intake.start()
    try:

        @settings(
            max_examples=1200, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case())
        def drop_one(c):
            kind, payload = c
            path = build(intake.inbox.dir("tmp"), f"c{next(numbers)}", kind, payload)
            os.rename(path, intake.inbox.dir("new") / path.name)
            names.append(path.name)

        drop_one()
        # A writer that stalls past the stability window: what is taken is rejected, not lost.
        with open(intake.inbox.dir("new") / "half.json", "w") as f:
            f.write(json.dumps(GOOD)[:25])
            f.flush()
            time.sleep(0.3)
            f.write("...")
        names.append("half.json")
        assert wait_for(lambda: intake.stats.rejected == len(names), timeout=120)
        assert intake._thread.is_alive()
    finally:
        intake.stop()
    check_all_rejected(intake, names)
    assert "not valid JSON" in (intake.inbox.dir("failed") / "half.json.error.json").read_text()
