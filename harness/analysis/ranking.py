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
test for ``auc``), through :func:`harness.analysis.stats.compare_paired`.

What the intervals leave out, and the report says so: each configuration ran one training seed, so
seed-to-seed variation is not in them; the best was picked *because* it scored highest, so its lead
is biased upward (the winner's curse); there is no correction for comparing it with several trials.
A trial "not significantly below the best" is therefore not shown to be worse, which is the reading
that matters when the sweep is used to choose a configuration.

Reads each trial's ``eval_samples/step_NNNNN.jsonl`` (``harness train``); nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from harness.analysis.stats import compare_paired
from harness.core.errors import DataError
from harness.core.results import read_jsonl

__all__ = ["RANKED_OBJECTIVES", "auc_weights", "eval_outcomes", "question_scores", "versus_best"]

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


def eval_outcomes(run_dir: str | Path, steps: Sequence[int]) -> dict[int, dict[str, bool]]:
    """{step: {question id: correct}} from a training run's ``eval_samples/`` for the given eval steps.

    A DataError names the missing file or the malformed row."""
    run = Path(run_dir)
    out: dict[int, dict[str, bool]] = {}
    for step in steps:
        path = run / "eval_samples" / f"step_{int(step):05d}.jsonl"
        if not path.is_file():
            raise DataError(f"{run}: no eval samples for step {int(step)} ({path.name} is missing)")
        rows = read_jsonl(path)
        if any("qid" not in r or "correct" not in r for r in rows):
            raise DataError(f"{path}: a row lacks 'qid' or 'correct'")
        out[int(step)] = {str(r["qid"]): bool(r["correct"]) for r in rows}
    return out


def question_scores(outcomes: dict[int, dict[str, bool]], objective: str, peak_step: int | None = None
                    ) -> dict[str, float]:
    """Each question's score under ``objective`` (see the module table) from :func:`eval_outcomes`.

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


RANKING_HEADER = ["trial", "value", "best − trial [95% CI]", "p", "questions", "verdict"]


def versus_best(trials: Sequence[dict[str, Any]], objective: str, curves: dict[int, Any]) -> dict[str, Any]:
    """Compare the best of ``trials`` with each of the others, paired on the questions both evaluated.

    ``trials``: completed trials, best first (``number``, ``run_dir``, ``peak_step``); ``curves``:
    {trial number: its curve DataFrame} (eval steps are the rows with an accuracy). Returns ``rows``
    (:data:`RANKING_HEADER`), ``skipped`` ({trial: why}), ``not_below`` (trials not significantly below
    the best) and ``best``. A trial whose samples are missing is skipped, not fatal.
    """
    scores: dict[int, dict[str, float]] = {}
    skipped: dict[int, str] = {}
    for t in trials:
        number = int(t["number"])
        try:
            curve = curves[number]
            steps = [int(s) for s in curve.loc[curve["accuracy"].notna(), "step"]]
            peak = t.get("peak_step")
            outcomes = eval_outcomes(t["run_dir"], steps)
            scores[number] = question_scores(outcomes, objective, int(peak) if peak is not None else None)
        except (DataError, KeyError, TypeError, ValueError, OSError) as e:
            skipped[number] = str(e)
    ranked = [int(t["number"]) for t in trials if int(t["number"]) in scores]
    out: dict[str, Any] = {"objective": objective, "best": ranked[0] if ranked else None, "rows": [],
                           "skipped": skipped, "not_below": []}
    if not ranked:
        return out
    best = scores[ranked[0]]
    binary = objective != "auc"
    for number in ranked[1:]:
        other = scores[number]
        qids = sorted(set(best) & set(other))
        if not qids:
            skipped[number] = "no question in common with the best trial"
            continue
        res = compare_paired([best[q] for q in qids], [other[q] for q in qids], f"trial {ranked[0]}",
                             f"trial {number}", label=objective, binary=binary)
        lo, hi = res.interval
        verdict = "significantly below" if res.significant and res.difference > 0 else "not significantly below"
        if verdict == "not significantly below":
            out["not_below"].append(number)
        out["rows"].append([number, round(res.accuracy_b, 4), f"{res.difference:+.3f} [{lo:+.3f}, {hi:+.3f}]",
                            round(res.p_value, 4), len(qids), verdict])
    return out


def ranking_sentence(result: dict[str, Any]) -> str:
    """One sentence for the report: how many trials the best is not shown to beat.

    >>> ranking_sentence({"objective": "auc", "best": 3, "rows": [[1, 0.8, "", 0.2, 50, ""]] * 4,
    ...                   "not_below": [1, 2], "skipped": {}})
    'On auc, 2 of the 4 trials compared with the best (trial 3) are not significantly below it (paired on the held-out questions, 5%): with one seed per configuration, the sweep does not separate them from the best.'
    """
    compared, k = len(result["rows"]), len(result["not_below"])
    if result["best"] is None or not compared:
        return f"No trial could be compared with the best on {result['objective']} (no eval samples)."
    tail = (": with one seed per configuration, the sweep does not separate them from the best." if k else
            ": the best is ahead of every one of them beyond the eval noise of these questions.")
    return (f"On {result['objective']}, {k} of the {compared} trials compared with the best (trial {result['best']}) "
            f"are not significantly below it (paired on the held-out questions, 5%){tail}")
