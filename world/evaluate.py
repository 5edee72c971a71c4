"""Quality figures of a model on a world, through the model-family interface only.

Free-form answers come from `fam.generate` (greedy) and are scored by normalised exact
match; multiple choice picks the option with the highest answer log-likelihood.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from unlearnd.evaluation import metrics
from unlearnd.evaluation.candidate import answers
from unlearnd.models.base import ModelFamily, Sample
from unlearnd.world.dataset import QAItem, World

# The quality bar of the world model (issue 3), as fractions.
QUALITY_BAR = {"seen_qa": 0.95, "unseen_qa": 0.85, "textual_qa": 0.95, "general": 0.90}
FREE_FORM = ("seen_qa", "unseen_qa", "textual_qa", "general", "paraphrase_qa", "cloze")
MAX_NEW_TOKENS = 8  # the longest answer: "<first> <last> works as a <job>"


def generate_answers(
    fam: ModelFamily, world: World, items: Sequence[QAItem], batch_size: int = 64
) -> list[str]:
    """Greedy answers to the items' questions (see evaluation.candidate.answers)."""
    samples = [world.sample(it) for it in items]
    return answers(fam, samples, batch_size=batch_size, max_new_tokens=MAX_NEW_TOKENS)


def option_scores(
    fam: ModelFamily, world: World, items: Sequence[QAItem], batch_size: int = 64
) -> list[list[float]]:
    """Summed answer log-probability of every option of every multiple-choice item."""
    flat = [(n, Sample(it.question, opt)) for n, it in enumerate(items) for opt in it.options]
    scores: list[list[float]] = [[] for _ in items]
    for start in range(0, len(flat), batch_size):
        chunk = flat[start : start + batch_size]
        logp, mask = fam.answer_logprobs([s for _, s in chunk])
        for (n, _), value in zip(chunk, (logp * mask).sum(-1).tolist(), strict=True):
            scores[n].append(value)
    return scores


def evaluate(
    fam: ModelFamily,
    world: World,
    pids: Sequence[int] | None = None,
    kinds: Sequence[str] = (*FREE_FORM, "multiple_choice"),
    progress: Callable[[str], None] | None = None,
    max_scenes: int | None = None,
) -> dict:
    """Figures (fractions 0..1) for each question set in `kinds`, plus `meets_bar`.

    `pids` restricts the people questions to those people (default: everyone); the general
    split always uses the world's held-out scenes (the first `max_scenes` of them if given).
    """
    was_training = fam.model.training
    fam.model.eval()
    result: dict = {}
    try:
        for kind in kinds:
            if progress:
                progress(kind)
            if kind == "general" and max_scenes is not None:
                items = world.general_items(world.eval_scene_indices()[:max_scenes])
            else:
                items = world.items(kind, pids)
            refs = [it.answer for it in items]
            if kind == "multiple_choice":
                gold = [it.options.index(it.answer) for it in items]
                result[kind] = metrics.multiple_choice_accuracy(
                    option_scores(fam, world, items), gold
                )
                continue
            answers = generate_answers(fam, world, items)
            if kind == "cloze":
                result[kind] = metrics.cloze_accuracy(answers, refs)
            else:
                result[kind] = metrics.exact_match_rate(answers, refs)
            if kind == "textual_qa":
                result["textual_rouge_l"] = metrics.mean_rouge_l(answers, refs)
    finally:
        fam.model.train(was_training)
    result["meets_bar"] = all(result.get(k, 0.0) >= v for k, v in QUALITY_BAR.items())
    return result
