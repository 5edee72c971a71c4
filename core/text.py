"""Text normalisation, the one every layer compares texts with (answers against facts, a
question against a forgotten name): the usual QA convention (lower case, no punctuation, no
articles, single spaces)."""

from __future__ import annotations

import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalise(text: str) -> str:
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def mentions(text: str, phrase: str) -> bool:
    """True when the normalised phrase appears as whole words in the normalised text; an
    empty phrase is in no text."""
    ref = normalise(phrase)
    return bool(ref) and f" {ref} " in f" {normalise(text)} "
