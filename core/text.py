"""Text normalisation, the one every layer compares texts with (answers against facts, a
question against a forgotten name): the usual QA convention (lower case, no punctuation, no
articles, single spaces)."""

from __future__ import annotations

import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})
# Words that carry no fact: a sentence's frame ("she is", "it was in the"), which a refusal or
# an echo of the question shares with any answer. After normalise(): "can't" is "can t".
STOP_WORDS = frozenset(
    "i me my you your he him his she her it its we our they them their this that these those "
    "is are was were be been being am do does did have has had will would can could shall "
    "should may might must of in on at to for from by with about as into over under and or "
    "but not no so than then there here what which who whom whose where when why how also "
    "very just m s t d ll re ve".split()
)


def normalise(text: str) -> str:
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def mentions(text: str, phrase: str) -> bool:
    """True when the normalised phrase appears as whole words in the normalised text; an
    empty phrase is in no text."""
    ref = normalise(phrase)
    return bool(ref) and f" {ref} " in f" {normalise(text)} "


TYPO_MIN_LETTERS = 5  # a shorter name word with one letter changed is too often another word


def one_edit(a: str, b: str) -> bool:
    """Are two words one typo apart: one letter changed, added or dropped, or two neighbours
    swapped (Damerau)?"""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        if len(diff) == 1:
            return True
        i, j = diff if len(diff) == 2 else (0, 0)
        return j == i + 1 and a[i] == b[j] and a[j] == b[i]
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def mentions_nearly(text: str, name: str) -> bool:
    """Does the text name `name` with one typo ("Albert Einstien", "Eifel Tower") or with its
    words run together, or one typo from that ("HarryPotter")? Only a name word of at least
    TYPO_MIN_LETTERS letters takes a typo; an exact mention is `mentions`'."""
    ref, words = normalise(name).split(), normalise(text).split()
    if not ref:
        return False
    joined = "".join(ref)
    if len(ref) > 1 and any(w == joined or one_edit(w, joined) for w in words):
        return True
    for start in range(len(words) - len(ref) + 1):
        window = words[start : start + len(ref)]
        typos = [w != r for w, r in zip(window, ref, strict=True)]
        if sum(typos) == 1:
            w, r = next((w, r) for w, r, t in zip(window, ref, typos, strict=True) if t)
            if len(r) >= TYPO_MIN_LETTERS and one_edit(w, r):
                return True
    return False
