"""Basic answer metrics (unlearnd.evaluation.metrics), checked against hand-computed values."""

import pytest

from unlearnd.evaluation import metrics as M


def test_normalise_drops_case_punctuation_articles_and_spaces():
    assert M.normalise("  The Baker!  ") == "baker"
    assert M.normalise("an owl, a cat.") == "owl cat"
    assert M.normalise("Theo Anders") == "theo anders"  # "the" inside a word stays


def test_exact_match_and_answer_match():
    assert M.exact_match("Baker.", "baker")
    assert not M.exact_match("a baker in town", "baker")
    assert M.answer_match("she is a baker", "baker")
    assert not M.answer_match("bakery", "baker")  # whole words only
    assert not M.answer_match("anything", "")


def test_rates_are_fractions_and_check_lengths():
    assert M.exact_match_rate(["cat", "dog", "owl"], ["cat", "dog", "pony"]) == pytest.approx(2 / 3)
    assert M.answer_accuracy(["my cat", "no"], ["cat", "yes"]) == 0.5
    assert M.exact_match_rate([], []) == 0.0
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        M.answer_accuracy(["a", "b"], ["a"])


def test_cloze_is_strict():
    assert M.cloze_accuracy(["baker", "a baker"], ["baker", "baker"]) == 1.0
    assert M.cloze_accuracy(["baker today"], ["baker"]) == 0.0


def test_multiple_choice_accuracy_counts_argmax_and_rejects_ties():
    scores = [[-1.0, -0.2, -3.0], [0.0, 0.0, -1.0], [-5.0, -4.0, -0.1]]
    assert M.multiple_choice_accuracy(scores, [1, 0, 0]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="out of range"):
        M.multiple_choice_accuracy([[0.0, 1.0]], [2])


def test_rouge_l_matches_hand_computed_lcs():
    # LCS("the cat sat on mat", "cat on the mat") after normalising: [cat, sat, on, mat] vs
    # [cat, on, mat] -> LCS 3; P = 3/4, R = 3/3, F1 = 6/7.
    assert M.rouge_l("the cat sat on the mat", "cat on the mat") == pytest.approx(6 / 7)
    assert M.rouge_l("baker", "baker") == 1.0
    assert M.rouge_l("pilot", "baker") == 0.0
    assert M.rouge_l("", "baker") == 0.0
    assert M.mean_rouge_l(["baker", "pilot"], ["baker", "baker"]) == 0.5
