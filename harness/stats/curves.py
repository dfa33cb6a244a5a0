"""Peak, collapse and leading-indicator detection on training curves.

ReZero (arXiv 2504.11001) reports a peak followed by a collapse to 0% accuracy: 46.88% at step 250
then 0% by step 450 with the retry reward, 25.00% at step 350 then 0% by step 700 without. The
functions here find those points in a ``curve.csv`` so that reports and ablations agree on them.

A curve is a DataFrame with one row per logged step. Only ``step`` and ``accuracy`` are required;
``accuracy`` may be blank on rows that logged training statistics but ran no evaluation, and those
rows are ignored by the accuracy detectors ("eval steps" are the rows with an accuracy).

Each eval is a binomial draw: ``n`` (questions evaluated, a column ``harness train`` writes) lets
:func:`analyze` use the noise-aware detectors of :mod:`harness.stats.detect` (method
``binomial``). A curve without ``n`` (older runs, hand-made curves) gets ``n`` inferred when every
accuracy is a multiple of one ``1/d`` with 16 <= d <= 1000 (``n_source: inferred``; 15/32 gives 32),
else the exact-point rule below (method ``exact``: :func:`find_collapse`, delta and m), which treats
every eval as exact. Pass ``n=`` to state it.

Everything here is pure (no I/O: curves are read by :func:`harness.core.rundir.read_curve`) and
imports only numpy and pandas (scipy inside the binomial tests).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.stats.detect import DetectorConfig, EvalPoint, detect_offline
from harness.stats.intervals import wilson
from harness.stats.learning import learning_from_curve

__all__ = [
    "INDICATORS",
    "analyze",
    "eval_points",
    "find_collapse",
    "find_peak",
    "find_zero_step",
    "first_sustained",
    "indicator_onsets",
]

REQUIRED_COLUMNS = ("step", "accuracy")
#: Denominators tried when ``n`` must be inferred from the accuracies of an old curve.
INFER_N = (16, 1000)
REFERENCE_WINDOW = 3  # indicator reference: median of the last 3 values logged at or before the peak


def first_sustained(steps: Any, flags: Any, m: int) -> int | float | None:
    """First step whose flag starts a run of >= m consecutive True flags, or a run reaching the end.

    >>> first_sustained([10, 20, 30, 40, 50], [False, True, False, True, True], m=2)
    40
    >>> first_sustained([10, 20, 30], [False, False, True], m=2)  # the run reaches the end
    30
    >>> first_sustained([10, 20, 30], [True, False, False], m=2) is None
    True
    """
    steps = list(steps)
    flags = [bool(f) for f in flags]
    n = len(flags)
    run = 0
    start: int | None = None
    for i in range(n - 1, -1, -1):  # walk backwards, keeping the length of the True run starting at i
        run = run + 1 if flags[i] else 0
        if flags[i] and (run >= m or i + run == n):
            start = i
    return None if start is None else _scalar(steps[start])


def _eval_rows(curve: pd.DataFrame) -> pd.DataFrame:
    """Rows that carry an accuracy (eval steps), sorted by step."""
    if "step" not in curve.columns or "accuracy" not in curve.columns:
        raise ValueError("curve needs 'step' and 'accuracy' columns")
    rows = curve[curve["accuracy"].notna()].sort_values("step", kind="mergesort")
    if rows.empty:
        raise ValueError("curve has no evaluated steps (accuracy is empty)")
    return rows.reset_index(drop=True)


def _accuracy(rows: pd.DataFrame, smooth: int | None) -> pd.Series:
    """Accuracy of eval rows, optionally a centred rolling mean over ``smooth`` evals."""
    acc = rows["accuracy"].astype(float)
    if smooth and smooth > 1:
        acc = acc.rolling(smooth, center=True, min_periods=1).mean()
    return acc


def infer_n(accuracies: Any, low: int = INFER_N[0], high: int = INFER_N[1]) -> int | None:
    """The smallest ``d`` in ``[low, high]`` such that every accuracy is a multiple of ``1/d``, else None.

    It is a lower bound of the true ``n`` (an eval on 64 questions whose counts are all even reads as 32),
    so the detectors it feeds are, if anything, too cautious.

    >>> infer_n([15 / 32, 0.25, 0.0])
    32
    >>> infer_n([0.1, 0.4]) is None  # a multiple of 1/10 only: too coarse to be an eval size
    True
    """
    acc = np.asarray(list(accuracies), dtype=float)
    if acc.size == 0 or not np.isfinite(acc).all() or (acc < 0).any() or (acc > 1).any():
        return None
    for d in range(1, high + 1):
        x = acc * d
        if np.all(np.abs(x - np.round(x)) < 1e-6):
            return d if d >= low else None
    return None


def eval_points(curve: pd.DataFrame, n: int | None = None) -> tuple[list[EvalPoint] | None, str]:
    """The eval rows as binomial points and where their ``n`` came from.

    ``n`` given: every eval has that size (``argument``); else the ``n`` column when every eval row has
    one (``column``); else :func:`infer_n` (``inferred``); else ``(None, "unknown")``.

    >>> c = pd.DataFrame({"step": [0, 10], "accuracy": [0.25, 0.5], "n": [32, 32]})
    >>> points, source = eval_points(c)
    >>> points[1], source
    (EvalPoint(step=10, correct=16, n=32), 'column')
    """
    rows = _eval_rows(curve)
    steps, acc = rows["step"].tolist(), rows["accuracy"].astype(float).tolist()
    if n is not None:
        sizes, source = [n] * len(rows), "argument"
    elif "n" in rows.columns and rows["n"].notna().all() and (rows["n"] >= 1).all():
        sizes, source = [int(v) for v in rows["n"]], "column"
    else:
        inferred = infer_n(acc)
        if inferred is None:
            return None, "unknown"
        sizes, source = [inferred] * len(rows), "inferred"
    return [EvalPoint.from_accuracy(_scalar(s), a, int(k)) for s, a, k in zip(steps, acc, sizes)], source


def find_peak(curve: pd.DataFrame, smooth: int | None = None) -> dict[str, Any]:
    """Best accuracy and its step (the earliest step on ties).

    With ``smooth`` (a window in evals) the peak is taken on a centred rolling mean; ``accuracy``
    is then the smoothed value and ``raw_accuracy`` the logged one. Its interval is
    :func:`analyze`'s ``peak_interval`` (it needs the eval size).

    >>> c = pd.DataFrame({"step": [0, 50, 100, 150], "accuracy": [0.1, 0.4, 0.4, 0.2]})
    >>> find_peak(c)
    {'step': 50, 'accuracy': 0.4, 'raw_accuracy': 0.4}
    """
    rows = _eval_rows(curve)
    acc = _accuracy(rows, smooth)
    i = int(np.argmax(acc.to_numpy()))  # argmax returns the first maximum: the earliest step
    return {  # read cell by cell: a row Series would upcast the integer step to float
        "step": _scalar(rows["step"].iloc[i]),
        "accuracy": _scalar(acc.iloc[i]),
        "raw_accuracy": _scalar(rows["accuracy"].iloc[i]),
    }


def find_collapse(
    curve: pd.DataFrame, delta: float = 0.5, m: int = 2, smooth: int | None = None
) -> int | float | None:
    """First eval step after the peak where accuracy falls below ``(1 - delta) * peak`` and stays
    below for at least ``m`` consecutive evals, or until the end of the curve.

    Returns None when there is no such step, and when the peak is 0 (nothing to collapse from).
    With ``smooth`` both the peak and the fall are measured on the smoothed accuracy.

    >>> c = pd.DataFrame({"step": [0, 50, 100, 150, 200, 250],
    ...                   "accuracy": [0.2, 0.4, 0.1, 0.3, 0.1, 0.0]})
    >>> find_collapse(c)  # the dip at 100 recovers at 150, so it is noise; 200 falls for good
    200
    >>> find_collapse(c, m=1)
    100
    """
    _check_params(delta, m, smooth)
    rows = _eval_rows(curve)
    acc = _accuracy(rows, smooth)
    i = int(np.argmax(acc.to_numpy()))
    peak = float(acc.iloc[i])
    if not peak > 0:
        return None
    after = slice(i + 1, None)
    return first_sustained(rows["step"].iloc[after], acc.iloc[after] < (1 - delta) * peak, m)


def find_zero_step(curve: pd.DataFrame, tol: float = 1e-12) -> int | float | None:
    """First eval step of persistent zero accuracy (zero from there to the end), else None.

    Always uses the logged (unsmoothed) accuracy.

    >>> c = pd.DataFrame({"step": [0, 50, 100, 150], "accuracy": [0.0, 0.3, 0.0, 0.0]})
    >>> find_zero_step(c)
    100
    """
    rows = _eval_rows(curve)
    zero = (rows["accuracy"].abs() <= tol).to_numpy()
    if not zero[-1]:
        return None
    nonzero = np.flatnonzero(~zero)
    start = 0 if nonzero.size == 0 else int(nonzero[-1]) + 1
    return _scalar(rows["step"].iloc[start])


@dataclass(frozen=True)
class Indicator:
    """A leading indicator of collapse: a column whose value leaves a band around its reference.

    ``direction`` is "fall" (onset when value <= factor * ref) or "rise" (onset when value >=
    max(factor * ref, ref + floor); the floor keeps a zero reference from firing on any value).
    """

    name: str
    column: str
    direction: str
    factor: float
    floor: float = 0.0
    description: str = ""
    #: True when the indicator has not been shown to warn of collapse better than chance
    #: (``harness bench detect --runs``; docs/detection.md): still computed, never to be relied on.
    demoted: bool = False

    def rule(self, m: int) -> str:
        """The rule in words, as recorded in the analysis output."""
        if self.direction == "fall":
            test = f"{self.column} <= {self.factor:g} x ref"
        else:
            test = f"{self.column} >= max({self.factor:g} x ref, ref + {self.floor:g})"
        return (
            f"{self.description}: first logged step after the peak where {test} for {m} consecutive "
            f"logged values (or to the end); ref = median of the last {REFERENCE_WINDOW} values at or "
            "before the peak step"
        )

    def flags(self, values: pd.Series, ref: float) -> pd.Series:
        """True where the value is past the threshold."""
        if self.direction == "fall":
            return values <= self.factor * ref
        return values >= max(self.factor * ref, ref + self.floor)


#: Every indicator is demoted until real runs show it beats chance (docs/detection.md: on the micro
#: runs measured so far, none warned early significantly more often than the same rule on noise).
INDICATORS: tuple[Indicator, ...] = (
    Indicator("reward_std", "reward_std", "fall", 0.1,
              description="within-group reward std collapses to ~0 (no GRPO advantage signal)", demoted=True),
    Indicator("entropy", "entropy", "fall", 0.5, description="policy entropy halves", demoted=True),
    Indicator("kl", "kl", "rise", 3.0, floor=1e-3, description="KL to the reference spikes (x3)", demoted=True),
    Indicator("completion_length", "completion_length", "rise", 2.0, floor=1.0,
              description="completion length doubles", demoted=True),
    Indicator("searches_per_episode", "searches_per_episode", "rise", 2.0, floor=1.0,
              description="searches per episode double, at least +1 (retry hacking)", demoted=True),
    Indicator("format_validity", "format_validity", "fall", 0.8,
              description="format validity drops by 20%", demoted=True),
)


def indicator_series(curve: pd.DataFrame, indicator: Indicator) -> pd.Series | None:
    """The indicator's values indexed by step (NaN rows dropped), or None when not logged.

    ``reward_std`` falls back to the row mean of the per-component ``reward_<name>_std`` columns.
    """
    if indicator.column in curve.columns:
        values = pd.to_numeric(curve[indicator.column], errors="coerce")
    elif indicator.name == "reward_std":
        parts = [c for c in curve.columns if re.fullmatch(r"reward_.+_std", str(c))]
        if not parts:
            return None
        values = curve[parts].apply(pd.to_numeric, errors="coerce").mean(axis=1, skipna=True)
    else:
        return None
    series = pd.Series(values.to_numpy(), index=curve["step"].to_numpy()).dropna()
    return series.sort_index(kind="mergesort")


def indicator_onsets(
    curve: pd.DataFrame, peak_step: float, collapse_step: float | None, m: int = 2
) -> dict[str, dict[str, Any]]:
    """Onset step and lead time (collapse_step - onset_step) of each indicator the curve logs.

    Every rule compares a value to ``ref``, the median of the last three values logged at or before
    the peak (the first logged value if none), and fires at the first step after the peak where the
    value stays past the threshold for ``m`` consecutive logged values or to the end (see
    :data:`INDICATORS` and each entry's ``rule``). Missing columns are left out of the result.

    >>> c = pd.DataFrame({"step": [0, 50, 100, 150, 200, 250],
    ...                   "accuracy": [0.1, 0.4, 0.4, 0.3, 0.0, 0.0],
    ...                   "entropy": [2.0, 2.0, 0.5, 0.4, 0.3, 0.3]})
    >>> out = indicator_onsets(c, peak_step=50, collapse_step=200)
    >>> out["entropy"]["onset_step"], out["entropy"]["lead_time"]
    (100, 100)
    """
    out: dict[str, dict[str, Any]] = {}
    for indicator in INDICATORS:
        series = indicator_series(curve, indicator)
        if series is None:
            continue
        onset, ref = None, None
        if not series.empty:
            before = series[series.index <= peak_step]
            ref = float((before.iloc[-REFERENCE_WINDOW:] if len(before) else series.iloc[:1]).median())
            after = series[series.index > peak_step]
            onset = first_sustained(after.index, indicator.flags(after, ref), m)
        lead = None if onset is None or collapse_step is None else _scalar(collapse_step - onset)
        out[indicator.name] = {
            "onset_step": onset,
            "lead_time": lead,
            "reference": _scalar(ref),
            "rule": indicator.rule(m),
            "demoted": indicator.demoted,
        }
    return out


def analyze(
    curve: pd.DataFrame | str | Path, delta: float = 0.5, m: int = 2, smooth: int | None = None,
    n: int | None = None, mode: str = "offline", config: DetectorConfig | None = None, method: str = "auto",
) -> dict[str, Any]:
    """Peak, collapse, persistent-zero step, final accuracy and leading indicators of one curve (of its
    ``accuracy``: a training run's selection split), ``reported_at_peak``: the reported split's accuracy
    at the peak step when the curve records it (``test_accuracy``), and whether the run learned (``learning``:
    :func:`harness.stats.learning.learning_verdict` on the selection split; None when the eval size is unknown).

    With a known eval size (see :func:`eval_points`) and no ``smooth``, the peak comes with its Wilson
    interval, the steps tied with it and the pooled peak level, and the collapse is the noise-aware one
    of :mod:`harness.stats.detect` (``method: binomial``; collapse below ``(1 - delta)`` x the peak
    level, the fall confirmed over ``m`` evals offline). Otherwise the exact-point rule
    (``method: exact``). ``mode="offline"`` reports the collapse onset of the whole curve (a dip that
    recovers is not a collapse); ``mode="online"`` reports the step at which a run watching the curve
    would have stopped (``collapse_alarm_step`` is always there). ``method`` forces ``exact`` or
    ``binomial`` (the latter raises ValueError when no eval size is known). The result is JSON-serialisable.
    ``curve`` may also be a path accepted by :func:`harness.core.rundir.read_curve`.

    >>> c = pd.DataFrame({"step": [0, 50, 100, 150, 200], "accuracy": [0.1, 0.5, 0.2, 0.1, 0.0]})
    >>> r = analyze(c)  # accuracies in tenths: no eval size can be inferred, so the exact rule
    >>> r["method"], r["peak_step"], r["peak"], r["collapse_step"], r["zero_step"]
    ('exact', 50, 0.5, 100, 200)
    >>> r = analyze(c, n=100)
    >>> r["method"], r["collapse_step"], [round(x, 3) for x in r["peak_interval"]], r["tied_steps"]
    ('binomial', 100, [0.404, 0.596], [50])
    """
    if not isinstance(curve, pd.DataFrame):
        from harness.core.rundir import read_curve

        curve = read_curve(curve)
    _check_params(delta, m, smooth)
    if mode not in ("offline", "online"):
        raise ValueError(f"mode must be 'offline' or 'online', got {mode!r}")
    if method not in ("auto", "binomial", "exact"):
        raise ValueError(f"method must be 'auto', 'binomial' or 'exact', got {method!r}")
    rows = _eval_rows(curve)
    peak = find_peak(curve, smooth)
    points, n_source = (None, "unknown") if smooth or method == "exact" else eval_points(curve, n)
    if method == "binomial" and (points is None or delta >= 1):
        raise ValueError("the binomial method needs the eval size: an 'n' column, n=..., or accuracies that are "
                         "multiples of 1/n; and delta < 1" + ("; smoothing is exact-only" if smooth else ""))
    out: dict[str, Any] = {"method": "exact", "mode": mode, "n_source": n_source, "peak_step": peak["step"],
                           "peak": peak["accuracy"], "peak_raw": peak["raw_accuracy"],
                           "peak_interval": _peak_wilson(curve, n, peak["step"]), "tied_steps": None,
                           "peak_level": None, "peak_level_interval": None}
    if points is not None and delta < 1:
        cfg = replace(config or DetectorConfig(), fraction=1 - delta, confirm=m)
        off = detect_offline(points, cfg)
        p = off["peak"]
        out.update(method="binomial", peak_interval=p["interval"], tied_steps=p["tied_steps"],
                   peak_level=p["level"], peak_level_interval=p["level_interval"],
                   eval_n={"min": min(x.n for x in points), "max": max(x.n for x in points)})
        alarm, offline, threshold = off["alarm_step"], off["collapse_step"], off["threshold"]
    else:
        offline = find_collapse(curve, delta, m, smooth)
        alarm = _exact_alarm(curve, delta, m, smooth)
        threshold = (1 - delta) * peak["accuracy"]
    collapse = alarm if mode == "online" else offline
    out.update({
        "collapse_step": collapse,
        "collapse_alarm_step": alarm,
        "collapse_threshold": _scalar(threshold),
        "zero_step": find_zero_step(curve),
        "final_step": _scalar(rows["step"].iloc[-1]),
        "final_accuracy": _scalar(rows["accuracy"].iloc[-1]),
        "n_evals": len(rows),
        "params": {"delta": delta, "m": m, "smooth": smooth, "n": n, "mode": mode},
        "indicators": indicator_onsets(curve, peak["step"], collapse, m),
        "reported_at_peak": _reported_at(curve, peak["step"]),
    })
    verdict = learning_from_curve(curve, points if points is not None else eval_points(curve, n)[0])
    out["learning"] = verdict.to_dict() if verdict else None
    return out


def _reported_at(curve: pd.DataFrame, step: Any) -> float | None:
    """The reported split's accuracy (``test_accuracy``, written where ``harness train`` evaluated it) at ``step``.

    >>> _reported_at(pd.DataFrame({"step": [0, 5], "accuracy": [0.2, 0.5], "test_accuracy": [0.3, 0.4]}), 5)
    0.4
    """
    if "test_accuracy" not in curve.columns:
        return None
    at = pd.to_numeric(curve.loc[curve["step"] == step, "test_accuracy"], errors="coerce").dropna()
    return _scalar(at.iloc[0]) if len(at) else None


def _peak_wilson(curve: pd.DataFrame, n: int | None, step: Any) -> list[float] | None:
    """The Wilson 95% interval of the eval at ``step`` when the eval size is known (the one interval family
    of accuracy: :mod:`harness.stats.intervals`)."""
    points, _ = eval_points(curve, n)
    at = [p for p in points or [] if p.step == step]
    return list(wilson(at[0].correct, at[0].n)) if at else None


def _exact_alarm(curve: pd.DataFrame, delta: float, m: int, smooth: int | None) -> int | float | None:
    """The exact rule run online: the first eval at which the curve so far shows a collapse."""
    rows = _eval_rows(curve)
    for t in range(1, len(rows)):
        if find_collapse(rows.iloc[: t + 1], delta, m, smooth) is not None:
            return _scalar(rows["step"].iloc[t])
    return None


def _check_params(delta: float, m: int, smooth: int | None) -> None:
    """Reject parameters that make the detectors meaningless."""
    if not 0 < delta <= 1:
        raise ValueError(f"delta must be in (0, 1], got {delta!r}")
    if int(m) != m or m < 1:
        raise ValueError(f"m must be a positive integer, got {m!r}")
    if smooth is not None and (int(smooth) != smooth or smooth < 1):
        raise ValueError(f"smooth must be None or a positive integer, got {smooth!r}")


def _scalar(value: Any) -> int | float | None:
    """A JSON-friendly number: int when integral-typed, float otherwise, None for NaN/None."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return None if math.isnan(value) else value

