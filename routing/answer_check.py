"""The answer check: a draft answer that states a routed request's target turns its expert on.

The switch decides from the query (its image, its words, its key: routing/switch.py) before
the model answers. However a question names the target (a surname, a description: "Who
developed the theory of relativity?"), the base model's answer gives it away: it names the
target or states one of the request's facts. So each routed request stores its *tells*: its
target's names and the facts its forget samples carry, less any that the deployment's own
answers (its retain and general pools) state, since those are not the target's alone. An
answer that contains a tell, as whole words, is answered again as routed
(serving/version.py), and an answer that still tells after that is the deployment's refusal.

Cost: a lookup of the answer's word n-grams in one table, whatever the number of requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from unlearnd.text import mentions, normalise

MIN_LETTERS = 3  # a shorter tell ("US", "5") is too often another word or number


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


class AnswerCheck:
    """Which requests an answer tells of, by a table of every request's tells."""

    def __init__(self, tells_by_request: Sequence[Sequence[str]]):
        self.table: dict[str, list[int]] = {}
        for i, phrases in enumerate(tells_by_request):
            for phrase in phrases:
                self.table.setdefault(normalise(phrase), []).append(i)
        self.longest = max((len(p.split()) for p in self.table), default=0)

    def __bool__(self) -> bool:
        return bool(self.table)

    def told(self, answer: str) -> list[int]:
        """Indices of the requests whose tells the answer contains (whole words)."""
        words = normalise(answer).split()
        found: set[int] = set()
        for n in range(1, self.longest + 1):
            for start in range(len(words) - n + 1):
                found.update(self.table.get(" ".join(words[start : start + n]), ()))
        return sorted(found)
