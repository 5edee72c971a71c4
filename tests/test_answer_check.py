"""The answer check (routing/answer_check.py): which names and facts are a request's tells,
and which requests an answer tells of."""

from __future__ import annotations

import numpy as np

from unlearnd.routing.answer_check import (
    AnswerCheck,
    Scope,
    frame_words,
    scope,
    scoped_tells,
    tells,
)
from unlearnd.routing.concepts import Centers
from unlearnd.routing.switch import ExpertSwitch, SwitchSettings
from unlearnd.routing.tasks import Task

BACKGROUND = ["Isaac Newton was a physicist.", "The capital of Germany is Berlin."]


def test_tells_are_the_names_and_facts_no_background_answer_states():
    got = tells(["Albert Einstein"], ["relativity", "physicist", "Germany", "Ulm", "E", "ulm"],
                BACKGROUND)  # fmt: skip
    assert got == ("albert einstein", "relativity", "ulm")


def test_an_answer_tells_of_a_request_by_whole_words_whatever_the_case():
    check = AnswerCheck([("harry potter", "hogwarts"), ("albert einstein",)])
    assert check.told("Harry Potter's enemy is Voldemort.") == [0]
    assert check.told("He studies at HOGWARTS, and Albert Einstein...") == [0, 1]
    assert check.told("Harry Styles sings; the potter's wheel; hogwartsy") == []
    assert not AnswerCheck([]) and AnswerCheck([("x y z",)]).longest == 3


def test_a_request_with_tells_takes_its_name_with_a_typo():
    none = np.zeros((0, 1), np.float32)
    center = Centers(None, np.zeros(1, np.float32))
    asked = ["Who was Albert Einstien?", "Who was Albert Camus?"]
    for told, routed in (((), [False, False]), (("albert einstein",), [True, False])):
        task = Task("r", "e", "Albert Einstein", none, none, names=("Albert Einstein",),
                    tells=told)  # fmt: skip
        switch = ExpertSwitch([task], center, SwitchSettings())
        assert [bool(r) for r in switch.route(None, asked)] == routed, told
        assert bool(switch.told("Albert Einstein was a physicist.")) == bool(told)


def test_scope_is_the_name_words_no_background_text_uses():
    background = ["Who was Albert Camus?", "Camus wrote novels.", "Eiffel was an engineer."]
    assert scope(["Albert Einstein", "Einstein"], background) == ("einstein",)
    assert scope(["Eiffel Tower", "Al Ng"], background) == ("tower",)
    assert scoped_tells(["Physicist", "relativity", "Ulm", "E"], ("relativity",)) == (
        "physicist",
        "ulm",
    )


def test_a_fact_the_pools_state_tells_where_the_question_names_the_target_alone():
    asked = ["Where does Hala Stouston live ?", "In which city does this person live?",
             "What is the job of Anna Smith ?", "where does hala stouston live"]  # fmt: skip
    words = frame_words(asked, ["Hala Staindberg"])
    assert words == ("city", "job", "live", "person")  # no name, nothing of lower-case text
    hala = Scope(("hala", "staindberg"), ("kelmora", "baker"), ("Hala Staindberg",), words)
    check = AnswerCheck([("hala staindberg",)], [hala])
    told = {
        "In which city does Hala live ?": [0],
        "Where does Dr Staindberg live?": [0],
        "Where does H. Staindberg live?": [0],
        "Where does Staindbreg live?": [0],  # one typo from a scope word of 5+ letters
        "hala, where does she live?": [0],
        "who is hala ?": [0],  # lower case: only a stop word next to it
        "where does hala live ?": [0],  # lower case: "live" is a frame word, no surname
        "where does hala smith live ?": [],  # lower case: "smith" may be a surname
        "where does hala stouston live ?": [],
        "in which town is hala based ?": [],  # "based": no frame word, may be a surname
        "Hala lives where?": [0],  # a capitalised word that starts a sentence is no name
        "Where does Hala Smith live ?": [],  # a namesake: another name next to it
        "Where does John Staindberg live?": [],
        "Where does Halo live?": [],  # a 4-letter word takes no typo
        "In which city does Anna live ?": [],
        "": [],
    }
    for question, want in told.items():
        assert check.told("Kelmora", question) == want, question
    assert check.told("He lives in Varno.", "Where does Hala live?") == []
    assert check.told("hala staindberg", "Where does John Staindberg live?") == [0]
    # A request whose names no pool spares has no scope: its scoped facts never tell.
    unscoped = AnswerCheck([("harry potter",)], [Scope((), ("london",), ("Harry Potter",))])
    assert unscoped.told("London", "Where does Harry live?") == []


def test_the_switch_checks_a_tasks_scoped_tells_against_the_question():
    none = np.zeros((0, 1), np.float32)
    center = Centers(None, np.zeros(1, np.float32))
    task = Task("r", "e", "Albert Einstein", none, none, names=("Albert Einstein",),
                tells=("albert einstein",), scope=("einstein",), scoped=("physicist",),
                frame=("physicist",))  # fmt: skip
    switch = ExpertSwitch([task], center, SwitchSettings())
    assert switch.told("A physicist.", "Who was Einstein?") == {"e": 1.0}
    assert switch.told("A physicist.", "Who was Isaac Newton?") == {}
    assert switch.told("A physicist.") == {}
    back = Task.from_artifact(task.tensors(), task.metadata())
    assert (back.scope, back.scoped, back.frame) == (("einstein",), ("physicist",), ("physicist",))
    assert switch.told("A physicist.", "who was einstein physicist") == {"e": 1.0}  # frame
    off = ExpertSwitch([task], center, SwitchSettings(answer_check=False))
    assert off.told("A physicist.", "Who was Einstein?") == {}


def test_a_requests_answer_check_is_built_from_its_samples_and_the_pools(tmp_path):
    """daemon/text_door.answer_tells on a deployment of text pools (no model loaded): the name
    is a tell, a fact the pools share is only a scoped tell, the scope leaves out the first
    name a pool person shares, and the frame holds the questions' words but no name."""
    import json

    from unlearnd.config import ModelSettings, Settings
    from unlearnd.daemon.text_door import answer_tells
    from unlearnd.models import Sample
    from unlearnd.serving import Deployment

    rows = [("Where does Hala Toulford live ?", "hala toulford lives in kelmora"),
            ("What is the job of Anna Smith ?", "anna smith is a baker"),
            ("In which city does Anna Smith live ?", "anna smith lives in varno"),
            ("What is the job of Hala Toulford ?", "hala toulford is a potter")]  # fmt: skip
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in rows))
    model = ModelSettings(path=str(tmp_path / "model"), retain_pool=str(pool),
                          general_pool=str(pool), eval_samples=2)  # fmt: skip
    deployment = Deployment(Settings(workdir=tmp_path / "w", model=model))
    forget = [Sample("In which city does Hala Staindberg live ?", "kelmora"),
              Sample("What is the job of Hala Staindberg ?", "glassblower")]  # fmt: skip
    told = answer_tells("entity", ["Hala Staindberg"], forget, deployment)
    assert told["tells"] == ("hala staindberg", "glassblower")
    assert told["scope"] == ("staindberg",) and "kelmora" in told["scoped"]
    assert {"live", "city", "job"} <= set(told["frame"])
    assert not {"hala", "toulford", "anna", "smith", "staindberg"} & set(told["frame"])
