"""Unlearning methods on the world model: one split, each method's params, one scoring.

Shared by tests/test_methods_world.py and bench/methods_bench.py, so the benchmark table and
the matrix test measure the same thing.

Split (from the world's own forget / retain people): D_f = the seen-portrait questions about
the first `n_forget` forget people (each category on one of the six seen portraits: every
seen portrait is trained on); forgetting is scored on the same questions on their two unseen
portraits, which neither the world model nor any method trained on, and on their facts asked
by name; D_r = the seen-portrait questions about the first 100 retain people; the retain score
uses 15 other retain people (never trained on) and the general score 20 held-out scenes.
Forget counts an answer as a leak when it still contains the fact (the name, city, job, ...),
so naming the wrong person but keeping the city still leaks; retain and general need the
whole answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from unlearnd.evaluation import behaviour, metrics
from unlearnd.evaluation.refusal_match import with_english
from unlearnd.models import ModelFamily, Sample
from unlearnd.world import World
from unlearnd.world import questions as q
from unlearnd.world.dataset import QAItem
from unlearnd.world.evaluate import generate_answers
from unlearnd.world.requests import WORLD_REFUSALS

# A description the world's closed vocabulary can say (it has no words for hair or clothes).
DESCRIPTION = "I see a person in this picture ."

# Each method's params on this split (3 forget people, seed 0), tuned so each forgets and
# keeps the rest; a LoRA on the FFNs only ("ffn") disturbs the other people least here.
# Measured (forget leak on unseen portraits / retain / general; base 1.0 / 1.0 / 0.99) in the
# comments (bench/results/methods.json).
WORLD_PARAMS: dict[str, dict] = {
    "ga": {"lr": 2e-3, "steps": 25, "target": "ffn", "lora_rank": 4, "nll_cap": 5},  # 0/.87/.99
    "cagul": {"lr": 3e-2, "steps": 100, "k": 6},  # .17 / .97 / .99 (6 of 9 tokens)
    "graddiff": {"lr": 3e-3, "steps": 30, "nll_cap": 5},  # 0 / .90 / .92
    "kl": {"lr": 2e-3, "steps": 30, "target": "ffn", "nll_cap": 5},  # 0 / .92 / .99
    "npo": {"lr": 7e-4, "steps": 60, "target": "ffn", "alpha": 3.0},  # 0 / .86 / .99
    "pubg": {"lr": 3e-3, "nll_cap": 5, "reference_answer": DESCRIPTION},  # 0 / .97 / .99
    # 0 / .83 / .89 (ungated, in place)
    "refuser": {"steps": 40, "lr": 5e-3, "lora_rank": 16, "lora_alpha": 32,
                "target": "blocks+projector", "refusals": WORLD_REFUSALS},
    "reject": {"lr": 3e-3, "steps": 30, "refusal": "I cannot identify this person ."},  # 0/.99/.98
    "vl_eraser": {"retain_tokens": "all", "threshold": 1e-3},  # 0 / .69 / .92
}  # fmt: skip


@dataclass
class Split:
    forget_train: list[QAItem]  # what a method trains on
    forget: list[QAItem]  # scored: the same people's portraits nothing trained on
    retain_train: list[Sample]
    retain: list[QAItem]
    general: list[QAItem]
    textual: list[QAItem]  # probe: the forget people's facts asked by name, no image

    def forget_samples(self, world: World) -> list[Sample]:
        return [world.sample(it) for it in self.forget_train]


def make_split(world: World, n_forget: int = 3) -> Split:
    forget_pids = world.forget_pids[:n_forget]
    return Split(
        forget_train=world.items("seen_qa", forget_pids),
        forget=world.items("unseen_qa", forget_pids),
        retain_train=world.samples("seen_qa", world.retain_pids[:100]),
        retain=world.items("seen_qa", world.retain_pids[100:115]),
        general=world.general_items(world.eval_scene_indices()[:20]),
        textual=world.items("textual_qa", forget_pids),
    )


def leak_rate(answers: list[str], items: list[QAItem]) -> float:
    """Share of answers that still contain the item's fact."""
    return metrics.answer_accuracy(answers, [it.fact for it in items])


def score(fam: ModelFamily, world: World, split: Split, probes: bool = False) -> dict:
    """forget (leak rate), retain and general accuracy; with `probes`, also the text-only leak
    rate and ROUGE-L of the forget answers against the originals."""
    sets = ("forget", "retain", "general", *(("textual",) if probes else ()))
    answers = {name: generate_answers(fam, world, getattr(split, name)) for name in sets}
    out = {
        "forget": leak_rate(answers["forget"], split.forget),
        "retain": metrics.answer_accuracy(answers["retain"], [it.answer for it in split.retain]),
        "general": metrics.answer_accuracy(answers["general"], [it.answer for it in split.general]),
    }
    if probes:
        refs = [it.answer for it in split.forget]
        out["forget_rouge_l"] = metrics.mean_rouge_l(answers["forget"], refs)
        out["textual_probe"] = leak_rate(answers["textual"], split.textual)
        out["examples"] = answers["forget"][:6]
        probed = [(a, it) for name in ("forget", "textual")
                  for a, it in zip(answers[name], getattr(split, name), strict=True)]  # fmt: skip
        out.update(behaviour_shares(world, probed))
    return out


def behaviour_shares(world: World, probed: list[tuple[str, QAItem]]) -> dict[str, float]:
    """Of the answers to the forget people's questions (unseen portraits, by name), the share
    refused / degenerate / hallucinated / informative (evaluation/behaviour.py); on the world
    another target's fact is any other person's name or fact."""
    forgotten = {it.pid for _, it in probed}

    def known(pids) -> list[Sample]:
        people = [world.people[pid] for pid in pids]
        return [Sample("", v, None, (v,)) for p in people for v in (p.name, *p.facts.values())]

    other = known(p.pid for p in world.people if p.pid not in forgotten)
    others = behaviour.Others.of(other, [None] * len(other), known(forgotten))
    classify = behaviour.Classifier(with_english(q.REFUSALS), others)
    kinds = [classify(a, metrics.answer_match(a, it.fact)) for a, it in probed]
    return behaviour.shares(kinds)
