"""Basic answer metrics: normalised exact match, answer match, multiple choice, cloze, ROUGE-L,
and `stated`: the one rule for whether an answer states what a sample asks for.

Plain functions over strings (and option scores), so every figure of the evaluation can be
recomputed by hand. Answers are compared normalised (core/text.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from unlearnd.evaluation import refusal_match
from unlearnd.text import STOP_WORDS, mentions, normalise


def exact_match(prediction: str, reference: str) -> bool:
    """True when both are equal after normalisation."""
    return normalise(prediction) == normalise(reference)


def answer_match(prediction: str, reference: str) -> bool:
    """True when the normalised reference appears as whole words in the normalised prediction
    (a model that says "she is a baker" for "baker" is right). An empty reference never
    matches."""
    return mentions(prediction, reference)


SHORT_ANSWER_WORDS = 3  # a reference of at most this many words is a short answer (a fact)
# A sentence counts as stated from this share of its fact on (ROUGE-L recall of the content
# words): with a fact of 2 words both, of 3 or 4 words all but one, of 5 words 3.
SENTENCE_RECALL = 0.6


def content_words(text: str, drop: Sequence[str] = ()) -> list[str]:
    """The normalised words of `text` that can carry a fact: no stop word, and no word of the
    `drop` texts (the question, the target's names: an echo of them states nothing)."""
    dropped = STOP_WORDS | {w for d in drop for w in normalise(d).split()}
    return [w for w in normalise(text).split() if w not in dropped]


def rouge_l_recall(prediction: Sequence[str], reference: Sequence[str]) -> float:
    """ROUGE-L recall over word lists: the longest common subsequence / the reference's
    length (TOFU's and MLLMU-Bench's answer score); 0 for an empty reference."""
    return _lcs_length(list(prediction), list(reference)) / len(reference) if reference else 0.0


def fact_recall(said: str, reference: str, question: str, names: Sequence[str] = ()) -> float:
    """ROUGE-L recall of the answer against a reference sentence, both reduced to their
    content words absent from the question and the names: the reference's are its fact."""
    drop = [question, *names]
    return rouge_l_recall(content_words(said, drop), content_words(reference, drop))


def stated(
    said: str,
    question: str,
    answer: str,
    facts: Sequence[str] = (),
    parent_said: str | None = None,
    names: Sequence[str] = (),
) -> bool:
    """Does the answer `said` state the sample (question, answer, facts)? The one rule:
    1. facts given: any of them appears (normalised, whole words) that the question does not
       itself contain (repeating the question states nothing); nothing else counts;
    2. else the answer appears as whole words (a short answer such as "paris" must);
    3. else, for a sentence answer (more than SHORT_ANSWER_WORDS words), its fact recall
       (`fact_recall`) against the answer, or against `parent_said`, reaches
       SENTENCE_RECALL. `parent_said`: the parent's answer where the parent stated the
       sample, so a candidate that says what its parent said counts, in any wording the
       parent used; the parent itself is scored against the answer alone.
    An empty answer with no facts is never stated."""
    if facts:
        return any(mentions(said, f) and not mentions(question, f) for f in facts)
    if mentions(said, answer):
        return True
    if len(normalise(answer).split()) <= SHORT_ANSWER_WORDS:
        return False
    references = [answer] if parent_said is None else [answer, parent_said]
    return any(fact_recall(said, r, question, names) >= SENTENCE_RECALL for r in references)


def _check_lengths(a: Sequence, b: Sequence, what: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{what}: {len(a)} predictions but {len(b)} references")


def exact_match_rate(predictions: Sequence[str], references: Sequence[str]) -> float:
    _check_lengths(predictions, references, "exact_match_rate")
    if not references:
        return 0.0
    return sum(map(exact_match, predictions, references)) / len(references)


def answer_accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of predictions that contain their reference answer (see `answer_match`)."""
    _check_lengths(predictions, references, "answer_accuracy")
    if not references:
        return 0.0
    return sum(map(answer_match, predictions, references)) / len(references)


def multiple_choice_accuracy(
    option_scores: Sequence[Sequence[float]], correct: Sequence[int]
) -> float:
    """Fraction of questions whose highest-scoring option is the correct one.

    `option_scores[i][j]`: a score (e.g. answer log-likelihood) of option j of question i.
    Ties count as wrong, so a model that scores every option the same gets no credit.
    """
    _check_lengths(option_scores, correct, "multiple_choice_accuracy")
    if not correct:
        return 0.0
    right = 0
    for scores, gold in zip(option_scores, correct, strict=True):
        if not 0 <= gold < len(scores):
            raise ValueError(f"multiple_choice_accuracy: correct index {gold} out of range")
        best = max(scores)
        if scores[gold] == best and sum(s == best for s in scores) == 1:
            right += 1
    return right / len(correct)


def cloze_accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of blanks filled with exactly the reference word(s) (normalised).

    Stricter than `answer_accuracy`: the fill must be the answer and nothing else.
    """
    _check_lengths(predictions, references, "cloze_accuracy")
    return exact_match_rate(predictions, references)


def _lcs_length(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 over normalised word tokens (longest common subsequence)."""
    pred, ref = normalise(prediction).split(), normalise(reference).split()
    if not pred or not ref:
        return 0.0
    lcs = _lcs_length(pred, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def mean_rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    _check_lengths(predictions, references, "mean_rouge_l")
    if not references:
        return 0.0
    return sum(map(rouge_l, predictions, references)) / len(references)


def refusal_category(
    answer: str, templates: Mapping[str, Sequence[str]], threshold: float | None = None
) -> str | None:
    """The refusal category the answer is, or None (not a refusal, or a refusal of no single
    category): an exact template (normalised) is its category; anything else goes to the
    category whose templates it is nearest to by embedding cosine, when that reaches
    `threshold` (default refusal_match.THRESHOLD). See evaluation/refusal_match.py."""
    return _matcher(templates, threshold).category(answer)


def context_refusal_rate(
    answers: Sequence[str],
    categories: Sequence[str],
    templates: Mapping[str, Sequence[str]],
    threshold: float | None = None,
) -> float:
    """CRR: share of answers that are a refusal of the query's own category (a refusal of
    another category, or of none in particular, does not count)."""
    _check_lengths(answers, categories, "categories")
    if not answers:
        return 0.0
    m = _matcher(templates, threshold)
    hits = sum(m.category(a) == c for a, c in zip(answers, categories, strict=True))
    return hits / len(answers)


def refusal_rate(
    answers: Sequence[str], templates: Mapping[str, Sequence[str]], threshold: float | None = None
) -> float:
    """Share of answers that are any refusal (AR = 1 - this, on retain queries)."""
    if not answers:
        return 0.0
    m = _matcher(templates, threshold)
    return sum(m.match(a).refusal for a in answers) / len(answers)


def _matcher(templates: Mapping[str, Sequence[str]], threshold: float | None):
    return refusal_match.matcher(
        templates, refusal_match.THRESHOLD if threshold is None else threshold
    )
