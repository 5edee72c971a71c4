"""Concept-aware refusals: which kind of fact a question asks for, and how to decline it.

A refuser answers a forgotten query with a refusal that fits what was asked ("I cannot share
where this person lives", not a blanket "no"), which is what CORE's CRR measures. A question's
category is found by keywords; a request may pass its own table (params.refusals).
"""

from __future__ import annotations

import re

# category: (question keywords, refusal): plain English, naming what was asked. A deployment
# replaces the texts (`[methods.refuser] refusals`), e.g. for a model with a small vocabulary.
DEFAULT_REFUSALS: dict[str, tuple[tuple[str, ...], str]] = {
    "identity": (("who", "name", "identify"), "I'm sorry, but I can't identify this person."),
    "location": (("live", "city", "town", "where", "from"),
                 "I'm sorry, but I can't share where this person lives."),
    "occupation": (("job", "work", "occupation", "profession"),
                   "I'm sorry, but I can't share what this person does for work."),
    "hobby": (("hobby", "hobbies", "fun", "pastime"),
              "I'm sorry, but I can't share this person's hobbies."),
    "pet": (("pet", "pets", "animal"), "I'm sorry, but I can't share this person's pets."),
    "food": (("food", "eat", "dish"), "I'm sorry, but I can't share this person's favourite food."),
}  # fmt: skip
FALLBACK = "I'm sorry, but I can't help with that."
FALLBACK_KEY = "fallback"  # in a table of overrides: the refusal of a question of no category

_WORD = re.compile(r"[a-z]+")


def category_of(question: str, table: dict[str, tuple[tuple[str, ...], str]]) -> str | None:
    """The first category with a keyword among the question's words (table order), or None."""
    words = set(_WORD.findall(question.lower()))
    for category, (keywords, _) in table.items():
        if words & set(keywords):
            return category
    return None


def refusal_for(
    question: str,
    table: dict[str, tuple[tuple[str, ...], str]] = DEFAULT_REFUSALS,
    fallback: str = FALLBACK,
) -> str:
    category = category_of(question, table)
    return table[category][1] if category else fallback
