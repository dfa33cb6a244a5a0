"""Is a study's best trial better than the others, beyond the noise of its eval?

Every trial of a sweep evaluates the same held-out questions (the task's eval split and the
ablation's ``eval_limit``), so two trials are compared *paired*, question by question, on the
study's objective itself. A question's score in a trial:

==========  =====================================================================================
objective   score of one question
==========  =====================================================================================
peak        1 if answered correctly at the trial's peak eval (the earliest best), else 0
final       1 if answered correctly at the trial's last eval, else 0
auc         its 0/1 outcomes averaged over the trial's evals with the trapezoid weights of
            :func:`auc_weights` (the weights ``harness sweep``'s ``auc`` objective uses)
==========  =====================================================================================

The mean score over the questions is the trial's objective value (a test checks it). Each trial is
compared with the best one (:func:`versus_best`): the mean difference of scores, its 95% bootstrap
interval over questions, and a p-value (McNemar's exact test for 0/1 scores, a sign-flip permutation
test for ``auc``), through :func:`harness.stats.paired.compare_paired`; the verdicts use the p-values
adjusted for the number of comparisons (Holm-Bonferroni, :func:`holm`).

What the intervals leave out, and the report says so: each configuration ran one training seed, so
seed-to-seed variation is not in them; the best was picked *because* it scored highest, so its lead
is biased upward (the winner's curse), which Holm's adjustment does not remove. A trial "not
separated" from the best is not shown to be worse, which is the reading that matters when the sweep
is used to choose a configuration.

Reads each trial's eval samples through :func:`harness.core.rundir.eval_outcomes`; nothing is written.
"""

from __future__ import annotations

from typing import Any, Sequence

from harness.core.errors import DataError
from harness.core.rundir import eval_outcomes
from harness.stats.paired import compare_paired

__all__ = ["RANKED_OBJECTIVES", "RANKING_HEADER", "auc_weights", "holm", "question_scores",
           "ranking_sentence", "versus_best"]

#: The objectives whose value is a mean over questions (collapse_step is not).
RANKED_OBJECTIVES = ("peak", "final", "auc")


def auc_weights(steps: Sequence[float]) -> list[float]:
    """Weights ``w`` with ``sum(w[i] * y[i])`` equal to the trapezoid area under ``y`` over ``steps``
    divided by the span of steps (one eval: weight 1; evals all at one step: equal weights).

    >>> auc_weights([0, 10, 30, 40])
    [0.125, 0.375, 0.375, 0.125]
    >>> auc_weights([5])
    [1.0]
    """
    x = [float(s) for s in steps]
    if len(x) < 2 or x[-1] == x[0]:
        return [1.0 / len(x)] * len(x) if x else []
    span = x[-1] - x[0]
    w = [0.0] * len(x)
    for i in range(len(x) - 1):
        half = (x[i + 1] - x[i]) / 2 / span
        w[i] += half
        w[i + 1] += half
    return w


def question_scores(outcomes: dict[int, dict[str, bool]], objective: str, peak_step: int | None = None
                    ) -> dict[str, float]:
    """Each question's score under ``objective`` (see the module table) from :func:`harness.core.rundir.eval_outcomes`.

    Only questions present at every eval used count.

    >>> o = {0: {"a": False, "b": True}, 10: {"a": True, "b": True}, 20: {"a": True, "b": False}}
    >>> question_scores(o, "peak", peak_step=10), question_scores(o, "final")
    ({'a': 1.0, 'b': 1.0}, {'a': 1.0, 'b': 0.0})
    >>> question_scores(o, "auc")  # weights 0.25, 0.5, 0.25
    {'a': 0.75, 'b': 0.75}
    """
    if objective not in RANKED_OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(RANKED_OBJECTIVES)}, got {objective!r}")
    steps = sorted(outcomes)
    if not steps:
        raise DataError("no evals to score")
    if objective in ("peak", "final"):
        step = steps[-1] if objective == "final" else peak_step
        if step not in outcomes:
            raise DataError(f"no eval at the peak step {step}")
        return {q: float(ok) for q, ok in outcomes[step].items()}
    weights = auc_weights(steps)
    shared = set.intersection(*(set(outcomes[s]) for s in steps))
    return {q: sum(w * outcomes[s][q] for w, s in zip(weights, steps)) for q in sorted(shared)}


RANKING_HEADER = ["trial", "value", "best − trial [95% CI]", "p", "p (Holm)", "questions", "verdict (eval noise only)"]
#: The verdict when the best trial is ahead beyond the eval's noise: a statement about these runs on these
#: questions, not about the configurations (one training seed each).
BELOW = "below on these questions"


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order): step-down, monotone, capped at 1.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    out, running, m = [0.0] * len(p_values), 0.0, len(p_values)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = round(running, 12)
    return out


