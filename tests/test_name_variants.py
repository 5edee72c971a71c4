"""Other ways to name a request's target, generated from the request for any deployment, and
the door probes that ask the held-out questions with them."""

from __future__ import annotations

from test_doors import NAME, request

from unlearnd.evaluation.doors import door_probes, split_forget, text_variants
from unlearnd.evaluation.name_variants import asked_as, namesakes, renamed, variants
from unlearnd.models import Sample


def test_every_form_of_a_full_name():
    v = variants([NAME, "Countess of Lovelace"])
    assert v["surname"] == ["Byron", "Lovelace"] and v["first"] == ["Ada", "Countess"]
    assert v["initial"] == ["A. Byron", "C. Lovelace"]
    assert "Dr Byron" in v["title"] and "Ms Byron" in v["title"]
    assert v["misspelt"][0] == "Ada Byroon" and v["run_together"][0] == "AdaByron"
    assert variants(["Cher"]) == {**{k: [] for k in v}, "misspelt": ["Cheer"]}
    # No variant is one of the request's own names (those the exact door already has).
    assert "Countess" not in variants([NAME, "Countess", "Countess Lovelace"])["first"]


def test_namesakes_share_one_name_word_and_are_not_the_target():
    found = namesakes([NAME])
    assert "Ada Smith" in found and "John Byron" in found and NAME not in found
    assert all(("Ada" in n) != ("Byron" in n) for n in found)
    assert namesakes(["Cher"]) == [] and namesakes([]) == []


def test_questions_are_renamed_by_whole_words_only():
    assert renamed("Where does ada byron live ?", NAME, "Byron") == "Where does Byron live ?"
    assert renamed("Where does Ada Byronson live ?", NAME, "Byron") is None
    asked = asked_as([Sample("Where does Ada Byron live ?", "Paris")], [NAME], ("surname",))
    assert [s.question for s in asked] == ["Where does Byron live ?"]


def test_the_partial_and_misspelt_doors_ask_the_held_out_questions_only():
    split = split_forget(request())
    sets = door_probes(split, [NAME], text_variants(split.train, [NAME]))
    partial = {s.question for s in sets["leak_partial"]}
    assert {
        "In which city does Byron live ?",
        "In which city does A. Byron live ?",
        "In which city does Dr Byron live ?",
    } <= partial
    # A first name alone is its own set, reported and not gated (namesakes share it).
    assert "In which city does Ada live ?" not in partial
    assert "In which city does Ada live ?" in {s.question for s in sets["first_name"]}
    misspelt = {s.question for s in sets["leak_misspelt"]}
    assert "In which city does Ada Byroon live ?" in misspelt
    assert "In which city does AdaByron live ?" in misspelt
    assert {s.answer for s in sets["leak_partial"]} == {"lives in paris", "works as poet"}


def test_a_name_with_one_typo_or_run_together_is_still_the_name():
    from unlearnd.text import mentions_nearly

    for question in ("Who was Albert Einstien?", "What is Albert Eintein famous for?",
                     "What is AlbertEinstein famous for?", "Who is Hary Potter's enemy?",
                     "Where is the Eifel Tower?", "Where is the EiffelTowr?"):  # fmt: skip
        name = next(n for n in ("Albert Einstein", "Harry Potter", "Eiffel Tower")
                    if n.split()[-1][:3].lower() in question.lower())  # fmt: skip
        assert mentions_nearly(question, name), question
    # Other people and places that share a word, and short words, are not the name.
    for question, name in (("Who is Albert Camus?", "Albert Einstein"),
                           ("Who is Beatrix Potter?", "Harry Potter"),
                           ("Where is the Tower of London?", "Eiffel Tower"),
                           ("Where does Ida Byron live?", "Ada Byron"),
                           ("Who was Albert Einstein?", "Albert Einstein")):  # fmt: skip
        assert not mentions_nearly(question, name), question
