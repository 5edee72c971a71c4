"""Concept-aware refusals: which kind of fact a question asks for, and how to decline it.

A forgotten query is answered with a refusal that fits what was asked ("I'm sorry, but I
can't share where this person lives.", not a blanket "no"), which is what CORE's CRR
measures. A question's category is found by keywords. A deployment sets its own texts
(`[refusals]`, e.g. for a model with a small vocabulary); the refuser trains its experts on
them, the switch can answer routed queries with them, the evaluation recognises them.
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


class RefusalTable:
    """The default table with a deployment's (or a request's) texts over it: category ->
    text, and `fallback` for a question of no category."""

    def __init__(self, texts: dict[str, str] | None = None):
        texts = dict(texts or {})
        self.fallback = texts.pop(FALLBACK_KEY, FALLBACK)
        self.table = dict(DEFAULT_REFUSALS)
        for category, text in texts.items():
            keywords = self.table[category][0] if category in self.table else (category,)
            self.table[category] = (keywords, text)

    def __call__(self, question: str) -> str:
        """The refusal of the question's category."""
        return refusal_for(question, self.table, self.fallback)

    def texts(self) -> dict[str, list[str]]:
        """Category -> its refusal (a refusal matcher's templates)."""
        return {category: [text] for category, (_, text) in self.table.items()}
