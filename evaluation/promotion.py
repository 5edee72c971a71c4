"""The promotion gate: a candidate version moves the alias only if its metrics pass.

Thresholds come from the deployment's `[gate]` settings, overridden key by key by a request's
own `gate` field. The decision lists every check, so a `gated` version says what failed:
- `forget_acc` (held-out forget samples) at most `max_forget_accuracy`;
- every door (`leak_<door>_acc`) at most the parent's rate of stating the target's facts on
  unrelated samples (`parent_unrelated_acc`, chance) + `max_door_leak`;
- the retain and general sets: of the samples the parent answered, the share the candidate
  still answers (`retain_kept`) at least `min_retain_ratio` (`min_general_ratio`);
- what the doors' answers say instead (evaluation/behaviour.py): the share that is another
  target's fact or identity (`answers_hallucinated`), or degenerate (`answers_degenerate`),
  at most the parent's + `max_hallucinated` (`max_degenerate`).
A check whose parent answered nothing is "not measurable", never a pass: for forget, retain
and general that fails the gate with the reason (set the threshold to 1, or 0, to skip the
check); a door the parent never answered is reported, and left out of the decision. For
forget, a parent that is an earlier deletion is looked through to the base model
(`base_forget_acc`): a second request about a person already refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from unlearnd.config import PromotionSettings

PASSED, FAILED, NOT_MEASURABLE = "passed", "failed", "not measurable"
PARENT_NONE = "not measurable (parent answered none)"  # what every report line says of it


def unmeasurable(metrics: dict[str, Any]) -> list[str]:
    """The doors (forget sets, leak probes) on which the parent stated nothing: no figure of
    the candidate's there says whether anything was forgotten."""
    return sorted(k.removeprefix("parent_").removesuffix("_acc") for k, v in metrics.items()
                  if k.startswith(("parent_forget", "parent_leak_")) and k.endswith("_acc")
                  and v == 0)  # fmt: skip


class ThresholdError(ValueError):
    """A request's gate overrides are not valid thresholds."""


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None  # None: not measurable
    threshold: float
    op: str  # "<=" or ">="
    passed: bool
    status: str = PASSED  # passed, failed, or not measurable
    note: str = ""

    def describe(self) -> str:
        if self.value is None:
            return f"{self.name} not measurable: {self.note}"
        return f"{self.name} {self.value:.3f} not {self.op} {self.threshold:.3f}"


@dataclass(frozen=True)
class PromotionDecision:
    passed: bool
    checks: list[Check]

    @property
    def failed(self) -> list[str]:
        return [c.describe() for c in self.checks if c.status == FAILED]

    @property
    def not_measurable(self) -> list[str]:
        return [c.describe() for c in self.checks if c.status == NOT_MEASURABLE]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "not_measurable": self.not_measurable,
            "checks": [asdict(c) for c in self.checks],
        }


def thresholds(defaults: PromotionSettings, overrides: dict[str, Any] | None) -> PromotionSettings:
    """The deployment's thresholds with a request's overrides applied (validated)."""
    try:
        return PromotionSettings.model_validate({**defaults.model_dump(), **(overrides or {})})
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"])
            msgs.append(
                f"gate.{key}: "
                + ("unknown threshold" if err["type"] == "extra_forbidden" else err["msg"])
            )
        raise ThresholdError("; ".join(msgs)) from e


def _at_most(name: str, value: float, limit: float) -> Check:
    ok = value <= limit
    return Check(name, value, limit, "<=", ok, PASSED if ok else FAILED)


def _kept(metrics: dict[str, Any], split: str, minimum: float) -> Check | None:
    """The candidate keeps `minimum` of what the parent answered on `split` (None: no set)."""
    name = f"{split}_ratio"
    if f"{split}_kept" in metrics:
        value = metrics[f"{split}_kept"]
    elif f"{split}_acc" in metrics and f"parent_{split}_acc" in metrics:  # older metrics
        parent = metrics[f"parent_{split}_acc"]
        value = metrics[f"{split}_acc"] / parent if parent > 0 else None
    else:
        return None
    if value is None:
        if minimum <= 0:
            return None  # the check is switched off
        note = f"the parent answered none of the {split} samples"
        return Check(name, None, minimum, ">=", False, FAILED, note)
    ok = value >= minimum
    return Check(name, value, minimum, ">=", ok, PASSED if ok else FAILED)


def decide(metrics: dict[str, Any], gate: BaseModel) -> PromotionDecision:
    """Compare the candidate's metrics (with its parent's, `parent_*`) with thresholds; a
    key that is absent skips its check."""
    g = PromotionSettings.model_validate(gate.model_dump())
    checks = []
    if "forget_acc" in metrics and g.max_forget_accuracy < 1:
        # A parent that already refuses (an earlier deletion of the same person) is measured
        # against the base model: were the facts ever stated?
        reference = metrics.get("parent_forget_acc", 1) or metrics.get("base_forget_acc", 0)
        if reference == 0:
            note = "the parent stated none of the held-out forget facts: nothing shows forgetting"
            checks.append(Check("forget_acc", None, g.max_forget_accuracy, "<=", False, FAILED,
                                note))  # fmt: skip
        else:
            checks.append(_at_most("forget_acc", metrics["forget_acc"], g.max_forget_accuracy))
    chance = metrics.get("parent_unrelated_acc") or 0.0
    for key in sorted(k for k in metrics if k.startswith("leak_") and k.endswith("_acc")):
        if f"parent_{key}" not in metrics or g.max_door_leak >= 1:
            continue
        limit = min(1.0, chance + g.max_door_leak)
        if metrics[f"parent_{key}"] == 0:
            note = "the parent never stated these facts through this door"
            checks.append(Check(key, None, limit, "<=", False, NOT_MEASURABLE, note))
        else:
            checks.append(_at_most(key, metrics[key], limit))
    for split, minimum in (("retain", g.min_retain_ratio), ("general", g.min_general_ratio)):
        check = _kept(metrics, split, minimum)
        if check is not None:
            checks.append(check)
    for key, margin in (("answers_hallucinated", g.max_hallucinated),
                        ("answers_degenerate", g.max_degenerate)):  # fmt: skip
        if key in metrics and margin < 1:
            limit = min(1.0, (metrics.get(f"parent_{key}") or 0.0) + margin)
            checks.append(_at_most(key, metrics[key], limit))
    return PromotionDecision(all(c.status != FAILED for c in checks), checks)
