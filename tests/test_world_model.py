"""The committed world model: opened by the model loader like any Hugging Face folder, it
knows its people (seen and unseen portraits, questions by name) and the general split."""

import pytest

import unlearnd.world as W
from unlearnd.evaluation.metrics import exact_match, exact_match_rate
from unlearnd.models import load
from unlearnd.world.evaluate import generate_answers

FIXTURE = W.fixture_dir()
pytestmark = pytest.mark.skipif(
    not (FIXTURE / "world.json").is_file(), reason="world fixture not built (world/assets)"
)


@pytest.fixture(scope="module")
def world_and_model():
    world = W.load_world()
    assert world.model_dir is not None, "the fixture has no vlm/ folder"
    return world, load(world.model_dir)


def test_fixture_is_the_medium_world_with_splits_and_refusals(world_and_model):
    world, fam = world_and_model
    assert fam.family == "llava"
    assert len(world.people) >= 200
    assert set(world.forget_pids).isdisjoint(world.retain_pids)
    assert {"identity", "location", "occupation"} <= set(world.refusals)


def test_answers_a_known_fact_an_unseen_portrait_and_a_textual_question(world_and_model):
    world, fam = world_and_model
    person = world.people[0]
    # A known fact, asked about a seen portrait.
    job = next(it for it in world.items("seen_qa", [0]) if it.category == "occupation")
    unseen = world.items("unseen_qa", [0])
    textual = world.items("textual_qa", [0])
    items = [job, *unseen, *textual]
    answers = generate_answers(fam, world, items)
    # The word-level tokenizer lower-cases, so answers are compared normalised.
    assert exact_match(answers[0], f"{person.name} works as a {person.facts['occupation']}")
    # The unseen portraits were never trained on; the model still knows who it is.
    who = answers[1 : 1 + len(unseen)]
    assert exact_match(who[[it.category for it in unseen].index("identity")], person.name)
    assert exact_match_rate(answers[1:], [it.answer for it in items[1:]]) >= 0.9


def test_quality_on_a_sample_of_people(world_and_model):
    world, fam = world_and_model
    pids = world.retain_pids[::20] + world.forget_pids[::10]
    figures = W.evaluate(fam, world, pids=pids, kinds=("unseen_qa", "textual_qa"))
    assert figures["unseen_qa"] >= 0.8
    assert figures["textual_qa"] >= 0.9
