"""The world generator: deterministic, identities distinct, splits and question sets sound."""

import itertools
import json

import numpy as np
import pytest

from unlearnd.world.dataset import World, WorldSpec, vocabulary
from unlearnd.world.people import (
    FACT_CATEGORIES,
    MIN_FEATURE_DISTANCE,
    feature_distance,
    make_people,
)
from unlearnd.world.questions import CATEGORIES, REFUSALS


@pytest.fixture(scope="module")
def world():
    return World(WorldSpec(n_people=200, seed=3, n_train_scenes=50, n_eval_scenes=20))


def test_same_seed_same_world_other_seed_other_world(world):
    again = World(WorldSpec(n_people=200, seed=3, n_train_scenes=50, n_eval_scenes=20))
    assert again.to_json() == world.to_json()
    ref = ("portrait", 7, 2)
    assert np.array_equal(np.asarray(again.image(ref)), np.asarray(world.image(ref)))
    assert np.array_equal(
        np.asarray(again.image(("scene", 5))), np.asarray(world.image(("scene", 5)))
    )
    other = make_people(200, seed=4)
    assert [p.name for p in other] != [p.name for p in world.people]


def test_people_have_unique_names_facts_and_distinct_looks(world):
    people = world.people
    assert len(people) >= 200
    assert len({p.first for p in people}) == len(people)
    assert len({p.last for p in people}) == len(people)
    for p in people:
        assert set(p.facts) == set(FACT_CATEGORIES) and len(p.facts) >= 5
    for a, b in itertools.combinations(people, 2):
        assert feature_distance(a.features, b.features) >= MIN_FEATURE_DISTANCE


def test_portraits_vary_but_unseen_ones_are_held_out(world):
    seen = [np.asarray(world.image(("portrait", 0, k)), dtype=float) for k in world.seen_variants()]
    assert seen[0].shape == (48, 48, 3)
    assert np.abs(seen[0] - seen[1]).mean() > 1.0  # pose / colour / noise differ
    train = set(world.train_variants())
    assert not train & set(world.unseen_variants())
    assert len(world.unseen_variants()) >= 1
    unseen = {it.image for it in world.items("unseen_qa")}
    assert all(ref[2] not in train for ref in unseen)


def test_splits_are_disjoint_and_cover_everyone(world):
    forget, retain = set(world.forget_pids), set(world.retain_pids)
    assert forget and retain and not forget & retain
    assert forget | retain == {p.pid for p in world.people}


def test_question_sets_have_the_right_answers(world):
    person = world.people[11]
    textual = world.items("textual_qa", [11])
    assert {it.category for it in textual} == set(FACT_CATEGORIES)
    for it in textual:
        assert person.name in it.question and it.fact == person.facts[it.category]
        assert it.answer.startswith(person.name) and it.answer.endswith(it.fact)
        assert it.image is None
    visual = world.items("seen_qa", [11])
    assert {it.category for it in visual} == set(CATEGORIES)
    assert all(person.name not in it.question for it in visual)
    who = next(it for it in visual if it.category == "identity")
    assert who.answer == person.name
    job = next(it for it in visual if it.category == "occupation")
    assert job.answer == f"{person.name} works as a {person.facts['occupation']}"
    for it in world.items("multiple_choice", [11]):
        assert len(it.options) == 4 and it.options.count(it.answer) == 1
    cloze = world.items("cloze", [11])
    assert all("___" in it.question and it.answer == it.fact for it in cloze)
    general = world.items("general")
    assert {it.answer for it in general if it.category == "presence"} == {"yes", "no"}
    # Evaluation scenes are not training scenes.
    assert min(it.image[1] for it in general) >= world.spec.n_train_scenes


def test_every_question_word_is_in_the_vocabulary(world):
    words = set(vocabulary(world))
    kinds = ("seen_qa", "textual_qa", "paraphrase_qa", "cloze", "multiple_choice", "general")
    for kind in kinds:
        for it in world.items(kind, range(5)):
            assert set(it.question.split()) <= words, it.question
            assert set(it.answer.split()) <= words
    for texts in REFUSALS.values():
        assert all(set(t.split()) <= words for t in texts)


def test_world_json_round_trips_and_names_bad_fields(world):
    data = json.loads(json.dumps(world.to_json()))
    assert set(data["templates"]["refusals"]) == set(CATEGORIES)
    back = World.from_json(data)
    assert back.to_json() == world.to_json()
    del data["people"][0]["facts"]
    with pytest.raises(ValueError, match="facts"):
        World.from_json(data)
    with pytest.raises(ValueError, match="format"):
        World.from_json({"format": "other"})


def test_unknown_question_sets_and_people_are_clear_errors(world):
    with pytest.raises(ValueError, match="unknown question set kind 'nope'"):
        world.items("nope", [])
    with pytest.raises(ValueError, match="pid 999"):
        world.items("textual_qa", [999])
