"""Content-addressed blobs: dedupe, corruption detection, GC, crash safety, PEFT layout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from test_registry_support import add_request, blob, version

from unlearnd.registry import ArtifactCorrupt, Conflict, NotFound

pytest_plugins = ["test_registry_support"]  # the db_url and store fixtures


def test_same_bytes_are_one_blob_and_load_back(store):
    tensors = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2, dtype=torch.bfloat16)}
    first = store.artifacts.put_tensors(tensors, {"producer": "test", "z": "1"})
    second = store.artifacts.put_tensors(
        dict(reversed(tensors.items())), {"z": "1", "producer": "test"}
    )
    assert first == second and len(list(store.artifacts.blobs())) == 1
    loaded = store.artifacts.load_tensors(first)
    assert torch.equal(loaded["a"], tensors["a"]) and loaded["b"].dtype == torch.bfloat16
    assert store.artifacts.load_metadata(first) == {"producer": "test", "z": "1"}
    assert store.artifacts.put_bytes(b"x") == store.artifacts.put_bytes(b"x")
    assert list(store.artifacts.tmp.iterdir()) == []  # no temp file left behind
    with pytest.raises(NotFound):
        store.artifacts.load_tensors("f" * 64)


def test_flipped_byte_is_detected_and_marks_the_version_broken(store):
    sha = blob(store, 3.0)
    v = version(store, experts={"e1": sha})
    other = version(store, experts={"e2": blob(store, 4.0)})
    path = store.artifacts.root / sha[:2] / sha
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # one bit in the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactCorrupt, match=sha):
        store.artifacts.load_tensors(sha)
    with pytest.raises(ArtifactCorrupt):
        store.artifacts.path(sha)
    assert store.get_version(v.id).status == "broken"
    assert sha in store.get_version(v.id).broken_reason
    assert store.get_version(other.id).status == "committed"
    assert store.list_events(kind="version_broken")[0].version_id == v.id
    store.artifacts.put_tensors({"w": torch.full((4, 4), 3.0)})  # the same content again
    assert store.artifacts.load_tensors(sha)["w"][0, 0] == 3.0  # repaired in place


def test_gc_removes_only_unreferenced_blobs_past_the_grace_period(store):
    add_request(store, "r1")
    kept = blob(store, 1.0)
    version(store, experts={"e1": kept})
    by_expert = blob(store, 2.0)
    store.create_expert(expert_id="e2", artifact_sha256=by_expert)
    orphan = blob(store, 3.0)
    assert store.gc(min_age_s=3600) == []  # the orphan is young: a running job may own it
    assert store.gc(dry_run=True, min_age_s=0) == [orphan] and store.artifacts.exists(orphan)
    assert store.gc(min_age_s=0) == [orphan]
    assert not store.artifacts.exists(orphan)
    for sha in (kept, by_expert):
        assert store.artifacts.load_tensors(sha)["w"].shape == (4, 4)


def test_gc_keeps_every_linked_version_report_and_a_bad_report_breaks_nothing(store):
    v = version(store, experts={"e1": blob(store, 1.0)})
    child = version(store, parent=v.id, experts={"e1": blob(store, 1.0)})
    first, second = store.artifacts.put_bytes(b"report 1"), store.artifacts.put_bytes(b"report 2")
    unlinked = store.artifacts.put_bytes(b"a report whose link was never written")
    assert store.get_version_report(v.id) is None
    store.set_version_report(v.id, first)
    store.set_version_report(v.id, second)
    assert store.get_version_report(v.id) == second  # the newest link wins
    assert store.get_version_report(child.id) is None  # a child does not inherit it
    assert store.gc(min_age_s=0) == [unlinked]
    assert store.artifacts.exists(first) and store.artifacts.exists(second)
    with pytest.raises(NotFound):
        store.get_version_report(999)
    with pytest.raises(NotFound):
        store.set_version_report(999, second)
    with pytest.raises(Conflict, match="not in the artifact store"):
        store.set_version_report(v.id, unlinked)
    (store.artifacts.root / second[:2] / second).write_bytes(b"tampered")
    with pytest.raises(ArtifactCorrupt):
        store.artifacts.read_bytes(second)
    assert store.get_version(v.id).status == "committed"  # the model itself is intact


WRITER = textwrap.dedent(
    """
    import os, sys
    from unlearnd.registry import open_store
    store = open_store(sys.argv[1], sys.argv[2])
    head = store.get_alias()
    i = 0
    print("ready", flush=True)
    while True:
        i += 1
        sha = store.artifacts.put_bytes(os.urandom(65536))
        v = store.create_version(base_fingerprint="b", parent_id=head,
                                 manifest={"experts": {"e": sha}})
        store.move_alias("live", v.id, expected_from=head, who="writer", why=str(i))
        head = v.id
    """
)


@pytest.mark.slow
def test_kill_during_writes_leaves_no_version_pointing_at_a_missing_blob(db_url, tmp_path):
    """SIGKILL a process that writes blobs and commits versions in a loop, at a random moment."""
    artifacts = tmp_path / "artifacts"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, db_url, str(artifacts)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    time.sleep(1.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    from unlearnd.registry import open_store

    store = open_store(db_url, artifacts)
    versions = store.list_versions(limit=100_000)
    assert versions, "the writer committed nothing before the kill"
    for v in versions:  # every committed version's blob is there, whole (hash verified)
        assert len(store.artifacts.read_bytes(v.manifest["experts"]["e"])) == 65536
    history = store.alias_history()
    # the kill may fall between a version's commit and its alias move (two transactions here)
    assert store.get_alias() == history[-1].to_version in (versions[0].id, versions[1].id)
    store.gc(min_age_s=0)  # removes a blob written just before the kill, if any, and temp files
    assert {sha for sha, _ in store.artifacts.blobs()} == {
        v.manifest["experts"]["e"] for v in versions
    }
    assert list(store.artifacts.tmp.iterdir()) == []
    store.close()
