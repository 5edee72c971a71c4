"""The world's leak probes about given people, as samples whose answer is the bare fact (a
refusal or another person's fact does not contain it): what its deployment files hold per
person (world/deployment.py), and what tests and benchmarks ask directly."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from unlearnd.models.base import Sample
from unlearnd.world.dataset import QAItem, World

# Probe name -> the world's question set for it.
KINDS = {"text": "textual_qa", "unseen": "unseen_qa", "paraphrase": "paraphrase_qa",
         "cloze": "cloze"}  # fmt: skip
# What the world's deployment serves per person (the held-out paraphrases too, though the
# world model itself answers few of them: 0.18 on the base; a door the parent never answers
# is reported as not measurable).
SERVED = ("text", "unseen", "cloze", "paraphrase")


def fact_sample(world: World, item: QAItem) -> Sample:
    return Sample(item.question, item.fact, world.image(item.image) if item.image else None)


def probe_sets(
    world: World, pids: Iterable[int], probes: Sequence[str] = tuple(KINDS)
) -> dict[str, list[Sample]]:
    """{"leak_<probe>": samples} about the people `pids`."""
    pids = list(pids)
    out = {}
    for probe in probes:
        items = world.items(KINDS[probe], pids) if pids else []
        out[f"leak_{probe}"] = [fact_sample(world, it) for it in items]
    return out


def relearn_sets(world: World, pids: Iterable[int]) -> tuple[list[Sample], list[Sample]]:
    """(relearn on, measure on) for the people `pids`: the attacker trains on a deletion
    request's forget samples (world.forget_items) other than the seen_qa questions, whose
    facts are then measured (answers: the bare facts)."""
    pids = list(pids)
    measured = world.items("seen_qa", list(pids))
    train_on = [
        world.sample(it) for pid in pids for it in world.forget_items(pid) if it not in measured
    ]
    return train_on, [fact_sample(world, it) for it in measured]
