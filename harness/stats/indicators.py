"""Do the leading indicators of :data:`harness.stats.curves.INDICATORS` warn of a collapse early?

For a set of runs, each with its collapse step (None: it never collapsed) and eval interval:

==================  ========================================================================
outcome             definition (onset: :func:`harness.stats.curves.indicator_onsets`)
==================  ========================================================================
warned early        collapsing run, onset at least one eval interval before the collapse step
false warning       non-collapsing run, any onset
chance              the same two rates for an indicator that carries no information: its series
                    replaced by noise with the scale and lag-1 autocorrelation it shows on real
                    runs (:func:`fit_null`), on the synthetic curves of :mod:`harness.stats.synthetic`
==================  ========================================================================

An indicator *beats chance* when its warned-early share on real runs is significantly above its
chance share (one-sided exact binomial test) without a higher false-warning rate. The synthetic set
cannot say whether an indicator leads (any lead planted there would be the modeller's assumption):
it only gives the chance rates. Pure: numpy, pandas (scipy for the binomial test).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from harness.stats.curves import INDICATORS, indicator_onsets, indicator_series

__all__ = ["NullModel", "RunCase", "combined_rates", "fit_null", "indicator_rates", "lead_times", "null_curve",
           "verdicts"]

#: Indicators computed from the held-out evaluation (logged at eval steps only); the others are
#: training statistics logged every step.
EVAL_ONLY = ("searches_per_episode", "format_validity")


@dataclass(frozen=True)
class RunCase:
    """A run to score: its curve, its collapse step (None: never collapsed) and its eval interval."""

    name: str
    curve: pd.DataFrame
    peak_step: float
    collapse_step: float | None
    interval: float


def outcome(onset: float | None, case: RunCase) -> str:
    """``early`` / ``late`` / ``none`` for a collapsing run; ``false`` / ``quiet`` for the others.

    >>> c = RunCase("x", pd.DataFrame(), 0, 40, 10)
    >>> outcome(30, c), outcome(35, c), outcome(None, c)
    ('early', 'late', 'none')
    """
    if case.collapse_step is None:
        return "quiet" if onset is None else "false"
    if onset is None:
        return "none"
    return "early" if onset <= case.collapse_step - case.interval else "late"


def _tally(row: dict[str, Any], case: RunCase, onset: float | None) -> str:
    """Count one run's outcome for a rule whose onset is ``onset`` into ``row``; returns the outcome."""
    o = outcome(onset, case)
    if case.collapse_step is None:
        row["non_collapsing"] += 1
        row["false_warnings"] += o == "false"
    else:
        row["collapsing"] += 1
        row["warned_early"] += o == "early"
        row["warnable"] += warnable(case)
    return o


def _new_row(**extra: Any) -> dict[str, Any]:
    return {**extra, "collapsing": 0, "warned_early": 0, "non_collapsing": 0, "false_warnings": 0, "warnable": 0}


def _with_rates(row: dict[str, Any]) -> dict[str, Any]:
    row["warned_early_rate"] = row["warned_early"] / row["collapsing"] if row["collapsing"] else None
    row["false_warning_rate"] = row["false_warnings"] / row["non_collapsing"] if row["non_collapsing"] else None
    return row


def indicator_rates(cases: Iterable[RunCase], m: int = 2) -> dict[str, dict[str, Any]]:
    """Per indicator: collapsing runs, how many it warned early; non-collapsing runs, how many it warned."""
    out: dict[str, dict[str, Any]] = {}
    for case in cases:
        onsets = indicator_onsets(case.curve, case.peak_step, case.collapse_step, m)
        for name, info in onsets.items():
            row = out.setdefault(name, _new_row(runs={}))
            o = _tally(row, case, info["onset_step"])
            row["runs"][case.name] = {"outcome": o, "onset_step": info["onset_step"], "lead": info["lead_time"]}
    return {name: _with_rates(row) for name, row in out.items()}


def warnable(case: RunCase) -> bool:
    """Could any indicator warn of this collapse one eval interval early? Onsets come after the peak, so
    not when the collapse is the first eval after the peak (e.g. a learning rate that breaks the policy
    at once).

    >>> warnable(RunCase("x", pd.DataFrame(), 0, 5, 5)), warnable(RunCase("x", pd.DataFrame(), 0, 10, 5))
    (False, True)
    """
    return case.collapse_step is not None and case.collapse_step - case.interval > case.peak_step


