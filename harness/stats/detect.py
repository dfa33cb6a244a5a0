"""Peak and collapse detection that knows each eval is a binomial draw of ``n`` questions.

An eval on the paper's 32 questions at a true accuracy of 0.3 has a standard deviation of about
0.08, so a rule that treats every eval point as exact (:func:`harness.stats.curves.find_collapse`)
calls noise a collapse in about one run in four. Here each eval point carries ``k`` correct out of
``n`` and every decision is a test. ``docs/detection.md`` gives the method, its assumptions and the
calibration (``harness bench detect``).

=====================  ==========================================================================
quantity               definition (evals up to now: online; the whole curve: offline)
=====================  ==========================================================================
peak                   the eval with the highest accuracy (earliest on ties), with its Wilson
                       95% interval (it is the maximum of noisy draws, so it is biased upward)
tied steps             evals whose accuracy is not significantly different from the peak's
                       (two-sided Agresti–Caffo 95% interval of the difference contains 0)
peak level             pooled accuracy of the tied evals (sum of k / sum of n): the plateau,
                       far less biased than the single best point
threshold ``h``        ``fraction`` x peak level (``fraction`` = 0.5: "below half the peak")
``h_low``              ``fraction`` x the one-sided ``level_alpha`` Wilson lower bound of the level
recent count ``r_t``   the last ``window`` (2) evals after the peak weighted so that each eval counts
                       twice the one before it: ``r_t = 2 k_t + k_(t-1)`` (an exponentially weighted
                       moving average with weight 1/2, cut at the peak and at ``window`` evals)
online collapse        at eval t after the peak: accuracy_t < h, and either the eval alone is
                       significantly below ``h_low`` (exact binomial P(X <= k_t | n_t, h_low) <
                       ``single_alpha``) or the recent count is (exact distribution of the weighted
                       sum of independent Binomial(n_i, h_low): P(R <= r_t) < ``recent_alpha``)
offline collapse       the first eval j after the peak such that accuracy < h at j and at the next
                       ``confirm`` - 1 evals (or up to the end), the pooled tail (j..end) is
                       significantly below ``h_low`` (exact binomial, ``alpha``), and no window of
                       1..3 evals of the tail is significantly above ``h`` (exact,
                       ``recovery_alpha``): a dip that recovers is not a collapse
patience               evals since the last eval that was significantly better than the previous
                       such eval (one-sided Agresti–Caffo at ``tie_alpha`` / 2)
=====================  ==========================================================================

The per-check levels (``alpha`` etc.) are not the per-run false-collapse rate: a run is checked at
every eval. That rate is measured on synthetic curves (:mod:`harness.stats.synthetic`) by
``harness bench detect``, and the defaults of :class:`DetectorConfig` are the calibrated ones.

Everything here is pure; it imports numpy, and scipy (binomial tails) inside functions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from harness.stats.intervals import wilson, wilson_lower

__all__ = [
    "Decision",
    "DetectorConfig",
    "EvalPoint",
    "OnlineDetector",
    "PeakEstimate",
    "collapse_at",
    "collapse_evidence",
    "detect_offline",
    "estimate_peak",
    "online_alarm",
    "significantly_better",
    "tied_with",
    "weighted_binom_cdf",
]


@dataclass(frozen=True)
class EvalPoint:
    """One held-out evaluation: ``correct`` of ``n`` questions at ``step``."""

    step: int | float
    correct: int
    n: int

    def __post_init__(self) -> None:
        if self.n < 1 or not 0 <= self.correct <= self.n:
            raise ValueError(f"eval at step {self.step}: need 0 <= correct <= n and n >= 1, got "
                             f"{self.correct} of {self.n}")

    @property
    def accuracy(self) -> float:
        return self.correct / self.n

    @classmethod
    def from_accuracy(cls, step: int | float, accuracy: float, n: int) -> "EvalPoint":
        """The point whose accuracy is ``accuracy`` on ``n`` questions (``correct = round(accuracy * n)``).

        >>> EvalPoint.from_accuracy(250, 0.46875, 32)
        EvalPoint(step=250, correct=15, n=32)
        """
        if not (isinstance(n, (int, np.integer)) or float(n).is_integer()) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if not 0.0 <= accuracy <= 1.0:
            raise ValueError(f"accuracy must be in [0, 1], got {accuracy!r} at step {step}")
        return cls(step, int(round(accuracy * int(n))), int(n))


@dataclass(frozen=True)
class DetectorConfig:
    """Parameters of the detectors; the defaults are the calibrated ones (``harness bench detect``)."""

    #: Collapse means below this fraction of the peak level (0.5: "below half the peak").
    fraction: float = 0.5
    #: Offline: one-sided level of the test of the pooled tail (exact binomial).
    alpha: float = 0.2
    #: One-sided level of the peak level's lower bound that the collapse tests compare against.
    level_alpha: float = 0.3
    #: Two-sided level of "tied with the peak" (and, one-sided at half, of "significantly better").
    tie_alpha: float = 0.05
    #: Online: one-sided level of the test of the current eval alone (exact binomial), per check.
    single_alpha: float = 0.05
    #: Online: one-sided level of the test of the recent count (current eval weighted twice, the
    #: previous once; exact), per check.
    recent_alpha: float = 0.4
    #: Online: evals in the recent count (weights halving backwards from the current one; 1: off).
    window: int = 2
    #: Offline: a window of 1..3 tail evals significantly above the threshold at this level is a recovery.
    recovery_alpha: float = 0.05
    #: Offline: the fall's first eval and the next ``confirm - 1`` (or those up to the end) are below ``h``.
    confirm: int = 2
    #: Online: evals in a row after the peak that must be below ``h`` before either test may fire (1: the
    #: current eval alone; 2: it and the one before, so a one-eval dip never stops a run, at the cost of one
    #: eval interval on an abrupt fall).
    online_confirm: int = 2
    #: Online, with ``online_confirm`` > 1: the evals before the current one in the confirmation window must be
    #: below this fraction of the peak level (None: ``fraction``, like the current eval). A looser value lets a
    #: slow fall whose previous eval sat just above half confirm at once, while a dip from the plateau still
    #: needs a second low eval.
    confirm_fraction: float | None = 0.6

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1:
            raise ValueError(f"fraction must be in (0, 1), got {self.fraction!r}")
        if self.confirm_fraction is not None and not self.fraction <= self.confirm_fraction < 1:
            raise ValueError(f"confirm_fraction must be in [fraction, 1), got {self.confirm_fraction!r}")
        for name in ("alpha", "level_alpha", "tie_alpha", "single_alpha", "recent_alpha", "recovery_alpha"):
            v = getattr(self, name)
            if not 0 < v < 1:
                raise ValueError(f"{name} must be in (0, 1), got {v!r}")
        for name in ("window", "confirm", "online_confirm"):
            v = getattr(self, name)
            if int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")


# ----------------------------------------------------------------------------- binomial helpers


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    from scipy.stats import binom

    return float(binom.cdf(k, n, min(max(p, 0.0), 1.0)))


def weighted_binom_cdf(s: int, ns: Sequence[int], weights: Sequence[int], p: float) -> float:
    """P(sum_i w_i X_i <= s) for independent X_i ~ Binomial(n_i, p) and positive integer weights w_i.

    Exact: the distribution of the weighted sum lives on the integers and is the convolution of the
    scaled binomial distributions.

    >>> round(weighted_binom_cdf(2, [32], [1], 0.2), 6) == round(binom_cdf(2, 32, 0.2), 6)
    True
    >>> round(weighted_binom_cdf(2, [1, 1], [1, 2], 0.5), 3)  # X + 2Y <= 2 fails only at X = Y = 1
    0.75
    """
    from scipy.stats import binom

    p = min(max(p, 0.0), 1.0)
    pmf = np.ones(1)
    for n, w in zip(ns, weights):
        if int(w) != w or w < 1:
            raise ValueError(f"weights must be positive integers, got {w!r}")
        scaled = np.zeros(int(w) * int(n) + 1)
        scaled[:: int(w)] = binom.pmf(np.arange(int(n) + 1), int(n), p)
        pmf = np.convolve(pmf, scaled)
    return float(min(1.0, pmf[: max(math.floor(s) + 1, 0)].sum()))


def binom_sf_incl(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, min(max(p, 0.0), 1.0)))


def _ac_diff(k1: Any, n1: Any, k2: Any, n2: Any) -> tuple[Any, Any]:
    """Agresti–Caffo difference p1 - p2 (one pseudo-success and failure added to each) and its s.e."""
    p1 = (np.asarray(k1) + 1) / (np.asarray(n1) + 2)
    p2 = (np.asarray(k2) + 1) / (np.asarray(n2) + 2)
    se = np.sqrt(p1 * (1 - p1) / (np.asarray(n1) + 2) + p2 * (1 - p2) / (np.asarray(n2) + 2))
    return p1 - p2, se


def tied_with(points: Sequence[EvalPoint], i: int, alpha: float = 0.05) -> list[bool]:
    """For each point: is its accuracy not significantly different from that of point ``i``?

    >>> pts = [EvalPoint(0, 5, 32), EvalPoint(10, 14, 32), EvalPoint(20, 12, 32)]
    >>> tied_with(pts, 1)
    [False, True, True]
    """
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - alpha / 2)
    k = np.array([p.correct for p in points])
    n = np.array([p.n for p in points])
    diff, se = _ac_diff(points[i].correct, points[i].n, k, n)
    return [bool(x) for x in np.abs(diff) <= z * se]


def significantly_better(new: EvalPoint, old: EvalPoint, alpha: float = 0.05) -> bool:
    """Is ``new`` significantly better than ``old`` (one-sided Agresti–Caffo at ``alpha`` / 2)?

    >>> significantly_better(EvalPoint(10, 20, 32), EvalPoint(0, 8, 32))
    True
    >>> significantly_better(EvalPoint(10, 12, 32), EvalPoint(0, 8, 32))
    False
    """
    from statistics import NormalDist

    diff, se = _ac_diff(new.correct, new.n, old.correct, old.n)
    return bool(diff > NormalDist().inv_cdf(1 - alpha / 2) * se)


# ----------------------------------------------------------------------------- the peak


@dataclass(frozen=True)
class PeakEstimate:
    """The best eval, its interval, the evals tied with it and the pooled level of those."""

    step: int | float
    accuracy: float
    interval: tuple[float, float]
    n: int
    index: int
    tied_steps: tuple
    level: float
    level_interval: tuple[float, float]
    level_correct: int
    level_n: int

    def threshold(self, config: DetectorConfig) -> float:
        """``h``: the collapse threshold on a point estimate."""
        return config.fraction * self.level

    def threshold_low(self, config: DetectorConfig) -> float:
        """``h_low``: the collapse tests' null value (the threshold on the level's lower bound)."""
        return config.fraction * wilson_lower(self.level_correct, self.level_n, config.level_alpha)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("index")
        d["interval"], d["level_interval"] = list(self.interval), list(self.level_interval)
        d["tied_steps"] = list(self.tied_steps)
        return d


def estimate_peak(points: Sequence[EvalPoint], config: DetectorConfig | None = None) -> PeakEstimate:
    """The peak of ``points`` (earliest best accuracy) with its interval, tied steps and pooled level.

    >>> pts = [EvalPoint(s, k, 32) for s, k in [(0, 4), (25, 9), (50, 15), (75, 13), (100, 3)]]
    >>> p = estimate_peak(pts)
    >>> p.step, p.accuracy, p.tied_steps, round(p.level, 4)
    (50, 0.46875, (25, 50, 75), 0.3854)
    """
    config = config or DetectorConfig()
    if not points:
        raise ValueError("no evaluated steps")
    acc = np.array([p.accuracy for p in points])
    i = int(np.argmax(acc))  # the first maximum: the earliest step on ties
    tied = tied_with(points, i, config.tie_alpha)
    k = sum(p.correct for p, t in zip(points, tied) if t)
    n = sum(p.n for p, t in zip(points, tied) if t)
    best = points[i]
    return PeakEstimate(step=best.step, accuracy=best.accuracy, interval=wilson(best.correct, best.n),
                        n=best.n, index=i, tied_steps=tuple(p.step for p, t in zip(points, tied) if t),
                        level=k / n, level_interval=wilson(k, n), level_correct=k, level_n=n)


# ----------------------------------------------------------------------------- online


def collapse_evidence(points: Sequence[EvalPoint], t: int, peak: PeakEstimate,
                      config: DetectorConfig | None = None) -> str | None:
    """Which online test finds a collapse at eval ``t`` given the peak of ``points[: t + 1]``: ``"eval"``
    (the eval alone), ``"recent"`` (the recent count) or None (no collapse; see the module table).

    >>> plateau = [EvalPoint(s, k, 32) for s, k in [(0, 5), (25, 14), (50, 15), (75, 13)]]
    >>> fall = plateau + [EvalPoint(100, 6, 32), EvalPoint(125, 3, 32)]  # half the level is 0.22 (7 of 32)
    >>> [collapse_evidence(fall, t, estimate_peak(fall[: t + 1])) for t in (4, 5)]
    [None, 'recent']
    """
    config = config or DetectorConfig()
    h = peak.threshold(config)
    first = t - config.online_confirm + 1  # the confirmation window: the current eval below h, the ones before it
    h_confirm = (config.confirm_fraction or config.fraction) * peak.level  # below h_confirm
    if (first <= peak.index or points[t].accuracy >= h
            or any(p.accuracy >= h_confirm for p in points[first:t])):
        return None
    h_low = peak.threshold_low(config)
    if binom_cdf(points[t].correct, points[t].n, h_low) < config.single_alpha:
        return "eval"
    m = min(config.window, t - peak.index)  # the recent evals, all after the peak
    if m >= 2:
        recent = points[t - m + 1 : t + 1]
        weights = [2**i for i in range(m)]  # oldest first: ..., 1, 2 (the current eval counts most)
        r = sum(w * p.correct for w, p in zip(weights, recent))
        if weighted_binom_cdf(r, [p.n for p in recent], weights, h_low) < config.recent_alpha:
            return "recent"
    return None


def collapse_at(points: Sequence[EvalPoint], t: int, peak: PeakEstimate, config: DetectorConfig) -> bool:
    """The online collapse rule at eval ``t`` given the peak of ``points[: t + 1]`` (see the module table)."""
    return collapse_evidence(points, t, peak, config) is not None


@dataclass
class Decision:
    """What the online detector says after an eval: ``continue``, ``collapse`` or ``patience``."""

    step: int | float
    action: str
    peak: PeakEstimate
    #: Evals since the last significantly better eval.
    since_better: int
    reason: str = ""

    @property
    def stop(self) -> bool:
        return self.action != "continue"


@dataclass
class OnlineDetector:
    """What is known at step t: feed evals in order with :meth:`update`; stop when ``decision.stop``.

    A pure function of the evals seen so far, so a resumed run that replays its curve reaches the
    same decisions (:meth:`replay`). ``patience`` (None: off) stops a run after that many evals
    without a significantly better one; ``collapse=False`` turns the collapse rule off. Once a stop
    is decided it stays decided. A sweep can keep
    one detector per trial and call :meth:`update` with each intermediate value.

    >>> det = OnlineDetector()
    >>> for step, k in [(0, 5), (25, 14), (50, 15), (75, 13), (100, 2), (125, 0)]:
    ...     d = det.update(step, k / 32, 32)
    >>> d.action, det.stop_step, d.peak.step  # the low eval at 100 is confirmed by the one at 125
    ('collapse', 125, 50)
    """

    config: DetectorConfig = field(default_factory=DetectorConfig)
    patience: int | None = None
    #: Stop on a collapse (False: only patience stops; the peak estimate is kept either way).
    collapse: bool = True
    points: list[EvalPoint] = field(default_factory=list)
    decision: Decision | None = None
    _anchor: int = field(default=0, init=False, repr=False)
    _stopped_at: int | float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.patience is not None and (int(self.patience) != self.patience or self.patience < 1):
            raise ValueError(f"patience must be a positive integer or None, got {self.patience!r}")

    def update(self, step: int | float, accuracy: float, n: int) -> Decision:
        """Add the eval of ``step`` (accuracy on ``n`` questions) and return the decision after it."""
        if self.points and step <= self.points[-1].step:
            raise ValueError(f"evals must come in increasing step order: {step} after {self.points[-1].step}")
        self.points.append(EvalPoint.from_accuracy(step, accuracy, n))
        t = len(self.points) - 1
        if t and significantly_better(self.points[t], self.points[self._anchor], self.config.tie_alpha):
            self._anchor = t
        peak = estimate_peak(self.points, self.config)
        since = t - self._anchor
        if self.decision is not None and self.decision.stop:  # latched: a stop stays a stop
            self.decision = Decision(step, self.decision.action, peak, since, self.decision.reason)
        elif self.collapse and (evidence := collapse_evidence(self.points, t, peak, self.config)):
            recent = self.points[t - min(self.config.window, t - peak.index) + 1 : t + 1]
            what = (f"accuracy {self.points[t].accuracy:.4f} at step {step}" if evidence == "eval" else
                    "the recent accuracy (" + ", ".join(f"{p.accuracy:.4f} at step {p.step}" for p in recent)
                    + ", each eval weighted twice the one before)")
            self.decision = Decision(step, "collapse", peak, since,
                                     f"{what} is significantly below {self.config.fraction:g} x the peak level "
                                     f"{peak.level:.4f}")
        elif self.patience is not None and since >= self.patience:
            self.decision = Decision(step, "patience", peak, since,
                                     f"{since} evals since step {self.points[self._anchor].step} without a "
                                     "significantly better one")
        else:
            self.decision = Decision(step, "continue", peak, since)
        if self.decision.stop and self._stopped_at is None:
            self._stopped_at = step
        return self.decision

    def restart(self, step: int | float) -> None:
        """Forget the evals after ``step``: the run went back to the model of ``step`` (a rollback), so the
        evals of the abandoned stretch say nothing about the model that goes on. What is left is replayed, so
        the detector is the one that saw only those evals (no stop latched; the patience anchor recomputed).

        >>> det = OnlineDetector()
        >>> for step, k in [(0, 5), (25, 14), (50, 15), (75, 13), (100, 2), (125, 1)]:
        ...     d = det.update(step, k / 32, 32)
        >>> d.action, det.stop_step
        ('collapse', 125)
        >>> det.restart(50)
        >>> [p.step for p in det.points], det.stop_step, det.update(150, 14 / 32, 32).action
        ([0, 25, 50], None, 'continue')
        """
        kept = [p for p in self.points if p.step <= step]
        self.points, self.decision, self._anchor, self._stopped_at = [], None, 0, None
        for p in kept:
            self.update(p.step, p.accuracy, p.n)

    def replay(self, evals: Iterable[tuple[int | float, float, int]]) -> Decision | None:
        """:meth:`update` with each ``(step, accuracy, n)`` in turn; the last decision (None if no evals)."""
        for step, acc, n in evals:
            self.update(step, acc, n)
        return self.decision

    @property
    def stop_step(self) -> int | float | None:
        """The step at which a stop was first decided (None while running)."""
        return self._stopped_at


def online_alarm(points: Sequence[EvalPoint], config: DetectorConfig | None = None) -> int | float | None:
    """The step at which the online detector first signals a collapse on ``points`` (None if never).

    >>> pts = [EvalPoint(s, k, 32) for s, k in [(0, 5), (25, 14), (50, 15), (75, 13), (100, 2), (125, 0)]]
    >>> online_alarm(pts), online_alarm(pts, DetectorConfig(online_confirm=1, confirm_fraction=None))
    (125, 100)
    """
    config = config or DetectorConfig()
    for t in range(1, len(points)):
        if collapse_at(points, t, estimate_peak(points[: t + 1], config), config):
            return points[t].step
    return None


# ----------------------------------------------------------------------------- offline


def detect_offline(points: Sequence[EvalPoint], config: DetectorConfig | None = None) -> dict[str, Any]:
    """The whole curve: peak, tied steps, level, collapse onset (a dip that recovers is not one).

    ``collapse_step`` is the first eval of the sustained fall (see the module table); ``alarm_step``
    is where the online detector, fed the same evals, would have stopped the run.

    >>> pts = [EvalPoint(s, k, 32) for s, k in [(0, 5), (25, 14), (50, 15), (75, 13), (100, 1), (125, 12),
    ...                                          (150, 14), (175, 13), (200, 4), (225, 1), (250, 0)]]
    >>> r = detect_offline(pts)
    >>> r["collapse_step"], r["alarm_step"]  # the dip at 100 recovers; the fall from 200 does not (confirmed at 225)
    (200, 225)
    """
    config = config or DetectorConfig()
    peak = estimate_peak(points, config)
    h, h_low = peak.threshold(config), peak.threshold_low(config)
    collapse = None
    for j in range(peak.index + 1, len(points)):
        if any(p.accuracy >= h for p in points[j : j + config.confirm]):
            continue
        tail = points[j:]
        if binom_cdf(sum(p.correct for p in tail), sum(p.n for p in tail), h_low) >= config.alpha:
            continue
        if _recovers(tail, h, config.recovery_alpha):
            continue
        collapse = points[j].step
        break
    return {"peak": peak.to_dict(), "threshold": h, "collapse_step": collapse,
            "alarm_step": online_alarm(points, config), "config": asdict(config)}


def _recovers(tail: Sequence[EvalPoint], h: float, alpha: float, max_window: int = 3) -> bool:
    """Does some window of 1..max_window consecutive evals of ``tail`` sit significantly above ``h``?"""
    for w in range(1, max_window + 1):
        for s in range(len(tail) - w + 1):
            window = tail[s : s + w]
            if binom_sf_incl(sum(p.correct for p in window), sum(p.n for p in window), h) < alpha:
                return True
    return False
