"""Other ways to name a request's target, generated from its names for any deployment.

Users rarely type the name a request spells: they write a surname, a first name, an initial,
a title, a typo. `variants` gives those forms of the target's full name, by kind; `renamed`
asks a question with another form; `namesakes` are other people who share one name word with
the target (the background a text door must not refuse). The door probes
(evaluation/doors.py) and the text door's prototypes and calibration (daemon/text_door.py)
are built from them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from unlearnd.models.base import Sample

PARTIAL = ("surname", "initial", "title")  # the `leak_partial` door
# A first name alone names the target's namesakes as much as the target: scored as its own
# set, `first_name`, reported and not gated (docs/routing.md, "The doors of a deletion").
FIRST = ("first",)
MISSPELT = ("misspelt", "run_together")  # the `leak_misspelt` door
TITLES = ("Mr", "Ms", "Dr")
# Namesakes: the target's first name with these surnames, and its surname with these first
# names. Common words in most tokenizers; a deployment's model need not know them.
OTHER_FIRST = ("John", "Maria", "David", "Anna")
OTHER_LAST = ("Smith", "Garcia", "Miller", "Chen")


def _misspelt(word: str) -> str:
    """One letter changed: the second-to-last doubled (a typo a reader still recognises)."""
    if len(word) < 3:
        return word + word[-1:]
    return word[:-1] + word[-2] + word[-1]


def variants(names: Sequence[str]) -> dict[str, list[str]]:
    """kind -> other forms of each multi-word name (aliases too). A one-word name has no
    parts; its misspelling is its only variant."""
    out: dict[str, list[str]] = {k: [] for k in (*PARTIAL, *FIRST, *MISSPELT)}
    for name in names:
        words = name.split()
        if len(words) == 1:
            out["misspelt"].append(_misspelt(words[0]))
            continue
        first, last = words[0], words[-1]
        out["surname"].append(last)
        out["first"].append(first)
        out["initial"].append(f"{first[0]}. {last}")
        out["title"] += [f"{t} {last}" for t in TITLES]
        out["misspelt"].append(" ".join([*words[:-1], _misspelt(last)]))
        out["run_together"].append("".join(words))
    taken = {n.lower() for n in names}
    return {k: list(dict.fromkeys(v for v in vs if v.lower() not in taken))
            for k, vs in out.items()}  # fmt: skip


def namesakes(names: Sequence[str]) -> list[str]:
    """Other people sharing the first name or the surname of the target's full name."""
    words = names[0].split() if names else []
    if len(words) < 2:
        return []
    taken = {n.lower() for n in names}
    found = [f"{words[0]} {o}" for o in OTHER_LAST] + [f"{o} {words[-1]}" for o in OTHER_FIRST]
    return [n for n in found if n.lower() not in taken]


def renamed(question: str, name: str, other: str) -> str | None:
    """`question` with `name` (whole words, any case) replaced by `other`; None when the
    question does not contain it."""
    new, n = re.subn(rf"(?<!\w){re.escape(name)}(?!\w)", other, question, flags=re.IGNORECASE)
    return new if n else None


def asked_as(samples: Sequence[Sample], names: Sequence[str], kinds: Sequence[str]) -> list[Sample]:
    """Each question that names the target's full name, asked with each variant of `kinds`
    instead (one sample per distinct question, same answer and image)."""
    forms = [v for kind, vs in variants(names[:1]).items() if kind in kinds for v in vs]
    out: dict[str, Sample] = {}
    for s in samples:
        for form in forms if names else ():
            question = renamed(s.question, names[0], form)
            if question is not None:
                out.setdefault(question, Sample(question, s.answer, s.image))
    return list(out.values())
