"""The answer check (routing/answer_check.py): which names and facts are a request's tells,
and which requests an answer tells of."""

from __future__ import annotations

import numpy as np

from unlearnd.routing.answer_check import AnswerCheck, tells
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
