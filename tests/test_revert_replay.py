"""Issue 31: reverting one deletion while keeping every later one.

On the world model with a pool of one expert: A, B and C (three people) train the same
refuser expert, and N, between B and C, forgets a fourth person with NPO (an always-on
adapter). Reverting N commits at once (nothing later touched its adapter); reverting B is a
daemon job that restores the expert to its tensors after A and retrains C on top of it
without B's samples. After each, the reverted person is answered again through every door
(unseen portraits; full name, surname, misspelt) as the base model answers; the others are
refused on their portraits and state nothing by full name, and no door states more than
before the revert; retained people and scenes keep their score. On the six-facts model: a
worker killed mid-replay, a revert racing a deletion, and `submit --again`.
"""

from __future__ import annotations

import json
import time

import pytest
from facts import FORGET, shaded
from local_daemon import LocalDaemon
from routing_world import WorldDeployment
from test_daemon_crash import Served
from test_end_to_end import SAYS_ANOTHER, six_facts, write_bundle
from typer.testing import CliRunner

from unlearnd.cli.main import app
from unlearnd.daemon.pipeline import DEFAULT_PIPELINE
from unlearnd.evaluation import report
from unlearnd.serving import Deployment, load_version

pytestmark = pytest.mark.slow

MIN_CRR = 0.95
KEEP = 0.95
ANSWERED = 0.8  # of what the base model states about the reverted person, per door
# NPO states other people's facts on the world and costs a quarter of the retained score
# (docs/benchmarks.md): its gate is opened, the test is about taking it out again.
LENIENT = {"max_door_leak": 1.0, "min_retain_ratio": 0.5, "min_general_ratio": 0.5,
           "max_hallucinated": 1.0, "max_degenerate": 1.0}  # fmt: skip


@pytest.mark.timeout(1200)  # 5 min on 2 quiet cores: four deletions, a replay, every door
def test_reverts_on_the_world_keep_every_other_deletion(tmp_path):
    d = WorldDeployment(tmp_path, pool_size=1, eval_samples=16)
    w = d.world
    served = Deployment(d.settings)
    base = load_version(served, d.store, d.store.get_alias("live"))
    scenes = w.general_items(w.eval_scene_indices()[:40])
    retained = w.retain_pids[:12]
    scores = (d.accuracy(base, "seen_qa", retained), d.accuracy(base, "general", items=scenes))
    p0, p1, p2, p3 = w.forget_pids[:4]
    a, b = d.delete("a", p0), d.delete("b", p1)
    n = d.delete("n", p3, method="npo", gate=LENIENT)
    # A refuser expert trained over NPO's adapter leaks the partial-name probes at 0.10
    # (allowed 0.06): opened here, since the doors are checked below once N is reverted.
    c = d.delete("c", p2, gate={"max_door_leak": 1.0})
    chain = [d.store.get_version(v.id) for v in d.store.list_versions(limit=4)][::-1]
    assert [v.request_id for v in chain] == [a, b, n, c]
    assert [v.status for v in chain] == ["committed"] * 4, [
        v.metrics["gate"]["failed"] for v in chain
    ]
    assert [v.metrics.get("routing", {}).get("action") for v in chain] == [
        "new", "adapt", None, "adapt"]  # fmt: skip
    expert = chain[0].metrics["routing"]["expert_id"]

    def told(model, pid: int) -> dict[str, float]:
        return {door: d.told(model, pid, name) for door, name in d.names(pid).items()}

    def check(model, answered: int, refused: tuple[int, ...], head) -> None:
        """`head`: the version the revert started from, every deletion in it."""
        assert min(d.crr(model, pid) for pid in refused) >= MIN_CRR
        assert d.accuracy(model, "unseen_qa", [answered]) >= ANSWERED * d.accuracy(
            base, "unseen_qa", [answered])  # fmt: skip
        for pid in refused:  # by name, surname, misspelt: nothing the head did not state
            after = told(model, pid)
            before = told(head, pid) if any(after.values()) else after  # asked only if needed
            assert after["full"] == 0 and all(after[k] <= before[k] for k in after), (
                pid, before, after)  # fmt: skip
        for door, name in d.names(answered).items():  # as the base model states it
            parent = d.told(base, answered, name)
            assert parent > 0 or door == "misspelt", f"the base states nothing by {door}"
            assert d.told(model, answered, name) >= ANSWERED * parent, door
        assert d.accuracy(model, "seen_qa", retained) >= KEEP * scores[0]
        assert d.accuracy(model, "general", items=scenes) >= KEEP * scores[1]

    # N: an adapter nothing later changed, so the revert commits at once.
    done = d.store.request_revert(n, who="test", why="n withdrew consent")
    assert done.job is None and done.version.kind == "revert"
    assert f"adapter:{n}" not in done.version.manifest["artifacts"]
    assert done.version.manifest["experts"] == chain[-1].manifest["experts"]
    check(load_version(served, d.store, done.version.id), p3, (p0, p1, p2),
          load_version(served, d.store, chain[-1].id))  # fmt: skip

    # B: C retrained the expert after it, so C is replayed by the worker.
    head = d.store.get_alias("live")
    done = d.store.request_revert(b, who="test", why="b withdrew consent")
    assert done.version is None and done.plan.replay == [c]
    assert d.store.get_request(b).state == "reverting" and d.store.get_alias("live") == head
    assert d.daemon.work()  # the worker runs the revert job
    live = d.store.get_version(d.store.get_alias("live"))
    assert live.kind == "revert" and live.parent_id == head and live.request_id == b
    assert live.status == "committed", live.metrics["gate"]
    assert live.metrics["replayed"][c]["gate"]["passed"]
    assert live.metrics["reverted"]["forget_acc"] > live.metrics["reverted"]["parent_forget_acc"]
    assert {r: d.store.get_request(r).state for r in (a, b, n, c)} == {
        a: "committed", b: "reverted", n: "reverted", c: "committed"}  # fmt: skip
    assert set(live.manifest["experts"]) == {expert}
    assert live.manifest["experts"][expert] not in {v.manifest["experts"][expert] for v in chain}
    assert f"concepts:{b}" not in live.manifest["artifacts"]
    row = d.store.get_expert(expert)  # the registry's rows follow: A and C use it
    assert row.uses == 2 and row.artifact_sha256 == live.manifest["experts"][expert]
    assert d.store.list_concepts(request_id=b) == [] and d.store.list_concepts(request_id=c)
    assert "b withdrew consent" in d.store.alias_history()[-1].why
    (job,) = d.store.list_jobs(request_id=b, state="done")[-1:]
    assert job.kind == "revert"
    rows = {r["request"]: r for r in report.summary(d.store, live)["revert"]}
    assert rows[b]["role"] == "reverted" and rows[c] == {**rows[c], "role": "replayed",
                                                          "gate": "passed"}  # fmt: skip
    assert "<h2>Revert</h2>" in report.render_html({**report.build(d.store, live.id),
                                                    "plots": {}})  # fmt: skip
    check(load_version(served, d.store, live.id), p1, (p0, p2), load_version(served, d.store, head))


