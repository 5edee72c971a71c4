"""The doors of a deletion, generated from a request alone: the held-out split, text by name,
wrappers, generic questions; and scoring relative to what the parent answered."""

from __future__ import annotations

from PIL import Image

from unlearnd.evaluation.candidate import AnswerSets, kept
from unlearnd.evaluation.doors import (
    WRAPPERS,
    by_name,
    door_probes,
    fact,
    split_forget,
    text_variants,
)
from unlearnd.models import Sample

NAME = "Ada Byron"


def picture(i: int) -> Image.Image:
    return Image.new("RGB", (8, 8), (i * 40, 0, 0))


def request(images: int = 6) -> list[Sample]:
    """A person's request as a user writes it: each picture, two wordings per fact."""
    asked = [("Who is this person ?", NAME), ("What is the name of this person ?", NAME),
             ("Where does this person live ?", "Ada Byron lives in Paris"),
             ("In which city does this person live ?", "Ada Byron lives in Paris"),
             ("What is the job of this person ?", "Ada Byron works as a poet"),
             ("What does this person do for work ?", "Ada Byron works as a poet")]  # fmt: skip
    return [Sample(q, a, picture(i)) for i in range(images) for q, a in asked]


def test_a_third_of_the_pictures_and_the_second_wording_are_never_trained_on():
    split = split_forget(request())
    trained = {s.image.tobytes() for s in split.train}
    held = {s.image.tobytes() for s in split.held_images}
    assert len(trained) == 4 and len(held) == 2 and not trained & held
    assert {s.question for s in split.train} == {
        "Who is this person ?", "Where does this person live ?", "What is the job of this person ?"
    }  # fmt: skip
    assert {s.question for s in split.held_wordings} == {
        "What is the name of this person ?", "In which city does this person live ?",
        "What does this person do for work ?",
    }  # fmt: skip
    assert len(split.train) + len(split.held_images) + len(split.held_wordings) == 36
    one = split_forget([Sample("Where does this person live ?", "Paris", picture(0))])
    assert len(one.train) == 1 and not one.held_images  # nothing to hold out
    two = split_forget([Sample("Where does this person live ?", "Paris", picture(i))
                        for i in range(2)])  # fmt: skip
    assert len(two.train) == 2 and not two.held_images  # one picture left says little


def test_questions_by_name_and_the_fact_they_must_not_state():
    assert by_name("Where does this person live ?", NAME) == "Where does Ada Byron live ?"
    assert by_name("What is the job of the person in this picture ?", NAME) == (
        "What is the job of Ada Byron ?"
    )
    assert by_name("What is shown in this picture ?", NAME) is None
    assert fact("Ada Byron lives in Paris", [NAME]) == "lives in paris"
    assert fact("Ada Byron", [NAME]) == ""
    variants = text_variants(request(1), [NAME])
    assert [s.question for s in variants] == [
        "Where does Ada Byron live ?", "In which city does Ada Byron live ?",
        "What is the job of Ada Byron ?", "What does Ada Byron do for work ?",
    ]  # fmt: skip
    assert all(s.image is None for s in variants)  # the name is in the question: no identity


def test_every_door_has_probes_and_none_was_trained_on():
    split = split_forget(request())
    trained_texts = text_variants(split.train, [NAME])
    sets = door_probes(split, [NAME], trained_texts)
    assert set(sets) == {"forget", "forget_seen", "leak_paraphrase", "leak_text", "leak_context",
                         "leak_partial", "leak_misspelt", "first_name"}  # fmt: skip
    trained = {s.question for s in [*split.train, *trained_texts]}
    assert not trained & {s.question for s in sets["leak_text"]}
    assert "Tell me about Ada Byron ." in {s.question for s in sets["leak_text"]}
    assert "In which city does Ada Byron live ?" in {s.question for s in sets["leak_text"]}
    wrapped = [s.question for s in sets["leak_context"]]
    assert any(q.startswith("Ignore the previous instructions") for q in wrapped)
    # Probes ask for the fact, not the sentence the forget answer was.
    assert {s.answer for s in sets["leak_text"]} == {"lives in paris", "works as poet"}
    assert all(s.answer for samples in sets.values() for s in samples)


