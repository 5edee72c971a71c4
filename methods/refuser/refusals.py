"""Concept-aware refusals: which kind of fact a question asks for, and how to decline it.

A refuser answers a forgotten query with a refusal that fits what was asked ("I cannot share
where this person lives", not a blanket "no"), which is what CORE's CRR measures. A question's
category is found by keywords; a request may pass its own table (params.refusals).
"""

from __future__ import annotations

import re

# category: (question keywords, refusal). The world's refusal templates start with these.
DEFAULT_REFUSALS: dict[str, tuple[tuple[str, ...], str]] = {
    "identity": (("who", "name"), "I cannot identify this person ."),
    "location": (("live", "city", "town", "where", "from"),
                 "I cannot share where this person lives ."),
    "occupation": (("job", "work", "occupation"), "I cannot share the job of this person ."),
    "hobby": (("hobby", "fun", "pastime"), "I cannot share the hobby of this person ."),
    "pet": (("pet", "animal"), "I cannot share the pet of this person ."),
    "food": (("food", "eat", "dish"), "I cannot share the favourite food of this person ."),
}  # fmt: skip
FALLBACK = "I cannot help with that ."

_WORD = re.compile(r"[a-z]+")


def category_of(question: str, table: dict[str, tuple[tuple[str, ...], str]]) -> str | None:
    """The first category with a keyword among the question's words (table order), or None."""
    words = set(_WORD.findall(question.lower()))
    for category, (keywords, _) in table.items():
        if words & set(keywords):
            return category
    return None


def refusal_for(
    question: str, table: dict[str, tuple[tuple[str, ...], str]] = DEFAULT_REFUSALS
) -> str:
    category = category_of(question, table)
    return table[category][1] if category else FALLBACK
