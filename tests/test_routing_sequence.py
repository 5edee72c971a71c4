"""Issue 6 on the world model: deletions in sequence through the daemon with refuser experts.

Pool of 2: a new expert, a second new one (the pool is full), a request about the first
person again (reuses its expert), a third person (adapts the least used expert, which keeps
refusing its earlier person by replay); then a revert of the last one.
"""

from __future__ import annotations

import pytest
from routing_world import WorldDeployment

from unlearnd.serving import Deployment, ServedVersion, load_version
from unlearnd.world.people import FACT_CATEGORIES, IDENTITY

pytestmark = pytest.mark.slow

MIN_CRR = 0.95  # the goal (issue 22): a refusal of the asked category on unseen portraits
KEEP = 0.95  # retained people and general questions keep >= 95% of the base score


def test_four_deletions_reuse_adapt_and_revert(tmp_path):
    d = WorldDeployment(tmp_path, pool_size=2)
    deployment = Deployment(d.settings)
    world = d.world
    p0, p1, p2 = world.forget_pids[:3]
    retained = world.retain_pids[:12]
    base = load_version(deployment, d.store, d.store.get_alias("live"))
    base_retain = d.accuracy(base, "seen_qa", retained)
    general = world.general_items(world.eval_scene_indices()[:40])  # 200 of the 1,500
    base_general = d.accuracy(base, "general", items=general)

    steps = [
        ("first", p0, (IDENTITY, "location", "occupation"), "new"),
        ("second", p1, None, "new"),
        ("first-again", p0, ("hobby", "pet", "food"), "reuse"),
        ("third", p2, None, "adapt"),
    ]
    experts = {}
    forgotten = []
    for name, pid, cats, action in steps:
        rid = d.delete(name, pid, cats) if cats else d.delete(name, pid)
        assert d.store.get_request(rid).state == "committed", d.store.get_version(
            d.store.list_versions(limit=1)[0].id
        ).metrics["gate"]
        version = d.store.get_version(d.store.get_alias("live"))
        decision = version.metrics["routing"]
        assert decision["action"] == action, decision
        experts[name] = decision["expert_id"]
        if action == "reuse":  # the parent refuses the person already: scored against the base
            assert version.metrics["parent_forget_acc"] == 0 < version.metrics["base_forget_acc"]
        forgotten.append(pid)
        model = load_version(deployment, d.store, version.id)
        for person in set(forgotten):
            asked = [IDENTITY, *FACT_CATEGORIES] if person != p0 else list(_asked(steps, name))
            assert d.crr(model, person, categories=asked) >= MIN_CRR, (name, person)
        assert d.accuracy(model, "seen_qa", retained) >= KEEP * base_retain
        assert d.accuracy(model, "general", items=general) >= KEEP * base_general

    assert experts["first-again"] == experts["first"]
    assert experts["second"] != experts["first"]
    assert experts["third"] == experts["second"]  # least used: one request against two
    # The registry's rows follow what went live: one expert row per expert, concept rows
    # per request (the database truth the index can be rebuilt from).
    rows = {e.id: e for e in d.store.list_experts()}
    assert {k: rows[k].uses for k in rows} == {experts["first"]: 2, experts["second"]: 2}
    live = d.store.get_version(d.store.get_alias("live"))
    assert rows[experts["third"]].artifact_sha256 == live.manifest["experts"][experts["third"]]
    third_concepts = d.store.list_concepts(request_id=live.request_id)
    assert {c.modality for c in third_concepts} == {"visual", "textual"}

    # The answer through the gate says which expert it switched on, and why.
    served = ServedVersion(deployment, d.store, d.store.get_alias("live"))
    portrait = world.image(("portrait", p2, world.spec.n_seen))
    answer = served.answer("Who is this person ?", portrait)
    assert answer.routing["experts"] == {experts["third"]: pytest.approx(1.0, abs=1e-3)}
    unrelated = world.image(("scene", world.eval_scene_indices()[0]))
    assert served.answer("What colour is the shape ?", unrelated).routing["experts"] == {}

    # Revert the last deletion: the third person is answered again, the others stay forgotten.
    reverted = d.store.revert(d.store.get_version(d.store.get_alias("live")).request_id,
                              who="test", why="revert the third")  # fmt: skip
    assert d.store.list_concepts(request_id=live.request_id) == []  # active ones: none left
    restored = d.store.get_expert(experts["second"])
    assert restored.artifact_sha256 == reverted.manifest["experts"][experts["second"]]
    model = load_version(deployment, d.store, reverted.id)
    assert d.accuracy(model, "unseen_qa", [p2]) >= 0.8
    assert d.crr(model, p1) >= MIN_CRR
    assert d.crr(model, p0) >= MIN_CRR


def _asked(steps, upto: str):
    """The categories of the first person forgotten up to step `upto`."""
    for name, _, cats, _ in steps:
        if cats and name in ("first", "first-again"):
            yield from cats
        if name == upto:
            return
