"""The text door by meaning on the world (issue 29): a deleted person asked by surname,
initial or title is routed to the expert like the full name, while retained people by name,
their pictures and scenes are not; the answer check alone (the default) withholds what the
base model's drafts give away, by surname or first name alone, and not for namesakes;
`unlearnd gate scan` shows the door's threshold and tells."""

from __future__ import annotations

import json

from routing_world import WorldDeployment
from typer.testing import CliRunner

from unlearnd.cli.main import app
from unlearnd.evaluation.metrics import stated
from unlearnd.models import Sample
from unlearnd.routing.switch import ExpertSwitch, SwitchSettings
from unlearnd.serving.version import RoutedModel
from unlearnd.text import normalise
from unlearnd.world import questions as q
from unlearnd.world.people import FACT_CATEGORIES

PERSON = 23  # forget_pids[23]: a person no other test deletes (bench/text_door.py measures it)


def asked(person, name: str) -> list[Sample]:
    return [Sample(t.format(name=name), "") for c in FACT_CATEGORIES for t in q.TEXTUAL[c]]


def routed(model, samples: list[Sample]) -> float:
    return sum(bool(r) for r in model.routes(samples)) / len(samples)


def test_a_deleted_person_asked_by_surname_initial_or_title_is_routed(tmp_path, monkeypatch):
    d = WorldDeployment(tmp_path, eval_samples=16)
    d.settings.routing.meaning_door = True  # off by default: the answer check does it below
    d.settings.methods["refuser"] = {**d.settings.methods["refuser"], "steps": 20}
    w = d.world
    person = w.people[w.forget_pids[PERSON]]
    request_id = d.delete("person", w.forget_pids[PERSON])
    (version,) = [v for v in d.store.list_versions() if v.request_id == request_id]
    door = version.metrics["routing"]["text_calibration"]
    assert door["miss"] == 0 and door["false_fire"] == 0, door
    live = d.daemon.version(version.id)
    last, first = person.last, person.first
    for name in (person.name, last, f"{first[0]}. {last}", f"Dr {last}"):
        assert routed(live, asked(person, name)) >= 0.9, name
    kept = [w.people[p] for p in w.retain_pids[:6]]
    assert routed(live, [s for o in kept for s in asked(o, o.name)]) == 0
    assert routed(live, [w.sample(it) for it in w.items("seen_qa", w.retain_pids[:6])]) == 0
    scenes = w.general_items(w.eval_scene_indices()[:10])
    assert routed(live, [w.sample(it) for it in scenes]) == 0

    # The answer check alone (no door before the answer): the base model's drafts name the
    # person, so they are answered again by the expert or withheld; none states a fact.
    blind = ExpertSwitch(live.switch.tasks, live.switch.centers, SwitchSettings(text_door=False))
    checked = RoutedModel(live.fam, blind, live.adapters, None, live.withheld)
    facts = [person.facts[c] for c in FACT_CATEGORIES for _ in q.TEXTUAL[c]]
    for name in (last, first):  # by first name the model may state the fact alone: "kelmora"
        questions = asked(person, name)
        assert not any(checked.routes(questions)), "the switch alone routed a question"
        answers = checked.answers(questions, max_new_tokens=12)
        caught = [by == "answer check" for _, _, by in answers]
        assert sum(caught) >= 0.8 * len(caught), answers  # the rest did not name the person
        leaks = [text for (text, _, _), s, fact in zip(answers, questions, facts, strict=True)
                 if stated(text, s.question, fact)]  # fmt: skip
        assert not leaks, (name, leaks)
    others = [s for o in kept for s in asked(o, o.name)]
    assert {by for _, _, by in checked.answers(others, 12)} == {"base model"}
    # People who share the first name or surname are someone else: the facts the pools also
    # state (scoped tells) never tell of the target in their answers.
    namesakes = [s for o in kept for s in (*asked(o, f"{first} {o.last}"),
                                           *asked(o, f"{o.first} {last}"))]  # fmt: skip
    drafts = checked.fam.generate(namesakes, max_new_tokens=12)
    assert all(blind.told(d, s.question) == blind.told(d)
               for d, s in zip(drafts, namesakes, strict=True))  # fmt: skip

    monkeypatch.setenv("UNLEARND_WORKDIR", str(d.settings.workdir))
    out = CliRunner().invoke(app, ["gate", "scan", "--json", "--out", str(tmp_path / "s.png")])
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.output)["requests"]
    assert row["text"]["threshold"] == door["threshold"] and row["text"]["own"], row
    assert normalise(person.name) in row["tells"], row
    assert normalise(first) in row["scope"] and normalise(person.facts["location"]) in row["scoped"]
    assert not {"lives", "works", "enjoys", "loves"} & set(row["scoped"]), row  # answers' frame
    table = CliRunner().invoke(app, ["gate", "scan", "--out", str(tmp_path / "t.png")])
    assert "text door of version" in table.output, table.output
    assert "answer check of version" in table.output, table.output
