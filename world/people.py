"""Fictitious people: unique names, facts by category, and visible identity features.

Everything here is drawn from one `random.Random(seed)`, so the same seed always gives the
same people. First names and surnames are each unique across the world, so a single name
word already identifies a person (it keeps the memorisation task of the tiny model fair).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

# Fact categories. The category names are the concept categories a refusal is checked for.
FACT_VALUES: dict[str, tuple[str, ...]] = {
    "location": (
        "Varno", "Kelmora", "Ostrand", "Pellin", "Quarrow", "Brisk", "Talvik", "Merrow",
        "Dunholt", "Sarnia", "Elbrook", "Fennick", "Grausk", "Halden", "Irwick", "Jorvale",
    ),
    "occupation": (
        "baker", "pilot", "nurse", "farmer", "teacher", "painter", "doctor", "sailor",
        "tailor", "miner", "chef", "judge", "poet", "dentist", "florist", "plumber",
    ),
    "hobby": (
        "chess", "fishing", "hiking", "knitting", "archery", "rowing", "pottery", "surfing",
        "juggling", "cycling", "origami", "birding", "skating", "climbing", "gardening",
        "singing",
    ),
    "pet": (
        "cat", "dog", "parrot", "rabbit", "turtle", "hamster", "goldfish", "lizard",
        "ferret", "pony", "snake", "owl",
    ),
    "food": (
        "pasta", "soup", "curry", "sushi", "tacos", "dumplings", "salad", "pancakes",
        "noodles", "pizza", "stew", "porridge",
    ),
}  # fmt: skip
FACT_CATEGORIES = tuple(FACT_VALUES)
IDENTITY = "identity"  # the category of "who is this person?" (the answer is the name)

# Visible identity features of a portrait (see portraits.py for how each value is drawn).
FEATURE_VALUES: dict[str, tuple[str, ...]] = {
    "face": ("oval", "round", "square"),
    "skin": ("pale", "light", "tan", "brown", "dark"),
    "hair_colour": ("black", "brown", "blonde", "ginger", "grey", "blue"),
    "hair_style": ("bald", "short", "long", "bun", "spiky"),
    "eyes": ("brown", "blue", "green", "grey"),
    "glasses": ("none", "round", "square"),
    "hat": ("none", "cap", "beanie", "tophat"),
    "background": ("red", "green", "blue", "yellow", "purple", "orange", "teal"),
    "shirt": ("red", "green", "blue", "yellow", "purple", "orange", "teal"),
}
FEATURES = tuple(FEATURE_VALUES)
MIN_FEATURE_DISTANCE = 2  # any two people differ in at least this many visible features

_ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br",
           "dr", "gr", "kr", "tr", "st", "th", "sh", "ch")  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou")
_CODAS = ("", "n", "l", "r", "s", "m", "th", "nd", "rk", "st")
_SURNAME_ENDS = ("ford", "wick", "ton", "berg", "vale", "mere", "holt", "stone", "by", "croft")


@dataclass(frozen=True)
class Person:
    pid: int
    first: str
    last: str
    facts: dict[str, str]  # category -> value
    features: dict[str, str]  # visible feature -> value

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Person:
        return cls(
            pid=int(data["pid"]),
            first=data["first"],
            last=data["last"],
            facts=dict(data["facts"]),
            features=dict(data["features"]),
        )


def _syllable(rng: random.Random) -> str:
    return rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)


def _unique_words(rng: random.Random, n: int, make, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        word = make(rng).capitalize()
        if word.lower() not in taken and 3 <= len(word) <= 10:
            taken.add(word.lower())
            out.append(word)
    return out


def visible(features: dict[str, str]) -> dict[str, str]:
    """The features as a portrait shows them: a hat hides a bun or spiky hair (not its colour)."""
    out = dict(features)
    if out["hat"] != "none" and out["hair_style"] in ("bun", "spiky"):
        out["hair_style"] = "short"
    return out


def feature_distance(a: dict[str, str], b: dict[str, str]) -> int:
    """How many visible features tell two people apart."""
    va, vb = visible(a), visible(b)
    return sum(va[f] != vb[f] for f in FEATURES)


def _draw_features(rng: random.Random, n: int) -> list[dict[str, str]]:
    """n feature sets, pairwise at least MIN_FEATURE_DISTANCE apart (rejection sampling)."""
    chosen: list[dict[str, str]] = []
    while len(chosen) < n:
        cand = {f: rng.choice(vals) for f, vals in FEATURE_VALUES.items()}
        if all(feature_distance(cand, c) >= MIN_FEATURE_DISTANCE for c in chosen):
            chosen.append(cand)
    return chosen


def make_people(n: int, seed: int, reserved: set[str] = frozenset()) -> list[Person]:
    """`n` people with unique first and last names, facts and visible features.

    `reserved`: other words of the world's vocabulary that no name may equal.
    """
    if n < 1:
        raise ValueError(f"n_people must be >= 1, got {n}")
    rng = random.Random(f"people-{seed}")
    taken = {w.lower() for w in reserved}
    taken |= {v.lower() for vals in FACT_VALUES.values() for v in vals}
    taken |= {v.lower() for vals in FEATURE_VALUES.values() for v in vals}
    firsts = _unique_words(rng, n, lambda r: _syllable(r) + r.choice(_VOWELS[:5]), taken)
    lasts = _unique_words(rng, n, lambda r: _syllable(r) + r.choice(_SURNAME_ENDS), taken)
    features = _draw_features(rng, n)
    people = []
    for pid in range(n):
        facts = {cat: rng.choice(vals) for cat, vals in FACT_VALUES.items()}
        people.append(Person(pid, firsts[pid], lasts[pid], facts, features[pid]))
    return people


def split_people(people: list[Person], forget_fraction: float) -> tuple[list[int], list[int]]:
    """(forget-eligible pids, retain pids): the first fraction of people may be forgotten."""
    n_forget = max(1, round(len(people) * forget_fraction))
    pids = [p.pid for p in people]
    return pids[:n_forget], pids[n_forget:]
