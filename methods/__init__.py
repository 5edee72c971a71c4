"""Unlearning methods: one module each, registered in METHODS below (the one place)."""

from __future__ import annotations

from unlearnd.methods.adu import ADU
from unlearnd.methods.base import Method, MethodParams, MethodResult, ParamError
from unlearnd.methods.cagul import CAGUL
from unlearnd.methods.ga import GA
from unlearnd.methods.graddiff import GradDiff
from unlearnd.methods.kl import KL
from unlearnd.methods.npo import NPO
from unlearnd.methods.pubg import PUBG
from unlearnd.methods.refuser import Refuser
from unlearnd.methods.reject import Reject
from unlearnd.methods.vl_eraser import VLEraser

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        ADU(),
        CAGUL(),
        GA(),
        GradDiff(),
        KL(),
        NPO(),
        PUBG(),
        Refuser(),
        Reject(),
        VLEraser(),
    )
}


class UnknownMethod(KeyError):
    def __str__(self) -> str:
        return f"unknown method {self.args[0]!r}; registered: {', '.join(sorted(METHODS))}"


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise UnknownMethod(name) from None


__all__ = ["METHODS", "Method", "MethodParams", "MethodResult", "ParamError", "get_method"]