def lead_times(rates: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per indicator: the lead times (collapse step - onset step) of the collapses it warned of early,
    with their median and range (None when it warned of none)."""
    out = {}
    for name, row in rates.items():
        leads = sorted(float(r["lead"]) for r in row.get("runs", {}).values()
                       if r["outcome"] == "early" and r["lead"] is not None)
        out[name] = {"leads": leads, "median": statistics.median(leads) if leads else None,
                     "min": leads[0] if leads else None, "max": leads[-1] if leads else None}
    return out


def combined_rates(cases: Sequence[RunCase], names: Sequence[str], m: int = 2,
                   onsets: Sequence[dict[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    """The rule "warn when any of ``names`` fires" (onset: the earliest of theirs): warned-early share on
    collapsing runs, false-warning rate on the others, as :func:`indicator_rates` counts them.
    ``onsets``: each case's :func:`indicator_onsets`, when already computed."""
    if onsets is None:
        onsets = [indicator_onsets(c.curve, c.peak_step, c.collapse_step, m) for c in cases]
    row = _new_row(indicators=list(names))
    for case, found in zip(cases, onsets):
        steps = [found[n]["onset_step"] for n in names if n in found and found[n]["onset_step"] is not None]
        _tally(row, case, min(steps) if steps else None)
    return _with_rates(row)


def best_combinations(cases: Sequence[RunCase], names: Sequence[str], m: int = 2, size: int = 2,
                      goal: tuple[float, float] = (0.8, 0.2)) -> list[dict[str, Any]]:
    """Every "any of" rule over up to ``size`` indicators, sorted by warned-early share minus false-warning
    rate; ``meets_goal``: at least ``goal[0]`` warned early with at most ``goal[1]`` false warnings."""
    import itertools

    onsets = [indicator_onsets(c.curve, c.peak_step, c.collapse_step, m) for c in cases]  # once, not per rule
    rows = []
    for k in range(1, size + 1):
        for combo in itertools.combinations(names, k):
            r = combined_rates(cases, combo, m, onsets)
            early, false = r["warned_early_rate"], r["false_warning_rate"]
            r["meets_goal"] = early is not None and early >= goal[0] and (false is None or false <= goal[1])
            rows.append(r)
    rows.sort(key=lambda r: -((r["warned_early_rate"] or 0) - (r["false_warning_rate"] or 0)))
    return rows


# ----------------------------------------------------------------------------- the null (chance) model


@dataclass(frozen=True)
class NullModel:
    """Stationary AR(1) noise with an indicator's mean, standard deviation and lag-1 autocorrelation."""

    mean: float
    sd: float
    rho: float
    low: float
    high: float
    every_step: bool

    def sample(self, rng: np.random.Generator, length: int) -> np.ndarray:
        """``length`` values of the stationary process, clipped to the observed range."""
        from scipy.signal import lfilter

        eps = rng.normal(0.0, self.sd * np.sqrt(max(1 - self.rho**2, 1e-9)), length)
        eps[0] = rng.normal(0.0, self.sd)  # start in the stationary distribution
        x = lfilter([1.0], [1.0, -self.rho], eps, zi=[0.0])[0] if length else eps
        return np.clip(self.mean + x, self.low, self.high)


def fit_null(curves: Sequence[pd.DataFrame]) -> dict[str, NullModel]:
    """Each logged indicator's scale and autocorrelation on real runs (after step 0), pooled over runs.

    Bounds: every value stays within the range observed. Indicators logged in fewer than two runs,
    or constant, are left out.
    """
    models: dict[str, NullModel] = {}
    for ind in INDICATORS:
        series = [s for c in curves if (s := indicator_series(c, ind)) is not None]
        series = [s[s.index > 0].to_numpy(dtype=float) for s in series]
        series = [s for s in series if len(s) >= 3]
        if len(series) < 2:
            continue
        values = np.concatenate(series)
        sd = float(values.std())
        if not sd > 0:
            continue
        rhos = [np.corrcoef(s[:-1], s[1:])[0, 1] for s in series if s.std() > 0 and s[:-1].std() > 0
                and s[1:].std() > 0]
        rho = float(np.clip(np.nanmean(rhos), -0.95, 0.95)) if rhos else 0.0
        models[ind.name] = NullModel(float(values.mean()), sd, rho, float(values.min()), float(values.max()),
                                     ind.name not in EVAL_ONLY)
    return models


def null_curve(rng: np.random.Generator, steps: np.ndarray, accuracy: np.ndarray,
               models: dict[str, NullModel]) -> pd.DataFrame:
    """A curve with the synthetic accuracy at its eval steps and null indicator series beside it."""
    every = np.arange(int(steps[-1]) + 1)
    acc = pd.Series(accuracy, index=steps).reindex(every).to_numpy()
    frame = {"step": every, "accuracy": acc}
    for name, model in models.items():
        column = next(i.column for i in INDICATORS if i.name == name)
        if model.every_step:
            frame[column] = model.sample(rng, len(every))
        else:
            values = np.full(len(every), np.nan)
            values[steps.astype(int)] = model.sample(rng, len(steps))
            frame[column] = values
    return pd.DataFrame(frame)


def verdicts(real: dict[str, dict[str, Any]], chance: dict[str, dict[str, Any]],
             alpha: float = 0.05) -> dict[str, dict[str, Any]]:
    """For each indicator: does its real warned-early share beat its chance share (one-sided exact
    binomial test), without more false warnings than chance? ``keep`` or ``demote``, with the reason."""
    from scipy.stats import binomtest

    out = {}
    for name, r in real.items():
        c = chance.get(name)
        if c is None or not r["collapsing"] or c["warned_early_rate"] is None:
            out[name] = {"verdict": "demote", "p_value": None, "reason": "no chance rate or no collapsing run"}
            continue
        p0 = min(max(c["warned_early_rate"], 1e-6), 1 - 1e-6)
        p = float(binomtest(r["warned_early"], r["collapsing"], p0, alternative="greater").pvalue)
        more_false = (r["false_warning_rate"] is not None and c["false_warning_rate"] is not None
                      and r["false_warning_rate"] > c["false_warning_rate"])
        keep = p < alpha and not more_false
        reason = (f"warned early {r['warned_early']}/{r['collapsing']} vs chance {c['warned_early_rate']:.2f} "
                  f"(p = {p:.3f})" + ("; more false warnings than chance" if more_false else ""))
        out[name] = {"verdict": "keep" if keep else "demote", "p_value": p, "reason": reason}
    return out
