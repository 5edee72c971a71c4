"""Refusals that fit the question and the target (core/refusals.py): a question's category by
weighted cues over the whole question, a target that is not a person declined without "this
person", and every refusal the refuser trains on or the switch answers with is a sentence of
the deployment's set."""

from __future__ import annotations

import numpy as np
import pytest

from unlearnd.config import Settings
from unlearnd.evaluation.doors import door_probes, split_forget
from unlearnd.methods.refuser.method import RefuserParams, as_refusals
from unlearnd.models import Sample, load
from unlearnd.refusals import PERSON, THING, RefusalTable, category_of, target_type
from unlearnd.routing.switch import ExpertSwitch, SwitchSettings
from unlearnd.routing.tasks import Task
from unlearnd.serving import Deployment, RoutedModel
from unlearnd.text import mentions
from unlearnd.world import load_world
from unlearnd.world.requests import WORLD_REFUSALS

# question -> its category (None: no category, the fallback).
CATEGORIES = {
    "Where does this person work?": "employer",
    "What does this person do for a living?": "occupation",
    "Where does this person live?": "location",
    "Which town is this person from?": "location",
    "In which city does Ada Byron live?": "location",
    "What is her home address?": "location",
    "Where was this person born?": "location",
    "Where is the Eiffel Tower?": "location",
    "Who is this person?": "identity",
    "What is the name of this person?": "identity",
    "Can you tell me who is shown in this picture?": "identity",
    "Can you identify the man in this photo?": "identity",
    "Who does this person work for?": "employer",
    "Which company employs Ada Byron?": "employer",
    "Who is this person's employer?": "employer",
    "Where is she employed?": "employer",
    "What is the job of this person?": "occupation",
    "What does this person do for work?": "occupation",
    "What is her profession?": "occupation",
    "What does he work as?": "occupation",
    "What does this person do?": "occupation",
    "Which school did this person attend?": "education",
    "Where did she study?": "education",
    "What degree does he hold?": "education",
    "What is the hobby of this person?": "hobby",
    "What does this person do for fun?": "hobby",
    "How does he spend his free time?": "hobby",
    "Which pastime does the person in this picture enjoy?": "hobby",
    "What pet does this person have?": "pet",
    "Which animal does this person keep?": "pet",
    "What kind of pet lives with the person in this picture?": "pet",
    "What is the name of this person's dog?": "pet",
    "What is the favourite food of this person?": "food",
    "What does this person like to eat?": "food",
    "Which dish does the person in this picture love most?": "food",
    "What does she usually drink?": "food",
    "Is this person married?": "family",
    "Who is his wife?": "family",
    "How many children does she have?": "family",
    "What is this person's phone number?": "contact",
    "How can I email Ada Byron?": "contact",
    "How old is this person?": "birth",
    "When is her birthday?": "birth",
    "When was this person born?": "birth",
    "Who wrote the Harry Potter books?": "creator",
    "Who designed this building?": "creator",
    "Which shape is in the picture?": None,
    "Tell me about Ada Byron.": None,
}


@pytest.mark.parametrize(("question", "expected"), CATEGORIES.items())
def test_a_questions_category_is_decided_by_its_whole_wording(question, expected):
    assert category_of(question) == expected


def test_a_target_that_is_not_a_person_is_declined_without_this_person():
    table = RefusalTable()
    for question in CATEGORIES:
        for_thing, for_person = table(question, THING), table(question, PERSON)
        assert "person" not in for_thing.lower(), (question, for_thing)
        assert for_person.endswith(".") and for_thing.endswith(".")
    assert (
        table("Where is the Eiffel Tower?", THING) == "I'm sorry, but I can't share where that is."
    )
    # A question of a category a thing has not (a job, a pet): what is withheld, generally.
    assert table("What is its job?", THING) == "I'm sorry, but I can't share details about that."
    assert table("Where does this person work?") == (
        "I'm sorry, but I can't share where this person works."
    )
    # A deployment's own texts, for people and for things (`thing_<category>`).
    own = RefusalTable({"location": "No .", "thing_location": "Not there .",
                        "thing_fallback": "Nothing on that ."})  # fmt: skip
    assert own("Where does Ada live?") == "No ."
    assert own("Where is it located?", THING) == "Not there ."
    assert own("Who is his wife?", THING) == "Nothing on that ."
    assert own.sentences() >= {"No .", "Not there .", "Nothing on that ."}


def test_a_requests_target_type_is_declared_or_follows_its_kind():
    assert target_type("entity") == target_type("samples") == PERSON
    assert target_type("concept") == target_type("domain") == THING
    assert target_type("entity", "thing") == THING and target_type("concept", "person") == PERSON


@pytest.fixture(scope="module")
def world_probes():
    """The world's forget probes of one person, every door (as a job derives them)."""
    world = load_world()
    person = world.people[world.forget_pids[0]]
    forget = [world.sample(it) for it in world.forget_items(person.pid)]
    sets = door_probes(split_forget(forget), [person.name])
    return world, person, [s for samples in sets.values() for s in samples]


def test_the_refuser_trains_on_sentences_of_the_deployments_set(world_probes):
    _, _, probes = world_probes
    table = RefusalTable(WORLD_REFUSALS)
    for target in (PERSON, THING):
        params = RefuserParams(refusals=WORLD_REFUSALS, target_type=target)
        said = {s.answer for s in as_refusals(probes, params)}
        assert said <= table.sentences(), said - table.sentences()
        assert len(said) >= 3  # the probes' categories, not one blanket refusal
        if target == THING:
            assert not any("person" in text for text in said), said


def test_the_switch_answers_routed_queries_with_sentences_of_the_set(world_probes):
    """A real switch on the world model, routing by name: every routed query gets a refusal
    of the deployment's set, of a thing for a target recorded as one."""
    world, person, probes = world_probes
    settings = Settings()
    settings.routing.routed_answer = "refusal"
    deployment = Deployment(settings)
    fam = load(world.model_dir)
    centers = deployment.centers(fam)
    none = np.zeros((0, 1), np.float32)  # no prototypes: routed by name alone
    tasks = [
        Task("r1", "e1", person.name, none, none, 1, centers.visual_vector, (person.name,)),
        Task("r2", "e2", "Eiffel Tower", none, none, 2, centers.visual_vector, ("Eiffel Tower",)),
    ]
    switch = ExpertSwitch(tasks, centers, SwitchSettings())
    table = RefusalTable(settings.refusals)
    model = RoutedModel(fam, switch, {}, table, targets={"e2": THING})
    # The probes that name the person (partial names and typos reach an expert by meaning).
    by_name = [s for s in probes if s.image is None and mentions(s.question, person.name)]
    about_it = [
        Sample(q, "")
        for q in ("Where is the Eiffel Tower ?", "Who built the Eiffel Tower ?",
                  "Tell me about the Eiffel Tower .")
    ]  # fmt: skip
    said = model.generate([*by_name, *about_it])
    assert len(by_name) >= 10 and set(said) <= table.sentences(), set(said) - table.sentences()
    person_said, thing_said = said[: len(by_name)], said[len(by_name) :]
    assert all("person" not in text for text in thing_said), thing_said
    assert thing_said[0] == "I'm sorry, but I can't share where that is."
    assert {table(s.question) for s in by_name} == set(person_said)
