"""The gate: a candidate version moves the alias only if its metrics pass every threshold.

Thresholds come from the deployment's `[gate]` settings, overridden key by key by a request's
own `gate` field. The decision lists every check, so a `gated` version says what failed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from unlearnd.config import PromotionSettings


class ThresholdError(ValueError):
    """A request's gate overrides are not valid thresholds."""


@dataclass(frozen=True)
class Check:
    name: str
    value: float
    threshold: float
    op: str  # "<=" or ">="
    passed: bool


@dataclass(frozen=True)
class PromotionDecision:
    passed: bool
    checks: list[Check]

    @property
    def failed(self) -> list[str]:
        return [
            f"{c.name} {c.value:.3f} not {c.op} {c.threshold:.3f}"
            for c in self.checks
            if not c.passed
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failed": self.failed,
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


def _ratio(candidate: float, parent: float) -> float:
    return candidate / parent if parent > 0 else 1.0


def decide(metrics: dict[str, float], gate: BaseModel) -> PromotionDecision:
    """Compare candidate metrics with thresholds.

    `metrics` holds forget_acc, and retain_acc / general_acc of the candidate with
    parent_retain_acc / parent_general_acc of its parent (keys absent = check skipped).
    """
    g = PromotionSettings.model_validate(gate.model_dump())
    checks = []
    if "forget_acc" in metrics:
        v = metrics["forget_acc"]
        checks.append(
            Check("forget_acc", v, g.max_forget_accuracy, "<=", v <= g.max_forget_accuracy)
        )
    for split, minimum in (("retain", g.min_retain_ratio), ("general", g.min_general_ratio)):
        if f"{split}_acc" in metrics and f"parent_{split}_acc" in metrics:
            r = _ratio(metrics[f"{split}_acc"], metrics[f"parent_{split}_acc"])
            checks.append(Check(f"{split}_ratio", r, minimum, ">=", r >= minimum))
    return PromotionDecision(all(c.passed for c in checks), checks)
