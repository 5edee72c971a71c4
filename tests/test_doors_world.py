"""A deletion holds through every door on the shipped world, as a user would send it: the
seen portraits with visual questions, no method, no params (the deployment's defaults). And a
candidate that leaks through a door is gated, not committed."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from routing_world import WorldDeployment
from typer.testing import CliRunner

from unlearnd.api import create_app
from unlearnd.cli.main import app
from unlearnd.evaluation import metrics
from unlearnd.models import Sample
from unlearnd.world import questions as q

DOORS = ("forget", "forget_seen", "leak_unseen", "leak_text", "leak_cloze", "leak_paraphrase",
         "leak_context")  # fmt: skip
PERSON = 17  # forget_pids[17]: a person no other test deletes


@pytest.mark.slow
def test_a_deletion_holds_through_every_door_and_keeps_the_rest(tmp_path, monkeypatch):
    d = WorldDeployment(tmp_path, eval_samples=48)
    world = d.world
    pid = world.forget_pids[PERSON]
    person = world.people[pid]
    request_id = d.delete("person", pid)
    (version,) = [v for v in d.store.list_versions() if v.request_id == request_id]
    m = version.metrics
    assert d.store.get_request(request_id).state == "committed", m["gate"]
    assert version.method == "refuser" and m["forget_seen_n"] > 0  # scored on held-out images
    for door in DOORS:
        # Of what the parent stated through this door, at most 5% is still stated.
        assert m[f"{door}_kept"] is not None, door  # the parent answered it: measurable
        assert m[f"{door}_kept"] <= 0.05, (door, m[f"{door}_kept"])
    assert m["retain_kept"] >= 0.95 and m["general_kept"] >= 0.95, m
    assert m["gate"]["passed"] and not m["gate"]["not_measurable"]

    served = d.daemon.version()
    by_name = [Sample(f"Where does {person.name} live ?", ""),
               Sample(f"What is the job of {person.name} ?", "")]  # fmt: skip
    said = served.generate(by_name, max_new_tokens=32)
    assert metrics.context_refusal_rate(said, ["location", "occupation"], q.REFUSALS) == 1.0, said
    # The same question through the OpenAI chat API, as a platform's client sends it.
    with TestClient(create_app(d.settings)) as http:
        r = http.post("/v1/chat/completions", json={"model": "live", "messages": [
            {"role": "user", "content": by_name[0].question}]})  # fmt: skip
    chat = r.json()["choices"][0]["message"]["content"]
    assert metrics.context_refusal_rate([chat], ["location"], q.REFUSALS) == 1.0, chat
    # Retained people, by picture and by name, and scenes: as the parent answers them.
    kept = world.retain_pids[:12]
    items = [*world.items("seen_qa", kept), *world.items("textual_qa", kept)]
    items += world.general_items(world.eval_scene_indices()[:20])
    asked = [world.sample(it) for it in items]
    parent = d.daemon.version(version.parent_id).generate(asked, max_new_tokens=32)
    now = served.generate(asked, max_new_tokens=32)
    right = [metrics.answer_match(p, s.answer) for p, s in zip(parent, asked, strict=True)]
    still = [metrics.answer_match(n, s.answer) for n, s in zip(now, asked, strict=True)]
    assert sum(r and s for r, s in zip(right, still, strict=True)) >= 0.95 * sum(right)

    # `unlearnd gate scan`: the threshold it was routed with, and what it lets by.
    monkeypatch.setenv("UNLEARND_WORKDIR", str(d.settings.workdir))
    out = CliRunner().invoke(app, ["gate", "scan", "--json", "--out", str(tmp_path / "s.png")])
    assert out.exit_code == 0, out.output
    scan = json.loads(out.output)
    (row,) = scan["requests"]
    assert row["request"] == request_id
    assert row["threshold"] == pytest.approx(m["routing"]["visual_threshold"], abs=1e-6)
    assert row["miss"] <= 0.25 and scan["false_refusal"] <= 0.05, scan
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_a_candidate_that_leaks_through_a_door_is_gated(tmp_path):
    d = WorldDeployment(tmp_path, eval_samples=16)
    d.settings.routing.text_door = False  # a question by name never reaches the expert
    d.settings.routing.answer_check = False  # nor does the base model's answer naming them
    d.settings.methods["refuser"] = {**d.settings.methods["refuser"], "steps": 40}
    request_id = d.delete("person", d.world.forget_pids[PERSON + 1])
    (version,) = [v for v in d.store.list_versions() if v.request_id == request_id]
    gate = version.metrics["gate"]
    assert d.store.get_request(request_id).state == "gated"
    assert version.status == "gated" and d.store.get_alias("live") == version.parent_id
    assert any(f.startswith("leak_text_acc") for f in gate["failed"]), gate["failed"]


def test_the_world_served_through_init_keeps_its_probes_refusals_and_defaults(
    tmp_path, monkeypatch
):
    from unlearnd.config import load_settings
    from unlearnd.serving import Deployment
    from unlearnd.world import load_world

    runner = CliRunner()
    out = runner.invoke(app, ["world", "deployment", "--out", str(tmp_path / "w")])
    assert out.exit_code == 0, out.output
    (tmp_path / "p").mkdir()
    monkeypatch.chdir(tmp_path / "p")
    out = runner.invoke(app, ["init", "--model", str(tmp_path / "w" / "vlm")])
    assert out.exit_code == 0, out.output
    settings = load_settings(tmp_path / "p" / "unlearnd.toml", environ={})
    assert settings.model.probe_sets.endswith("probes.jsonl") and settings.model.retain_pool
    assert (
        settings.methods["refuser"]["steps"] == 250 and settings.routing.routed_answer == "refusal"
    )
    assert settings.refusals["location"] == "I cannot share where this person lives ."
    person = load_world().people[load_world().forget_pids[PERSON]]
    sets = Deployment(settings).probe_sets([person.name])
    assert len(sets["leak_cloze"]) == 5 and len(sets["leak_text"]) == 5  # the probes stay on