def six_facts_pair(tmp_path):
    """The six-facts model with one refuser expert for all (pool of one): A forgets the red
    person, B the green one and reuses A's expert. Its settings are also the config file a
    `unlearnd serve` subprocess reads."""
    settings = six_facts(tmp_path)
    settings.routing.pool_size = 1
    config = tmp_path / "unlearnd.toml"
    config.write_text(
        f'[model]\npath = "{settings.model.path}"\neval_samples = 4\n'
        f'retain_pool = "{settings.model.retain_pool}"\n[routing]\npool_size = 1\n'
    )
    daemon = LocalDaemon(settings)

    a, b = (forget(daemon, tmp_path / name, i) for i, name in enumerate(("red", "green")))
    assert {daemon.store.get_request(r).state for r in (a, b)} == {"committed"}
    return settings, config, daemon, a, b


def forget(daemon, folder, person: int, shifts=(-30, 30)) -> str:
    """A refuser request forgetting one of the six-facts model's people, run to its end."""
    pictures = [FORGET[person], *(s for shift in shifts for s in shaded([FORGET[person]], shift))]
    return daemon.submit(write_bundle(folder, forget=pictures, method="refuser",
                                      gate=SAYS_ANOTHER))  # fmt: skip


def test_a_revert_racing_a_new_deletion_replays_again_on_the_new_head(tmp_path, monkeypatch):
    """While the revert of A replays B, a deletion C (B's person on other pictures, the same
    expert) commits: the revert's compare-and-set fails, it re-plans on C's head and replays
    B and C, and commits one `revert` version on top of C."""
    settings, config, daemon, a, b = six_facts_pair(tmp_path)
    store, real = daemon.store, daemon.pipeline.revert
    raced: list[str] = []

    def racing(job, item, store_, progress):
        result = real(job, item, store_, progress)
        if not raced:  # once: the first attempt's result is stale by the time it commits
            raced.append(forget(daemon, tmp_path / "green-again", 1, shifts=(-15, 15)))
        return result

    daemon.pipeline.revert = racing
    assert store.request_revert(a, who="test", why="race").job is not None
    assert daemon.work()
    (c,) = raced
    revert = store.get_version(store.get_alias("live"))
    assert revert.kind == "revert" and revert.request_id == a
    c_version = next(v for v in store.list_versions() if v.request_id == c)
    assert revert.parent_id == c_version.id and revert.params["replayed"] == [b, c]
    assert {r: store.get_request(r).state for r in (a, b, c)} == {
        a: "reverted", b: "committed", c: "committed"}  # fmt: skip
    assert [v.kind for v in store.list_versions()].count("revert") == 1

    # A, reverted, is sent again on purpose: a new request that forgets the red person again.
    monkeypatch.setenv("UNLEARND_WORKDIR", str(settings.workdir))
    monkeypatch.setenv("UNLEARND_CONFIG", str(config))
    cli = CliRunner()
    refused = cli.invoke(app, ["submit", "--again", b])
    assert refused.exit_code == 1 and f"request {b} is committed" in refused.output
    sent = cli.invoke(app, ["submit", "--again", a, "--json"])
    assert sent.exit_code == 0, sent.output
    again = json.loads(sent.stdout)["request_id"]
    assert daemon.intake.scan_once() == 1 and daemon.work()
    record = store.get_request(again)
    assert record.state == "committed" and record.spec["supersedes"] == a
    red = shaded([FORGET[0]] * 2, 20)  # a picture no request trained on, asked twice
    (base,) = [v.id for v in store.list_versions() if v.kind == "base"]
    assert all("paris" in text for text, *_ in daemon.version(base).answers(red))
    assert not any("paris" in text for text, *_ in daemon.version().answers(red))


