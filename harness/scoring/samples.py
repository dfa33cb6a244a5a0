"""K samples per question: avg@k, pass@k, maj@k, each question's success rate, and clustered intervals.

``harness run --samples K --temperature T`` (and ``harness train --eval-samples K --eval-temperature T``)
plays every question K times; a question's K episodes are a cluster, not K independent draws, so every
interval here resamples questions, never episodes.

==============  ======================================================================================
quantity        definition (n questions; question i has n_i samples, c_i of them correct)
==============  ======================================================================================
per_question    c_i / n_i, each question's success rate (what paired comparisons between runs use)
avg_at_k        sum_i c_i / sum_i n_i (the mean success rate; = ``accuracy`` of a K-sample run); 95%
                cluster-bootstrap interval (:func:`harness.stats.intervals.cluster_interval`)
pass_at_k       mean over questions of 1 - C(n_i - c_i, k) / C(n_i, k), the unbiased estimator of
                Chen et al. 2021 (arXiv 2107.03374), k = K: 1 when any sample is correct; 95% Wilson
                interval over the n questions (one value per question: independent)
maj_at_k        mean over questions of [the majority answer is correct]: answers are grouped by their
                normalised text (:func:`harness.scoring.normalize.normalize_answer`; a task whose gold
                answer differs between samples, as apollo3_micro re-draws its value per episode, groups
                every correct answer together); the largest group wins, ties to the group answered
                first; no answer never wins (a question none of whose samples answered is wrong); the
                question is correct when the winning group's episodes are; 95% Wilson interval over
                the n questions
==============  ======================================================================================

The retry-aware metrics of a K-sample run are computed over all K x n episodes
(:func:`harness.scoring.metrics.compute_metrics`), each with the same cluster-bootstrap interval
(``<metric>_ci_low`` / ``_ci_high``), from the per-question numerators and denominators of
:data:`harness.scoring.metrics.RATES`.
"""

from __future__ import annotations

from collections import Counter
from math import comb
from typing import Any, Callable, Iterable, Mapping

from harness.episode.record import Episode
from harness.scoring.normalize import normalize_answer
from harness.stats.intervals import cluster_interval, wilson

__all__ = ["by_question", "clustered_rates", "majority_correct", "pass_at_k", "sample_metrics", "samples_per_question"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate from ``n`` samples of which ``c`` are correct (Chen et al. 2021):
    ``1 - C(n - c, k) / C(n, k)``, the chance that k of the n samples drawn without replacement hold a
    correct one.

    >>> pass_at_k(4, 0, 4), pass_at_k(4, 1, 4), pass_at_k(4, 1, 1), round(pass_at_k(10, 3, 2), 4)
    (0.0, 1.0, 0.25, 0.5333)
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def by_question(episodes: Iterable[Episode]) -> dict[str, list[Episode]]:
    """Episodes grouped by question id, in order of first appearance (each group in sample order)."""
    out: dict[str, list[Episode]] = {}
    for ep in episodes:
        out.setdefault(ep.question.qid, []).append(ep)
    return {q: sorted(eps, key=lambda e: e.sample) for q, eps in out.items()}


def samples_per_question(episodes: Iterable[Episode]) -> int:
    """K: the most samples of a question (by their ``sample`` index; 1 for a one-sample run, 0 for none).
    Episodes that share a question but not a sample index (a hand-made list, a replayed log) are one
    sample each of a one-sample run."""
    counts = Counter(ep.question.qid for ep in episodes)
    if not counts:
        return 0
    return max(counts.values()) if any(ep.sample for ep in episodes) else 1


def majority_correct(episodes: list[Episode]) -> bool:
    """Whether the majority answer of one question's samples is correct (see the module table).

    >>> from harness.data.loading import Question
    >>> q = Question("q1", 0, "?", "noon", ("",), ())
    >>> def ep(answer, correct, i):
    ...     e = Episode.from_messages([{"role": "assistant", "content": f"<answer>{answer}</answer>"}], q)
    ...     e.judge, e.sample = {"correct": correct}, i
    ...     return e
    >>> majority_correct([ep("Noon.", True, 0), ep("dusk", False, 1), ep("noon", True, 2)])
    True
    >>> majority_correct([ep("dusk", False, 0), ep("noon", True, 1)])  # a tie goes to the first answered
    False
    """
    golds = {ep.question.answer for ep in episodes}
    groups: dict[str, list[Episode]] = {}
    for ep in episodes:
        if ep.answer is None:
            continue
        key = "\x00correct" if len(golds) > 1 and ep.correct else normalize_answer(ep.answer)
        groups.setdefault(key, []).append(ep)
    if not groups:
        return False
    winner = max(groups.values(), key=len)  # max keeps the first of equal groups: the one answered first
    return sum(ep.correct for ep in winner) * 2 > len(winner)


def sample_metrics(episodes: list[Episode]) -> dict[str, Any]:
    """avg@k, pass@k, maj@k with their intervals, ``k`` (most samples of a question), ``n_questions`` and
    ``per_question`` (each question's success rate) of one set of episodes (see the module table)."""
    groups = by_question(episodes)
    if not groups:
        return {}
    k = max(len(g) for g in groups.values())
    correct = [sum(ep.correct for ep in g) for g in groups.values()]
    sizes = [len(g) for g in groups.values()]
    n_q = len(groups)
    passes = [pass_at_k(n, c, n) for n, c in zip(sizes, correct)]
    majority = [majority_correct(g) for g in groups.values()]
    avg_ci = cluster_interval(correct, sizes)
    pass_ci = wilson(sum(passes), n_q)
    maj_ci = wilson(sum(majority), n_q)
    return {
        "k": k, "n_questions": n_q,
        "avg_at_k": sum(correct) / sum(sizes), "avg_at_k_ci_low": avg_ci[0], "avg_at_k_ci_high": avg_ci[1],
        "pass_at_k": sum(passes) / n_q, "pass_at_k_ci_low": pass_ci[0], "pass_at_k_ci_high": pass_ci[1],
        "maj_at_k": sum(majority) / n_q, "maj_at_k_ci_low": maj_ci[0], "maj_at_k_ci_high": maj_ci[1],
        "per_question": {q: c / n for q, c, n in zip(groups, correct, sizes)},
    }


#: A proportion over episodes as (denominator, numerator) counts of one episode.
Rate = tuple[Callable[[Episode], float], Callable[[Episode], float]]


def clustered_rates(episodes: list[Episode], rates: Mapping[str, Rate]) -> dict[str, float | None]:
    """``<name>_ci_low`` / ``_ci_high`` for each rate: its cluster-bootstrap interval over questions (None
    where no question has a trial)."""
    groups = list(by_question(episodes).values())
    out: dict[str, float | None] = {}
    for name, (den, num) in rates.items():
        ci = cluster_interval([sum(num(ep) for ep in g) for g in groups], [sum(den(ep) for ep in g) for g in groups])
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = ci if ci else (None, None)
    return out
