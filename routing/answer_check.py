"""The answer check: a draft answer that states a routed request's target turns its expert on.

The switch decides from the query (its image, its words, its key: routing/switch.py) before
the model answers. However a question names the target (a surname, a description: "Who
developed the theory of relativity?"), the base model's answer gives it away: it names the
target or states one of the request's facts. So each routed request stores its *tells*: its
target's names and the facts its forget samples carry, less any that the deployment's own
answers (its retain and general pools) state, since those are not the target's alone. An
answer that contains a tell, as whole words, is answered again as routed
(serving/version.py), and an answer that still tells after that is the deployment's refusal.

*Scoped tells*: a fact the pools also state (a city other people live in) tells of no one in
general, but it does in the answer to a question that names the target by one word of its
name alone ("In which city does Hala live?" -> "Kelmora"). So each request also stores its
*scope* (the words of its name that no pool text uses: "hala", "staindberg") and its scoped
tells (the facts the pools state); an answer that contains a scoped tell tells of the request
when its question names a scope word, or one typo from it, that is not part of another name
("Hala Smith" is someone else; "Dr Staindberg", "H. Staindberg" are not).

Cost: a lookup of the answer's word n-grams in one table, whatever the number of requests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from unlearnd.text import STOP_WORDS, TYPO_MIN_LETTERS, mentions, normalise, one_edit

MIN_LETTERS = 3  # a shorter tell ("US", "5") is too often another word or number
# Words that may stand before a surname without naming another person.
TITLES = frozenset("mr mrs ms miss dr prof sir dame lady lord saint st".split())
_WORD = re.compile(r"[^\W_]+")


def tells(names: Iterable[str], facts: Iterable[str], background: Sequence[str]) -> tuple[str, ...]:
    """A request's tells: its names and facts that no background answer states."""
    out = []
    for phrase in (*names, *facts):
        norm = normalise(phrase)
        if len(norm.replace(" ", "")) < MIN_LETTERS or norm in out:
            continue
        if not any(mentions(answer, phrase) for answer in background):
            out.append(norm)
    return tuple(out)


def scope(names: Iterable[str], background: Sequence[str]) -> tuple[str, ...]:
    """The words of the target's multi-word names that no background text uses: one of them
    alone in a question names the target ("Einstein"), unlike "Albert" where a pool asks
    about Albert Camus. A one-word name is a tell already."""
    words = [w for n in names if len(ws := normalise(n).split()) > 1 for w in ws]
    return tuple(dict.fromkeys(w for w in words if len(w) >= MIN_LETTERS
                               and not any(mentions(t, w) for t in background)))  # fmt: skip


def scoped_tells(facts: Iterable[str], told: Sequence[str]) -> tuple[str, ...]:
    """The facts that are no tells (a background answer states them): they tell only in the
    answer to a question that names the target by a scope word."""
    out = (normalise(f) for f in facts)
    return tuple(dict.fromkeys(f for f in out if len(f.replace(" ", "")) >= MIN_LETTERS
                               and f not in told))  # fmt: skip


def frame_words(questions: Iterable[str], names: Iterable[str]) -> tuple[str, ...]:
    """The words of the deployment's cased questions that are never a name there (never
    capitalised but where a sentence starts), less the target's name words and stop words:
    beside a scope word in a lower-case question, one of them is no surname ("where does
    hala live"), while any other word may be ("hala stouston")."""
    named = {w for n in names for w in normalise(n).split()}
    plain: set[str] = set()
    capital: set[str] = set()
    for text in questions:
        if not any(c.isupper() for c in text):  # lower case hides which words are names
            continue
        for m in _WORD.finditer(text):
            upper = m.group()[0].isupper() and not _starts_sentence(text, m)
            (capital if upper else plain).add(normalise(m.group()))  # "The" -> "": no word
    return tuple(sorted(plain - capital - named - STOP_WORDS - {""}))


@dataclass(frozen=True)
class Scope:
    """A request's scoped tells: `facts`, told when a question names one of `words` alone;
    `names`: the target's names (their words and titles do not make another person);
    `frame`: words that are no name beside a scope word in lower-case text (`frame_words`)."""

    words: tuple[str, ...] = ()
    facts: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    frame: tuple[str, ...] = ()


def names_alone(text: str, scope: Scope) -> bool:
    """Does `text` name a scope word (or one typo from one of at least TYPO_MIN_LETTERS
    letters) that is not part of another name, i.e. with no capitalised neighbour other than
    the target's name words, a title or an initial? A capitalised word that starts a
    sentence is no name. Text in lower case shows no name: there any neighbour but a stop
    word or a frame word may be one ("hala stouston"), so "who was einstein" and "where does
    hala live" count (a namesake refused is worse than a first name that still answers)."""
    own = {w for n in scope.names for w in normalise(n).split()} | TITLES | set(scope.frame)
    cased = any(c.isupper() for c in text)
    found = list(_WORD.finditer(text))
    for k, m in enumerate(found):
        word = m.group().lower()
        if not any(word == w or (len(w) >= TYPO_MIN_LETTERS and one_edit(word, w))
                   for w in scope.words):  # fmt: skip
            continue
        if not any(_another_name(text, n, own, cased) for n in (found[k - 1] if k else None,
                   found[k + 1] if k + 1 < len(found) else None)):  # fmt: skip
            return True
    return False


def _another_name(text: str, m: re.Match | None, own: set[str], cased: bool) -> bool:
    """May the word `m` of `text` be part of a name other than the target's?"""
    if m is None or len(m.group()) == 1:  # one letter: an initial
        return False
    word = m.group().lower()
    if not cased:
        return word not in own and word not in STOP_WORDS
    return m.group()[0].isupper() and not _starts_sentence(text, m) and word not in own


def _starts_sentence(text: str, m: re.Match) -> bool:
    before = text[: m.start()].rstrip()
    return not before or before[-1] in ".?!:"


class AnswerCheck:
    """Which requests an answer tells of, by a table of every request's tells (and one of
    their scoped tells)."""

    def __init__(self, tells_by_request: Sequence[Sequence[str]], scopes: Sequence[Scope] = ()):
        self.table: dict[str, list[int]] = {}
        for i, phrases in enumerate(tells_by_request):
            for phrase in phrases:
                self.table.setdefault(normalise(phrase), []).append(i)
        self.scopes = list(scopes)
        self.scoped: dict[str, list[int]] = {}
        for i, sc in enumerate(self.scopes):
            for phrase in sc.facts if sc.words else ():
                self.scoped.setdefault(normalise(phrase), []).append(i)
        self.longest = max((len(p.split()) for p in (*self.table, *self.scoped)), default=0)

    def __bool__(self) -> bool:
        return bool(self.table)

    def told(self, answer: str, question: str = "") -> list[int]:
        """Indices of the requests whose tells the answer contains (whole words), or whose
        scoped tells it contains when `question` names the request's scope alone."""
        words = normalise(answer).split()
        found: set[int] = set()
        scoped: set[int] = set()
        for n in range(1, self.longest + 1):
            for start in range(len(words) - n + 1):
                gram = " ".join(words[start : start + n])
                found.update(self.table.get(gram, ()))
                scoped.update(self.scoped.get(gram, ()))
        found.update(i for i in scoped - found if names_alone(question, self.scopes[i]))
        return sorted(found)
