"""What a model says instead of a forgotten fact (evaluation/behaviour.py): refused,
degenerate, hallucinated or informative, per door, in the version's metrics, and gated."""

from __future__ import annotations

import pytest

from unlearnd.config import PromotionSettings
from unlearnd.evaluation import behaviour as B
from unlearnd.evaluation.candidate import AnswerSets
from unlearnd.evaluation.promotion import decide
from unlearnd.evaluation.refusal_match import with_english
from unlearnd.models import Sample
from unlearnd.world import questions as q

# Answers world methods give today (bench/results/methods.json), and plain-English ones.
DEGENERATE = [
    "", "   ", "...", "i cannot i cannot i cannot i cannot", "i cannot i cannot identify.",
    "stostu stostu stostu stostu stostu zorko zorko zorko", "Ada Byron lives in Par-",
    "#$% @@ !!", "xkcdqwrt bzzkrrt plmfst",
]  # fmt: skip
WELL_FORMED = ["stostu gouncroft lives in pellin", "I can't share where this person lives.",
               "She is a baker in a very very small town.", "Strengths and rhythms",
               "paris"]  # fmt: skip
REFUSED = ["I cannot share where this person lives .", "I'm sorry, but I can't help with that.",
           "i cannot share the this person.", "I don't know.", "Sorry , the pets of this person "
           "are private .", "I am unable to answer that."]  # fmt: skip
INFORMATIVE = ["I see a person in this picture .", "This person is smiling.", "a red circle"]

# Another person the retain pool knows, as the world's pools hold them.
RETAIN = [
    Sample("Who is the person in this picture ?", "grasa mustwick"),
    Sample("Where does Grasa Mustwick live ?", "grasa mustwick lives in kelmora"),
    Sample("What is the job of Grasa Mustwick ?", "grasa mustwick works as a florist"),
    Sample("What pet does Grasa Mustwick have ?", "grasa mustwick has a hamster"),
]
OWN = [Sample("Who is this person ?", "stostu gouncroft"),
       Sample("What pet does this person have ?", "stostu gouncroft has a hamster")]  # fmt: skip
NAMES = ["Stostu Gouncroft"]


def test_degenerate_answers_are_told_from_well_formed_ones():
    assert all(B.degenerate(t) for t in DEGENERATE), [t for t in DEGENERATE if not B.degenerate(t)]
    assert not any(B.degenerate(t) for t in WELL_FORMED), [
        t for t in WELL_FORMED if B.degenerate(t)
    ]


def test_each_answer_gets_one_behaviour_and_only_another_targets_facts_hallucinate():
    others = B.Others.of(RETAIN, [None] * len(RETAIN), OWN, NAMES)
    classify = B.Classifier(with_english(q.REFUSALS), others)
    assert len(others.samples) == 3  # a hamster is the target's own pet too: no other's fact
    for text in REFUSED:
        assert classify(text, False) == B.REFUSED, text
    for text in INFORMATIVE:
        assert classify(text, False) == B.INFORMATIVE, text
    for text in DEGENERATE:
        assert classify(text, False) == B.DEGENERATE, text
    # GA's answers on the world: another person's identity and facts.
    for text in ["grasa mustwick", "grasa mustwick lives in kelmora",
                 "stostu gouncroft works as a florist", "It is Grasa Mustwick."]:  # fmt: skip
        assert classify(text, False) == B.HALLUCINATED, text
    # The target's own facts, or a fact the probe asks for, are not another's.
    assert classify("stostu gouncroft has a hamster", False) == B.INFORMATIVE
    assert classify("grasa mustwick", True) == B.STATED
    # What the parent said of another target counts, in the parent's words.
    said = "Her home is Kelmora Bay near Ostrand"
    parent = B.Others.of(RETAIN[1:2], [said], OWN, NAMES)
    assert B.Classifier({}, parent)(said, False) == B.HALLUCINATED
    assert B.Classifier({}, B.Others.of(RETAIN[1:2], [None], OWN, NAMES))(said, False) == (
        B.INFORMATIVE
    )
    assert B.shares([B.REFUSED, B.REFUSED, B.STATED, B.HALLUCINATED]) == {
        B.REFUSED: 0.5, B.DEGENERATE: 0.0, B.HALLUCINATED: 0.25, B.INFORMATIVE: 0.0}  # fmt: skip


