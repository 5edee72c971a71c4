"""Concept-aware refusals: which kind of fact a question asks for, and how to decline it.

A forgotten query is answered with a refusal that fits what was asked ("I'm sorry, but I
can't share where this person lives.", not a blanket "no"), which is what CORE's CRR
measures, and that fits the target: a target that is not a person (a book series, a place,
an object class) is declined without "this person" ("I'm sorry, but I can't share details
about that."). A question's category is the one whose cues (words and phrases, weighted)
score highest over the whole question, so "Where does this person work?" is the employer,
not where the person lives. A deployment sets its own texts (`[refusals]`, e.g. for a model
with a small vocabulary; `thing_<category>` for targets that are not people); the refuser
trains its experts on them, the switch can answer routed queries with them, the evaluation
recognises them.
"""

from __future__ import annotations

import re
from typing import Literal

TargetType = Literal["person", "thing"]
PERSON: TargetType = "person"
THING: TargetType = "thing"

# category -> {cue: weight}. A cue is a regular expression over the normalised question
# (lower case, words split by one space); a question's score is the sum of its cues' weights.
# A specific cue weighs 3 (it names the fact: "employer"), a hint 1 or 2 ("where", "who"), so
# a phrase wins over the question word it starts with.
CUES: dict[str, dict[str, float]] = {
    "identity": {r"\bwho (is|was|are)\b": 1, r"\bwho\b": 1, r"\bnames?\b": 1.5,
                 r"\bidentify\b": 3, r"\bcalled\b": 2, r"\bidentity\b": 3},
    "location": {r"\blive[sd]?\b": 2, r"\bliving in\b": 2, r"\bcity\b": 2, r"\btown\b": 2,
                 r"\bcountry\b": 2, r"\bhome\b": 2, r"\baddress\b": 3, r"\breside": 3,
                 r"\bfrom\b": 1, r"\bwhere\b": 1, r"\bwhere\b.*\bborn\b": 3,
                 r"\blocated\b": 3, r"\bwhere is\b": 1},
    "employer": {r"\bemploy(er|ed)\b": 3, r"\bcompany\b": 3, r"\bfirm\b": 2,
                 r"\bwork(s|ed|ing)? (for|at)\b": 3, r"\bwhere\b.*\bwork(s|ed|ing)?\b": 3},
    "occupation": {r"\bjobs?\b": 3, r"\boccupation\b": 3, r"\bprofession\b": 3,
                   r"\bcareer\b": 3, r"\bfor a living\b": 4, r"\bdo for work\b": 4,
                   r"\bwork(s|ed)? as\b": 3, r"\bwork\b": 2, r"\bwhat does\b.*\bdo\b": 1},
    "education": {r"\bschool\b": 3, r"\buniversity\b": 3, r"\bcollege\b": 3,
                  r"\bstud(y|ied|ies)\b": 3, r"\bdegree\b": 3, r"\beducat": 3,
                  r"\bgraduat": 3, r"\battend": 1},
    "hobby": {r"\bhobby\b|\bhobbies\b": 3, r"\bfun\b": 3, r"\bpastime\b": 3,
              r"\b(free|spare) time\b": 3, r"\bleisure\b": 3, r"\benjoy": 2},
    "pet": {r"\bpets?\b": 3, r"\banimals?\b": 2, r"\b(dog|cat|parrot|rabbit|hamster)s?\b": 3,
            r"\bkeeps?\b": 1},
    "food": {r"\bfood\b": 3, r"\beats?\b": 3, r"\bdish\b": 3, r"\bmeals?\b": 3,
             r"\bcuisine\b": 3, r"\bdrinks?\b": 2, r"\bcook": 1},
    "family": {r"\bmarried\b": 3, r"\b(wife|husband|spouse|partner)\b": 3, r"\bfamily\b": 3,
               r"\b(children|kids|sons?|daughters?)\b": 3,
               r"\b(parents|mother|father|siblings?|brothers?|sisters?)\b": 3},
    "contact": {r"\bphone\b": 3, r"\be ?mail\b": 3, r"\bcontact\b": 3, r"\bnumber\b": 1,
                r"\breach\b": 2},
    "birth": {r"\bborn\b": 2, r"\bbirthday\b": 3, r"\bbirth\b": 2, r"\bages?\b": 3,
              r"\bhow old\b": 3, r"\bwhen\b.*\bborn\b": 2},
    "creator": {r"\b(wrote|written|author|made|created|built|designed|invented|founded|"
                r"directed|composed|painted)\b": 3, r"\bwho\b": 1},
}  # fmt: skip

