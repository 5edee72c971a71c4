"""A request's text door (routing/text_door.py) and its answer check's tells
(routing/answer_check.py) from what the request and the deployment hold.

Own questions, by variant kind: the forget questions asked by the target's name (visual
questions rewritten by name, evaluation/doors.text_variants, and text questions that name it)
and the same asked by every generated form of the name (evaluation/name_variants.py). The
background: the retain and general pools' questions, and the by-name questions asked about
namesakes (people who share the target's first name or surname).
"""

from __future__ import annotations

from unlearnd.daemon.job import without_concept
from unlearnd.evaluation.doors import text_variants
from unlearnd.evaluation.metrics import content_words
from unlearnd.evaluation.name_variants import (
    FIRST,
    MISSPELT,
    PARTIAL,
    asked_as,
    namesakes,
    renamed,
)
from unlearnd.models import Sample
from unlearnd.refusals import RefusalTable, category_of
from unlearnd.routing.answer_check import frame_words, scope, scoped_tells, tells
from unlearnd.routing.text_door import TextDoor, calibrate_text
from unlearnd.serving import Deployment
from unlearnd.text import mentions, normalise


def door_questions(
    kind: str, names: list[str], forget: list[Sample], deployment: Deployment
) -> tuple[dict[str, list[Sample]], list[str], list[Sample]]:
    """(own: variant kind -> samples, pool questions, namesakes' questions), every sample
    answered with the target's forget answer."""
    asked = [s for s in forget if s.image is None and any(mentions(s.question, n) for n in names)]
    by_name = [*text_variants(forget, names), *(Sample(s.question, s.answer) for s in asked)]
    own = {"full": by_name}
    own.update({k: asked_as(by_name, names, (k,)) for k in (*PARTIAL, *FIRST, *MISSPELT)})
    pool = without_concept([*deployment.retain_pool("eval"), *deployment.general_pool()], kind,
                           forget)  # fmt: skip
    questions = [s.question for s in pool if not any(mentions(s.question, n) for n in names)]
    others = [Sample(q, s.answer) for other in namesakes(names) for s in by_name
              if (q := renamed(s.question, names[0], other)) is not None]  # fmt: skip
    return {k: v for k, v in own.items() if v}, list(dict.fromkeys(questions)), others


def text_door(
    fam,
    kind: str,
    names: list[str],
    forget: list[Sample],
    deployment: Deployment,
    seed: int = 0,
    key: str | None = None,
) -> TextDoor | None:
    """The request's text door on `fam` (its adapters suspended by the caller) by `key` (None:
    the deployment's `routing.text_key`); None for a model that answers nothing (CLIP) or a
    request with no question by name."""
    r = deployment.settings.routing
    if not fam.generates_text or not r.text_door:
        return None
    own, pool, others = door_questions(kind, names, forget, deployment)
    return calibrate_text(fam, own, pool, others, r.prototypes, seed, key or r.text_key)


SHORT_ANSWER = 4  # words: an answer this short is the fact itself ("Hogwarts", "Paris")


def answer_tells(
    kind: str, names: list[str], forget: list[Sample], deployment: Deployment
) -> dict[str, tuple[str, ...]]:
    """The request's answer check (routing/answer_check.py), as Task fields: `tells`, its
    names and its samples' facts (a short answer is its fact) less what the retain and
    general pools' answers state; `scope`, the words of its names no pool text uses;
    `scoped`, the facts the pools state, and for a sample without facts its answer's content
    words (a sentence's fact is in them: "Hala lives in Kelmora" -> "kelmora"), told only
    where a question names a scope word alone; `frame`, the words of the pools' and its own
    questions that are no name (a lower-case question's "live" beside "hala")."""
    if not deployment.settings.routing.answer_check:
        return {"tells": (), "scope": (), "scoped": (), "frame": ()}
    facts = [f for s in forget for f in (s.facts or ((s.answer,) if _short(s.answer) else ()))]
    pool = without_concept([*deployment.retain_pool("eval"), *deployment.retain_pool("train"),
                            *deployment.general_pool()], kind, forget)  # fmt: skip
    told = tells(names, facts, [s.answer for s in pool])
    # Not a word of the deployment's refusals ("lives"), or what an expert says would tell,
    # nor one most pool answers to a question of its kind use ("enjoys"): no fact either.
    said = [*names, *RefusalTable(deployment.settings.refusals).sentences()]
    frames = _frames(pool)
    words = [w for s in forget if not s.facts
             for w in content_words(s.answer, [s.question, *said])
             if w not in frames.get(category_of(s.question), ())]  # fmt: skip
    texts = [t for s in pool for t in (s.question, s.answer)]
    asked = [*(s.question for s in pool), *(s.question for s in forget)]
    return {"tells": told, "scope": scope(names, texts), "scoped": scoped_tells([*facts, *words],
            told), "frame": frame_words(asked, names)}  # fmt: skip


def _frames(pool: list[Sample]) -> dict[str | None, set[str]]:
    """Question category (core/refusals.py) -> the words at least half the pool's answers
    to questions of it use, of two answers or more: the frame a fact sits in."""
    answers: dict[str | None, list[set[str]]] = {}
    for s in pool:
        answers.setdefault(category_of(s.question), []).append(set(normalise(s.answer).split()))
    return {c: {w for w in set().union(*a) if 2 * sum(w in x for x in a) >= len(a)}
            for c, a in answers.items() if len(a) >= 2}  # fmt: skip


def _short(answer: str) -> bool:
    return 0 < len(answer.split()) <= SHORT_ANSWER
