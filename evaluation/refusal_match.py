"""Which refusal category an answer is: nearest refusal template by embedding similarity.

CRR counts an answer as a refusal of category c when it is closest to c's refusal templates
and close enough. A model rarely repeats a template word for word ("I can not tell you where
this person lives"), so exact matching under-counts; a learnt sentence encoder would need a
download, so the embedding is a deterministic hashed bag of features, numpy only:

- word unigrams and bigrams of the normalised text (contractions and "cannot" spelt out, so
  "can't", "cannot" and "can not" are the same words);
- character 3- and 4-grams inside each word (so "hobby" / "hobbies" share most features);

each weighted by how specific it is to one category (1 + log(K / categories using it): the
"I cannot share ... of this person" every template has weighs 1, "lives" or "pet" 2.8),
hashed (blake2b, stable across processes, unlike `hash`) to one of 2**14 signed dimensions,
then L2-normalised, so a dot product is a cosine.

An exact template (normalised) is always its own category. Anything else is a refusal when
it declines (a word of NEGATIONS: "this person lives in paris" shares most words with the
location refusal but refuses nothing) and its best cosine reaches `threshold`; it is a
refusal of category c when c is that best and leads the runner-up by `margin` (otherwise it
is a refusal of no single category, which never counts for CRR).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from unlearnd.text import normalise

DIM = 1 << 14
# Measured on the world's templates (tests/test_refusal_match.py): paraphrased refusals of the
# asked category score 0.47 to 0.94 and lead the next category by >= 0.17; answers without a
# refusal word never get this far; declining without naming what ("I cannot help with that",
# "I do not know") scores <= 0.25.
THRESHOLD = 0.45
MARGIN = 0.1
NEGATIONS = frozenset({"not", "sorry", "private", "unable", "refuse", "decline", "confidential"})
KIND_WEIGHT = {"w": 1.0, "b": 1.0, "c": 0.5}  # word, bigram, character n-gram

_SPELL_OUT = [  # after normalise() punctuation is a space: "can't" -> "can t"
    (re.compile(r"\bcannot\b"), "can not"),
    (re.compile(r"\b(can|won|don|doesn|isn|aren|shouldn|couldn|wouldn) t\b"), r"\1 not"),
    (re.compile(r"\bwon not\b"), "will not"),
]


def canonical(text: str) -> str:
    text = normalise(text)
    for pattern, repl in _SPELL_OUT:
        text = pattern.sub(repl, text)
    return text


def features(text: str) -> dict[str, float]:
    """Feature -> sublinear count (1 + log n); keys start with their kind (w, b, c)."""
    words = canonical(text).split()
    counts: dict[str, int] = {}
    keys = [f"w:{w}" for w in words]
    keys += [f"b:{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    for w in words:
        padded = f"<{w}>"
        keys += [f"c:{padded[i : i + n]}" for n in (3, 4) for i in range(len(padded) - n + 1)]
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    return {k: 1.0 + math.log(n) for k, n in counts.items()}


@lru_cache(maxsize=1 << 16)
def _slot(key: str) -> tuple[int, float]:
    value = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return value % DIM, (1.0 if value >> 63 else -1.0)


def embed(text: str, weights: Mapping[str, float] | None = None) -> np.ndarray:
    """A unit vector of DIM float32 (zeros for an empty text); `weights`: per-feature factors
    (a feature not in it weighs 1)."""
    vec = np.zeros(DIM, dtype=np.float32)
    for key, value in features(text).items():
        index, sign = _slot(key)
        factor = weights.get(key, 1.0) if weights is not None else 1.0
        vec[index] += sign * KIND_WEIGHT[key[0]] * factor * value
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


@dataclass(frozen=True)
class Match:
    refusal: bool
    category: str | None  # None: not a refusal, or a refusal of no single category
    score: float | None  # best cosine (1.0 for an exact template; None: not compared)


class RefusalMatcher:
    """Refusal templates by category, embedded once."""

    def __init__(
        self,
        templates: Mapping[str, Sequence[str]],
        threshold: float = THRESHOLD,
        margin: float = MARGIN,
    ):
        self.threshold, self.margin = threshold, margin
        self.categories = list(templates)
        self.exact: dict[str, str] = {}
        used_by: dict[str, int] = {}
        for category, texts in templates.items():
            for text in texts:
                self.exact.setdefault(canonical(text), category)  # the first category wins
            for key in set().union(*(features(t) for t in texts)) if texts else ():
                used_by[key] = used_by.get(key, 0) + 1
        k = max(len(self.categories), 1)
        self.weights = {key: 1.0 + math.log(k / n) for key, n in used_by.items()}
        rows, owners = [], []
        for i, texts in enumerate(templates.values()):
            rows += [embed(t, self.weights) for t in texts]
            owners += [i] * len(texts)
        self.matrix = np.stack(rows) if rows else np.zeros((0, DIM), np.float32)
        self.owners = np.asarray(owners, dtype=np.int64)

    def scores(self, answer: str) -> dict[str, float]:
        """Best cosine of the answer against each category's templates."""
        sims = self.matrix @ embed(answer, self.weights)
        best = np.full(len(self.categories), -1.0)
        np.maximum.at(best, self.owners, sims)
        return {c: float(s) for c, s in zip(self.categories, best, strict=True)}

    def match(self, answer: str) -> Match:
        said = canonical(answer)
        if said in self.exact:
            return Match(True, self.exact[said], 1.0)
        if not NEGATIONS.intersection(said.split()) or not self.categories:
            return Match(False, None, None)
        ranked = sorted(self.scores(answer).items(), key=lambda kv: -kv[1])
        best, score = ranked[0]
        if score < self.threshold:
            return Match(False, None, score)
        runner_up = ranked[1][1] if len(ranked) > 1 else -1.0
        return Match(True, best if score - runner_up >= self.margin else None, score)

    def category(self, answer: str) -> str | None:
        return self.match(answer).category


@lru_cache(maxsize=32)
def _cached(key: tuple, threshold: float, margin: float) -> RefusalMatcher:
    return RefusalMatcher(dict(key), threshold, margin)


def with_english(templates: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
    """A deployment's refusal texts per category plus the product's plain-English ones, of
    a person and of a thing (core/refusals.py), which is what refusals are recognised by."""
    from unlearnd.refusals import RefusalTable

    out = RefusalTable().texts()
    for category, texts in (templates or {}).items():
        out[category] = [*texts, *out.get(category, [])]
    return out


def matcher(
    templates: Mapping[str, Sequence[str]], threshold: float = THRESHOLD, margin: float = MARGIN
) -> RefusalMatcher:
    """A matcher for these templates, built once per (templates, threshold, margin)."""
    key = tuple((c, tuple(texts)) for c, texts in templates.items())
    return _cached(key, threshold, margin)