# The product's own refusals, plain English, naming what was asked: of a person, and of a
# target that is not one (which has no job, pet or family: those go to its fallback).
DEFAULT_REFUSALS: dict[str, str] = {
    "identity": "I'm sorry, but I can't identify this person.",
    "location": "I'm sorry, but I can't share where this person lives.",
    "employer": "I'm sorry, but I can't share where this person works.",
    "occupation": "I'm sorry, but I can't share what this person does for work.",
    "education": "I'm sorry, but I can't share where this person studied.",
    "hobby": "I'm sorry, but I can't share this person's hobbies.",
    "pet": "I'm sorry, but I can't share this person's pets.",
    "food": "I'm sorry, but I can't share this person's favourite food.",
    "family": "I'm sorry, but I can't share this person's family.",
    "contact": "I'm sorry, but I can't share this person's contact details.",
    "birth": "I'm sorry, but I can't share this person's age or birthday.",
}
THING_REFUSALS: dict[str, str] = {
    "identity": "I'm sorry, but I can't say what that is.",
    "location": "I'm sorry, but I can't share where that is.",
    "creator": "I'm sorry, but I can't share who made that.",
}
FALLBACK = "I'm sorry, but I can't help with that."
THING_FALLBACK = "I'm sorry, but I can't share details about that."
FALLBACK_KEY = "fallback"  # in a table of overrides: the refusal of a question of no category
THING_PREFIX = "thing_"  # in a table of overrides: a text for targets that are not people

_WORD = re.compile(r"[a-z]+")
_COMPILED: dict[str, list[tuple[re.Pattern, float]]] = {
    category: [(re.compile(cue), weight) for cue, weight in cues.items()]
    for category, cues in CUES.items()
}


def scores(question: str, categories: list[str] | None = None) -> dict[str, float]:
    """Each category's cue score on the question (a category with no cues of its own, a
    deployment's new one, is cued by its name)."""
    text = " ".join(_WORD.findall(question.lower()))
    out = {}
    for category in categories if categories is not None else list(CUES):
        cues = _COMPILED.get(category) or [(re.compile(rf"\b{re.escape(category)}\b"), 3.0)]
        out[category] = sum(w for pattern, w in cues if pattern.search(text))
    return out


def category_of(question: str, categories: list[str] | None = None) -> str | None:
    """The category whose cues score highest over the question (ties: `categories` order,
    default CUES'), or None when no cue is present."""
    scored = scores(question, categories)
    best = max(scored, key=scored.__getitem__, default=None)
    return best if best is not None and scored[best] > 0 else None


def target_type(kind: str, declared: str | None = None) -> TargetType:
    """A request's target: as declared (`target.type`), else a person for an entity or a
    samples request, a thing for a concept or a domain."""
    if declared is not None:
        return declared  # type: ignore[return-value]
    return THING if kind in ("concept", "domain") else PERSON


class RefusalTable:
    """The defaults with a deployment's (or a request's) texts over them: category -> text,
    `fallback` for a question of no category, `thing_<category>` / `thing_fallback` for a
    target that is not a person."""

    def __init__(self, texts: dict[str, str] | None = None):
        texts = dict(texts or {})
        own = {k: v for k, v in texts.items() if not k.startswith(THING_PREFIX)}
        things = {k.removeprefix(THING_PREFIX): v for k, v in texts.items()
                  if k.startswith(THING_PREFIX)}  # fmt: skip
        self.tables = {PERSON: {**DEFAULT_REFUSALS, **own}, THING: {**THING_REFUSALS, **things}}
        self.fallbacks = {PERSON: self.tables[PERSON].pop(FALLBACK_KEY, FALLBACK),
                          THING: self.tables[THING].pop(FALLBACK_KEY, THING_FALLBACK)}  # fmt: skip
        # Every category either table names, so a question is classified the same for both.
        self.categories = list(dict.fromkeys([*CUES, *self.tables[PERSON], *self.tables[THING]]))

    def __call__(self, question: str, target: TargetType = PERSON) -> str:
        """The refusal of the question's category for this kind of target (its fallback when
        the question has none, or one the target has not: a thing's pet)."""
        category = category_of(question, self.categories)
        return self.tables[target].get(category or "", self.fallbacks[target])

    def sentences(self) -> set[str]:
        """Everything this table can say."""
        return {*self.tables[PERSON].values(), *self.tables[THING].values(),
                *self.fallbacks.values()}  # fmt: skip

    def texts(self) -> dict[str, list[str]]:
        """Category -> its refusals, of a person and of a thing (a refusal matcher's
        templates)."""
        out: dict[str, list[str]] = {}
        for table in self.tables.values():
            for category, text in table.items():
                out.setdefault(category, []).append(text)
        return out