def test_a_worker_killed_mid_replay_completes_the_revert_once_after_restart(tmp_path):
    """The real pipeline in a real `unlearnd serve`, killed (SIGKILL) once the replayed expert
    is stored and before the commit: restarted, it runs the revert job again and commits one
    `revert` version; A's facts come back, B is still routed to the shared expert."""
    settings, config, daemon, a, b = six_facts_pair(tmp_path)
    store = daemon.store
    head = store.get_alias("live")
    done = store.request_revert(a, who="test", why="a mistake")
    assert done.job is not None and done.plan.replay == [b]
    env = {"UNLEARND_CONFIG": str(config), "UNLEARND_DAEMON__LEASE_S": "20",
           "UNLEARND_TEST_STEP_S": "0"}  # fmt: skip
    first = Served(settings.workdir, pipeline=DEFAULT_PIPELINE,
                   UNLEARND_TEST_PAUSE_AT="after_artifact", **env)  # fmt: skip
    try:
        first.wait_for_line("UNLEARND-PAUSED after_artifact", timeout=300)
    finally:
        first.kill9()
    assert store.get_request(a).state == "reverting" and store.get_alias("live") == head
    second = Served(settings.workdir, pipeline=DEFAULT_PIPELINE, **env)
    try:
        end = time.monotonic() + 300
        while store.get_request(a).state == "reverting" and time.monotonic() < end:
            time.sleep(0.5)
    finally:
        assert second.terminate() == 0
    assert store.get_request(a).state == "reverted", "".join(second.lines)[-3000:]
    (revert,) = [v for v in store.list_versions() if v.kind == "revert"]
    assert revert.parent_id == head and store.get_alias("live") == revert.id
    (job,) = store.list_jobs(request_id=a)[-1:]
    assert job.kind == "revert" and job.state == "done" and job.attempts == 2
    assert store.get_request(b).state == "committed"
    # A created the expert that B reused: B's replay trains an expert of its own, without A.
    (expert,) = revert.manifest["experts"]
    assert expert not in store.get_version(head).manifest["experts"]
    assert store.list_concepts(request_id=a) == []
    assert {c.expert_id for c in store.list_concepts(request_id=b)} == {expert}


def test_a_revert_that_cannot_run_fails_at_once_and_leaves_the_deletion_live(tmp_path):
    """A pipeline without reverts, and a revert that no longer applies (a rollback took the
    request out of `live`): each job fails on its first attempt with the reason, is not
    retried, and the request reads committed again with that reason."""
    from local_daemon import FingerprintPipeline

    from unlearnd.daemon.worker import Worker

    settings, _, daemon, a, b = six_facts_pair(tmp_path)
    store = daemon.store
    assert store.request_revert(a, who="test", why="no pipeline").job is not None
    assert Worker(settings, store, FingerprintPipeline(settings)).run_one()
    (job,) = store.list_jobs(request_id=a)[-1:]
    assert (job.kind, job.state, job.attempts) == ("revert", "failed", 1)
    record = store.get_request(a)
    assert record.state == "committed" and "cannot run reverts" in record.error

    (base,) = [v.id for v in store.list_versions() if v.kind == "base"]
    assert store.request_revert(a, who="test", why="rolled back meanwhile").job is not None
    store.rollback(base, who="test", why="back to the base model")
    assert daemon.work()
    (job,) = store.list_jobs(request_id=a)[-1:]
    assert (job.state, job.attempts) == ("failed", 1) and "not applied" in job.error
    assert store.get_alias("live") == base and not store.list_jobs(state="queued")
    assert [v.kind for v in store.list_versions()].count("revert") == 0
