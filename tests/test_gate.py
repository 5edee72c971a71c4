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