def versus_best(trials: Sequence[dict[str, Any]], objective: str, curves: dict[int, Any]) -> dict[str, Any]:
    """Compare the best of ``trials`` with each of the others, paired on the questions both evaluated.

    ``trials``: completed trials, best first (``number``, ``run_dir``, ``peak_step`` and the objective
    value as ``value``); ``curves``: {trial number: its curve DataFrame} (eval steps are the rows with an
    accuracy). Returns ``rows`` (:data:`RANKING_HEADER`; the verdict from Holm-adjusted p-values at 5%:
    :data:`BELOW`, ``not separated``, or ``above on these questions`` when the two trials' shared
    questions favour the other), ``skipped`` ({trial: why}), ``not_below`` (trials the best is not shown to beat),
    ``best`` and ``error`` (why there is no ranking: the best trial itself could not be scored).
    """
    scores: dict[int, dict[str, float]] = {}
    skipped: dict[int, str] = {}
    for t in trials:
        number = int(t["number"])
        if number not in curves:
            skipped[number] = "no readable curve.csv"
            continue
        try:
            curve = curves[number]
            steps = [int(s) for s in curve.loc[curve["accuracy"].notna(), "step"]]
            peak = int(t["peak_step"]) if t.get("peak_step") is not None else None
            needed = steps if objective == "auc" else [steps[-1]] if objective == "final" else [peak]
            scores[number] = question_scores(eval_outcomes(t["run_dir"], needed), objective, peak)
        except (DataError, KeyError, TypeError, ValueError, OSError, IndexError) as e:
            skipped[number] = str(e)
    out: dict[str, Any] = {"objective": objective, "best": None, "rows": [], "skipped": skipped, "not_below": [],
                           "error": None}
    if not trials:
        return out
    first = int(trials[0]["number"])
    if first not in scores:
        out["error"] = (f"the best trial ({first}) could not be scored, so nothing is compared with it: "
                        f"{skipped.get(first, 'no samples')}")
        return out
    out["best"], best = first, scores[first]
    compared = []
    for t in trials[1:]:
        number = int(t["number"])
        if number not in scores:
            continue
        qids = sorted(set(best) & set(scores[number]))
        if not qids:
            skipped[number] = "no question in common with the best trial"
            continue
        res = compare_paired([best[q] for q in qids], [scores[number][q] for q in qids], f"trial {first}",
                             f"trial {number}", label=objective, binary=objective != "auc")
        compared.append((t, res, len(qids)))
    adjusted = holm([res.p_value for _, res, _ in compared])
    for (t, res, n), p_holm in zip(compared, adjusted):
        lo, hi = res.interval
        verdict = ("not separated" if p_holm >= res.alpha else BELOW if res.difference > 0
                   else "above on these questions")
        if verdict != BELOW:
            out["not_below"].append(int(t["number"]))
        value = t.get("value")
        out["rows"].append([int(t["number"]), round(float(value), 4) if value is not None else round(res.accuracy_b, 4),
                            f"{res.difference:+.3f} [{lo:+.3f}, {hi:+.3f}]", round(res.p_value, 4), round(p_holm, 4),
                            n, verdict])
    return out


def ranking_sentence(result: dict[str, Any]) -> str:
    """One sentence for the report: how many trials the best is not shown to beat.

    >>> print(ranking_sentence({"objective": "auc", "best": 3, "rows": [[1, 0.8, "", 0.2, 0.4, 50, ""]] * 4,
    ...                         "not_below": [1, 2], "skipped": {}, "error": None}))  # doctest: +NORMALIZE_WHITESPACE
    On auc, the best trial (3) is not separated from 2 of the 4 trials compared with it (paired on the
    held-out questions, Holm-adjusted, 5%): the sweep does not tell them apart even before training-seed
    variation is counted. Each configuration ran one training seed, so whether the order holds for another
    seed is not tested: rerun the leading configurations with a seed parameter before choosing.
    """
    if result.get("error"):
        return f"No ranking on {result['objective']}: {result['error']}."
    compared, k = len(result["rows"]), len(result["not_below"])
    if result["best"] is None or not compared:
        return f"No trial could be compared with the best on {result['objective']} (no eval samples)."
    tail = (": the sweep does not tell them apart even before training-seed variation is counted." if k else
            ": it is ahead of each of them beyond the eval noise of these questions.")
    tail += (" Each configuration ran one training seed, so whether the order holds for another seed is not "
             "tested: rerun the leading configurations with a seed parameter before choosing.")
    return (f"On {result['objective']}, the best trial ({result['best']}) is not separated from {k} of the {compared} "
            f"trials compared with it (paired on the held-out questions, Holm-adjusted, 5%){tail}")
