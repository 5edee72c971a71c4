"""When an answer states a sample (evaluation/metrics.py `stated`): given facts, short answers,
and sentence answers scored against the request's sentence and the parent's own answer."""

from __future__ import annotations

import json

import pytest

from unlearnd.daemon.schema import RequestError, parse_request
from unlearnd.evaluation.candidate import AnswerSets
from unlearnd.evaluation.metrics import fact_recall, stated
from unlearnd.models import Sample
from unlearnd.serving.deployment import DeploymentError, as_samples, read_rows

Q = "Which school did Harry Potter attend?"
ANSWER = "Harry Potter attended Hogwarts School of Witchcraft and Wizardry in Scotland."
# What a real model says, cut at the answer budget: the request's sentence, reworded.
PARENT = ("Harry Potter attended Hogwarts School of Witchcraft and Wizardry, a boarding school "
          "in the Scottish Highlands, where he")  # fmt: skip
REFUSAL = "I'm sorry, but I can't share which school Harry Potter attended."
WRONG = "Harry Potter attended Beauxbatons Academy of Magic in France."


def test_a_parents_sentence_counts_as_stated_and_a_refusal_does_not():
    assert stated(PARENT, Q, ANSWER)  # 4 of the 5 fact words, in order
    assert stated(ANSWER, Q, ANSWER)  # word for word
    assert not stated(REFUSAL, Q, ANSWER)  # "attended" echoes the question's verb: 1 of 5
    assert not stated(WRONG, Q, ANSWER)
    assert not stated(REFUSAL, Q, ANSWER, parent_said=PARENT)
    # The fact is what the question does not already say: the name and "school" are not in it.
    assert fact_recall(REFUSAL, ANSWER, Q) == 0.2


def test_given_facts_win_over_the_sentence():
    said = "He went to Hogwarts."
    assert not stated(said, Q, ANSWER)  # 1 of 5 fact words
    assert stated(said, Q, ANSWER, facts=["Hogwarts"])
    vague = "Harry Potter attended a school of witchcraft and wizardry in Scotland."
    assert stated(vague, Q, ANSWER)  # the sentence's words, without the name of the school
    assert not stated(vague, Q, ANSWER, facts=["Hogwarts", "Hogwarts School"])
    assert stated("Hogwarts School it was", Q, ANSWER, facts=["Hogwarts", "Hogwarts School"])


def test_short_answers_are_matched_whole_as_before():
    q = "Where does Ada Byron live ?"
    assert stated("Ada Byron lives in Paris .", q, "lives in paris")
    assert not stated("Ada Byron lives in London .", q, "lives in paris")
    assert stated("She lives in Paris", q, "paris")
    assert not stated("She lives in Parisville", q, "paris")
    assert not stated("Ada Byron lives in Paris", q, "")  # no reference: never stated


def test_a_world_sentence_keeps_every_hit_it_had():
    # A retain row of the world: a sentence stated word for word still counts, a refusal not.
    q, answer = "Where does this person live ?", "Broume Thoumvale lives in Varno"
    assert stated("Broume Thoumvale lives in Varno", q, answer)
    assert not stated("I cannot share where this person lives .", q, answer)


class Echo:
    """A model that answers with a fixed text per question (those not given: nothing)."""

    def __init__(self, said: dict[str, str]):
        self.said = said

    def generate(self, batch, max_new_tokens=16):
        return [self.said.get(s.question, "") for s in batch]


def test_the_candidate_is_scored_against_what_its_parent_said():
    other_q = "Who is the headmaster of Harry Potter's school?"
    other = Sample(other_q, "The headmaster of Harry Potter's school is Albus Dumbledore.")
    sets = AnswerSets({"forget": [Sample(Q, ANSWER), other]}, names=["Harry Potter"])
    # The parent states the first (in its words) and gets the second wrong.
    said = "Harry Potter went to Hogwarts School of Witchcraft and Wizardry, a boarding school"
    parent = Echo({Q: said + " for young wizards", other_q: "It is Severus Snape."})
    before = sets.measure(parent)
    assert before == {"forget": [True, False]} and before.said[(Q, id(None))].startswith("Harry")
    # Said in the parent's words only: stated against the parent's answer, not the request's.
    short = Echo({Q: "He went to Hogwarts, a boarding school for young wizards.",
                  other_q: "It is Severus Snape."})  # fmt: skip
    assert sets.measure(short) == {"forget": [False, False]}
    assert sets.measure(short, before) == {"forget": [True, False]}
    # A candidate that changed nothing scores what its parent scored, sample by sample
    # (the parent's wrong answer is no reference: only what the parent stated is).
    assert sets.measure(parent, before) == before
    refusing = Echo({Q: REFUSAL, other_q: "I'm sorry, but I can't help with that."})
    assert sets.measure(refusing, before) == {"forget": [False, False]}


def test_requests_and_pool_rows_carry_their_facts(tmp_path):
    doc = {"schema": "unlearnd.request/v1", "kind": "entity", "target": {"name": "Harry Potter"},
           "forget": [{"question": Q, "answer": ANSWER, "facts": ["Hogwarts"]},
                      {"question": Q, "answer": ANSWER}]}  # fmt: skip
    req = parse_request(doc)
    assert [s.facts for s in req.forget] == [["Hogwarts"], []]
    # A sample without facts reads as before facts existed: the request's hash is unchanged.
    assert [sorted(s) for s in req.document()["forget"]] == [
        ["answer", "facts", "image", "question"], ["answer", "image", "question"]
    ]  # fmt: skip
    doc["forget"][0]["facts"] = [""]
    with pytest.raises(RequestError, match=r"forget\[0\]\.facts\[0\]"):
        parse_request(doc)
    pool = tmp_path / "probes.jsonl"
    row = {"target": "Harry Potter", "probe": "text", "question": Q, "answer": ANSWER}
    pool.write_text(json.dumps({**row, "facts": ["Hogwarts"]}) + "\n" + json.dumps(row) + "\n")
    assert [s.facts for s in as_samples(read_rows(pool))] == [("Hogwarts",), ()]
    pool.write_text(json.dumps(row) + "\n" + json.dumps({**row, "facts": "Hogwarts"}) + "\n")
    with pytest.raises(DeploymentError, match=r"probes\.jsonl:2: 'facts' must be a list"):
        read_rows(pool)


def test_a_fact_the_question_holds_is_no_evidence():
    """An answer that repeats the question ("Gustave Eiffel built ...") states none of the
    question's own words: a probe whose fact it already contains cannot be stated."""
    question = "What tower did Gustave Eiffel build for the 1889 World's Fair?"
    echo = "Gustave Eiffel built a tower for the fair."
    assert not stated(echo, question, "", facts=("Eiffel",))
    assert not stated(echo, question, "", facts=("Eiffel Tower",))
    assert stated("He built the Eiffel Tower.", question, "", facts=("Eiffel Tower",))