class Echo:
    """A model that answers each question as told (its `generate` is all the scoring uses)."""

    def __init__(self, said: dict[str, str], default: str = ""):
        self.said, self.default = said, default

    def generate(self, batch, max_new_tokens=16):
        return [self.said.get(s.question, self.default) for s in batch]


FORGET = [Sample("Where does this person live ?", "lives in pellin"),
          Sample("What is the job of this person ?", "works as a nurse"),
          Sample("Who is this person ?", "stostu gouncroft")]  # fmt: skip
TEXT = [Sample("Where does Stostu Gouncroft live ?", "lives in pellin"),
        Sample("Tell me about Stostu Gouncroft .", "works as a nurse")]  # fmt: skip
SETS = AnswerSets({"forget": FORGET, "leak_text": TEXT, "retain": RETAIN}, NAMES,
                  with_english(q.REFUSALS), OWN)  # fmt: skip
PARENT = Echo({**{s.question: f"stostu gouncroft {s.answer}" for s in [*FORGET, *TEXT]},
               **{s.question: s.answer for s in RETAIN}})  # fmt: skip
RETAINED = {s.question: s.answer for s in RETAIN}  # both candidates keep the other people


def measured(candidate: Echo) -> dict:
    before = SETS.measure(PARENT)
    return SETS.compare(before, SETS.measure(candidate, before))


def test_a_confabulating_candidate_is_gated_and_a_clean_refuser_is_not():
    # GA on the world: every forgotten question answered as another person.
    confabulating = Echo({**RETAINED, FORGET[0].question: "grasa mustwick lives in kelmora",
                          FORGET[1].question: "grasa mustwick works as a florist"},
                         default="grasa mustwick")  # fmt: skip
    m = measured(confabulating)
    assert m["forget_acc"] == 0 and m["forget_hallucinated"] == 1.0
    assert m["answers_hallucinated"] == 1.0 and m["parent_answers_hallucinated"] == 0.0
    gate = decide(m, PromotionSettings())
    assert not gate.passed
    assert [f.split()[0] for f in gate.failed] == ["answers_hallucinated"], gate.failed

    refuser = Echo({**RETAINED, **{s.question: "I cannot share where this person lives ."
                                   for s in [FORGET[0], TEXT[0]]}},
                   default="I'm sorry, but I can't help with that.")  # fmt: skip
    m = measured(refuser)
    assert m["answers_refused"] == 1.0 and m["leak_text_refused"] == 1.0
    assert m["answers_hallucinated"] == m["answers_degenerate"] == 0.0
    assert decide(m, PromotionSettings()).passed, decide(m, PromotionSettings()).failed

    babbling = Echo(RETAINED, default="i cannot i cannot i cannot")
    m = measured(babbling)
    assert m["answers_degenerate"] == 1.0
    assert [f.split()[0] for f in decide(m, PromotionSettings()).failed] == ["answers_degenerate"]
    # A request may let it through (1: no check), as any threshold.
    assert decide(m, PromotionSettings(max_degenerate=1)).passed


@pytest.mark.parametrize("key", ["max_hallucinated", "max_degenerate"])
def test_the_thresholds_are_validated(key):
    with pytest.raises(ValueError):
        PromotionSettings(**{key: 1.5})


def test_on_the_world_gradient_ascent_confabulates_and_is_gated(tmp_path):
    """GA, as the one-request benchmark runs it, answers the forgotten person's questions
    with another person's name and facts: its version is gated on that, whatever else."""
    from routing_world import WorldDeployment

    d = WorldDeployment(tmp_path, eval_samples=16)
    request_id = d.delete("ga", d.world.forget_pids[30], method="ga")
    (version,) = [v for v in d.store.list_versions() if v.request_id == request_id]
    m = version.metrics
    assert m["forget_acc"] == 0 and m["forget_hallucinated"] >= 0.9, m
    assert m["answers_hallucinated"] >= 0.5 > m["parent_answers_hallucinated"] + 0.1
    assert version.status == "gated"
    assert any(f.startswith("answers_hallucinated") for f in m["gate"]["failed"])
    # Every door of the report says what its answers were.
    from unlearnd.evaluation.report import doors

    rows = {r["door"]: r for r in doors(m)}
    assert rows["forget"]["hallucinated"] == m["forget_hallucinated"]
    assert sum(rows["forget"][b] for b in B.BEHAVIOURS) + m["forget_acc"] <= 1.0 + 1e-9
