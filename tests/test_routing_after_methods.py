"""An earlier refuser keeps firing after a later request of another method changes the
language model: queries are routed on the base model's vectors, as its concepts were taken.
And a served answer routes each query once."""

from __future__ import annotations

from methods_world import WORLD_PARAMS
from routing_world import WorldDeployment

from unlearnd.models import Sample
from unlearnd.serving import ServedVersion

OPEN = {"max_forget_accuracy": 1.0, "min_retain_ratio": 0.0, "min_general_ratio": 0.0,
        "max_door_leak": 1.0, "max_hallucinated": 1.0, "max_degenerate": 1.0}  # fmt: skip


def test_refuser_then_npo_then_the_first_person_is_still_refused(tmp_path):
    d = WorldDeployment(tmp_path, eval_samples=16)
    first, second = d.world.forget_pids[20], d.world.forget_pids[21]
    d.settings.methods["npo"] = WORLD_PARAMS["npo"]
    refused = d.delete("first", first, params={"steps": 80})
    assert d.store.get_request(refused).state == "committed"
    after_refuser = d.crr(d.daemon.version(), first)
    d.delete("second", second, method="npo", gate=OPEN)
    live = d.store.get_version(d.store.get_alias("live"))
    assert live.method == "npo" and any(
        k.startswith("adapter:") for k in live.manifest["artifacts"]
    )
    served = d.daemon.version()
    portrait = d.world.image(("portrait", first, d.world.spec.n_seen))  # an unseen one
    (routes,) = served.routes([Sample("Where does this person live ?", "", portrait)])
    assert routes, "the first person's expert no longer fires under the NPO adapter"
    assert d.crr(served, first) >= after_refuser - 0.01  # and still refuses as before
    name = d.world.people[first].name
    assert served.routes([Sample(f"Where does {name} live ?", "")]) != [{}]


def test_an_answer_routes_each_query_once(tmp_path, monkeypatch):
    d = WorldDeployment(tmp_path, eval_samples=16)
    pid = d.world.forget_pids[22]
    d.delete("p", pid, params={"steps": 20})
    served = ServedVersion(d.daemon.pipeline.deployment, d.store, d.store.get_alias("live"))
    calls = []
    original = served.model.routes
    monkeypatch.setattr(served.model, "routes", lambda batch: calls.append(1) or original(batch))
    answer = served.answer(f"Where does {d.world.people[pid].name} live ?")
    assert len(calls) == 1 and answer.routing["experts"] and answer.routing["answered_by"]