class Echo:
    """A model that answers with a fixed text per question (those not given: nothing)."""

    def __init__(self, said: dict[str, str]):
        self.said = said
        self.asked = 0

    def generate(self, batch, max_new_tokens=16):
        self.asked += len(batch)
        return [self.said.get(s.question, "") for s in batch]


def test_scores_are_relative_to_what_the_parent_answered():
    assert kept([True, True, False, False], [True, False, True, False]) == 0.5
    assert kept([False, False], [True, True]) is None  # the parent knew none: not measurable
    ask = Sample("Where does Ada Byron live ?", "lives in paris")
    sets = AnswerSets({"leak_text": [ask, ask], "other": [Sample("q", "x")]})
    parent = Echo({ask.question: "Ada Byron lives in Paris", "q": "x"})
    candidate = Echo({ask.question: "I'm sorry, but I can't share where this person lives."})
    before, after = sets.measure(parent), sets.measure(candidate)
    assert parent.asked == 2  # one generation per distinct prompt, however many sets ask it
    m = sets.compare(before, after)
    assert m["leak_text_acc"] == 0.0 and m["parent_leak_text_acc"] == 1.0
    assert m["leak_text_kept"] == 0.0 and m["other_kept"] == 0.0 and m["leak_text_n"] == 2


def test_a_text_only_request_holds_out_the_last_third_of_its_questions():
    asked = [(f"What did Ada Byron write in 18{40 + i} ?", f"In 18{40 + i} she wrote poem {i}")
             for i in range(6)]  # fmt: skip
    forget = [Sample(q, a, None, (f"poem {i}",)) for i, (q, a) in enumerate(asked)]
    # A second wording of the first answer: the paraphrase door, not one of the six.
    forget.append(Sample("Which work did Ada Byron write in 1840 ?", asked[0][1]))
    split = split_forget(forget)
    assert [s.question for s in split.held_images] == [q for q, _ in asked[4:]]
    assert [s.question for s in split.train] == [q for q, _ in asked[:4]]
    assert [s.question for s in split.held_wordings] == ["Which work did Ada Byron write in 1840 ?"]
    sets = door_probes(split, [NAME])
    assert [s.question for s in sets["forget"]] == [q for q, _ in asked[4:]]
    assert [s.facts for s in sets["forget"]] == [("poem 4",), ("poem 5",)]  # facts go along
    assert len(sets["forget_seen"]) == 4
    wrapped = {s.question for s in sets["leak_context"]}
    assert {w.format(question=asked[5][0]) for w in WRAPPERS} <= wrapped
    assert not {w.format(question=asked[0][0]) for w in WRAPPERS} & wrapped  # trained on
    # Generic questions ask for every given fact, as given.
    tell = [s for s in sets["leak_text"] if s.question == "Tell me about Ada Byron ."]
    assert {s.facts for s in tell} >= {("poem 0",), ("poem 5",)}
    three = split_forget([Sample(q, a) for q, a in asked[:3]])
    assert len(three.train) == 2 and [s.question for s in three.held_images] == [asked[2][0]]
    two = split_forget([Sample(q, a) for q, a in asked[:2]])
    assert len(two.train) == 2 and not two.held_images  # one question left says little


def test_a_text_only_requests_held_out_questions_are_asked_by_partial_and_misspelt_names():
    wordings = (("Where does", "live"), ("In which city does", "live"), ("Where is", "now"))
    asked = [Sample(f"{q} Ada Byron {w} ?", "ada byron lives in paris") for q, w in wordings]
    sets = door_probes(split_forget(asked), [NAME])
    assert "Where is Byron now ?" in {s.question for s in sets["leak_partial"]}
    assert "Where is AdaByron now ?" in {s.question for s in sets["leak_misspelt"]}
