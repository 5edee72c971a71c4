import pytest

from unlearnd.config import PromotionSettings
from unlearnd.evaluation.promotion import ThresholdError, decide, thresholds

PARENT = {"parent_retain_acc": 0.9, "parent_general_acc": 0.8}


def test_passing_candidate():
    d = decide(
        {"forget_acc": 0.1, "retain_acc": 0.88, "general_acc": 0.8, **PARENT}, PromotionSettings()
    )
    assert d.passed and d.failed == []
    assert [c.name for c in d.checks] == ["forget_acc", "retain_ratio", "general_ratio"]


@pytest.mark.parametrize(
    ("metrics", "failed"),
    [
        ({"forget_acc": 0.5, "retain_acc": 0.9, "general_acc": 0.8}, "forget_acc"),
        ({"forget_acc": 0.0, "retain_acc": 0.5, "general_acc": 0.8}, "retain_ratio"),
        ({"forget_acc": 0.0, "retain_acc": 0.9, "general_acc": 0.1}, "general_ratio"),
    ],
)
def test_each_threshold_can_fail_and_is_named(metrics, failed):
    d = decide({**metrics, **PARENT}, PromotionSettings())
    assert not d.passed
    assert len(d.failed) == 1 and d.failed[0].startswith(failed)
    assert d.to_dict()["passed"] is False


def test_request_overrides_apply_key_by_key():
    g = thresholds(PromotionSettings(), {"max_forget_accuracy": 0.6})
    assert (
        g.max_forget_accuracy == 0.6 and g.min_retain_ratio == PromotionSettings().min_retain_ratio
    )
    assert decide({"forget_acc": 0.5, "retain_acc": 0.9, **PARENT}, g).passed


def test_bad_overrides_name_the_key():
    with pytest.raises(ThresholdError, match="gate.max_forget_accuracy"):
        thresholds(PromotionSettings(), {"max_forget_accuracy": 2})
    with pytest.raises(ThresholdError, match="gate.min_recall: unknown threshold"):
        thresholds(PromotionSettings(), {"min_recall": 0.5})


def test_doors_are_held_to_chance_plus_the_leak_margin():
    base = {"forget_acc": 0.0, "parent_forget_acc": 1.0, "retain_kept": 1.0,
            "parent_retain_acc": 1.0, "parent_unrelated_acc": 0.1}  # fmt: skip
    ok = decide({**base, "leak_text_acc": 0.14, "parent_leak_text_acc": 1.0}, PromotionSettings())
    assert ok.passed  # 0.14 <= chance 0.1 + 0.05
    leaking = decide({**base, "leak_text_acc": 0.2, "parent_leak_text_acc": 1.0},
                     PromotionSettings())  # fmt: skip
    assert not leaking.passed and leaking.failed[0].startswith("leak_text_acc 0.200 not <= 0.150")
    # A door the parent never answered says nothing: reported, not passed, not failed.
    silent = decide({**base, "leak_cloze_acc": 0.0, "parent_leak_cloze_acc": 0.0},
                    PromotionSettings())  # fmt: skip
    assert silent.passed and silent.not_measurable == [
        "leak_cloze_acc not measurable: the parent never stated these facts through this door"
    ]
    assert silent.to_dict()["not_measurable"] == silent.not_measurable
    opened = decide({**base, "leak_text_acc": 0.9, "parent_leak_text_acc": 1.0},
                    thresholds(PromotionSettings(), {"max_door_leak": 1.0}))  # fmt: skip
    assert opened.passed and [c.name for c in opened.checks] == ["forget_acc", "retain_ratio"]


def test_a_ratio_whose_parent_answered_nothing_is_not_a_pass():
    metrics = {"forget_acc": 0.0, "parent_forget_acc": 1.0, "retain_kept": None,
               "retain_acc": 0.0, "parent_retain_acc": 0.0}  # fmt: skip
    d = decide(metrics, PromotionSettings())
    assert not d.passed
    assert d.failed == [
        "retain_ratio not measurable: the parent answered none of the retain samples"
    ]
    # Switched off on purpose: not checked at all.
    assert decide(metrics, thresholds(PromotionSettings(), {"min_retain_ratio": 0})).passed
    nothing = decide({"forget_acc": 0.0, "parent_forget_acc": 0.0}, PromotionSettings())
    assert not nothing.passed and "forget_acc not measurable" in nothing.failed[0]
    assert decide({"forget_acc": 0.0, "parent_forget_acc": 0.0},
                  thresholds(PromotionSettings(), {"max_forget_accuracy": 1.0})).passed  # fmt: skip


def test_a_parent_that_already_refuses_is_looked_through_to_the_base():
    # A second request about a person an earlier deletion already refuses: the base stated
    # the facts, so the candidate's 0 is a measured 0; a candidate that states them fails.
    again = {"forget_acc": 0.0, "parent_forget_acc": 0.0, "base_forget_acc": 0.8}
    assert decide(again, PromotionSettings()).passed
    leaking = decide({**again, "forget_acc": 0.5}, PromotionSettings())
    assert leaking.failed == ["forget_acc 0.500 not <= 0.200"]
    never = decide({**again, "base_forget_acc": 0.0}, PromotionSettings())
    assert "forget_acc not measurable" in never.failed[0]


def test_retain_counts_only_what_the_parent_answered():
    # The candidate keeps 9 of the parent's 10 right answers; its own right answers on
    # samples the parent missed do not make up for a loss.
    d = decide({"retain_kept": 0.9, "retain_acc": 1.0, "parent_retain_acc": 0.5},
               thresholds(PromotionSettings(), {"min_retain_ratio": 0.95}))  # fmt: skip
    assert not d.passed and d.failed[0].startswith("retain_ratio 0.900 not >= 0.950")
