"""The intervals of single quantities the harness computes and prints: one implementation per family.

=====================  ==================================================================
interval               used for
=====================  ==================================================================
Wilson score           a proportion k/n (accuracy, persistence, recovery, ...): it stays
                       inside [0, 1] and is not degenerate at 0/n or n/n, where a
                       bootstrap or normal interval collapses to a point
Student-t              a mean over a few independent values (seeds of one arm): mean ±
                       t(0.975, n-1) · sd / sqrt(n); none for n = 1
normal, from sd        the mean of a per-episode reward: mean ± 1.96 · sd / sqrt(n)
cluster bootstrap      a rate over K samples of each of n questions (avg@k, and every
                       retry-aware rate of a K-sample run): the samples of one question are
                       not independent, so questions are resampled with replacement (each
                       bringing all its samples) and the rate recomputed as sum of
                       numerators / sum of denominators; 95% percentile interval of 2000
                       resamples drawn from a fixed seed (0), so a run reprints its numbers
=====================  ==================================================================

Accuracy has one family, Wilson, wherever it appears (``results.json``, ``curve.csv``, the peak, the
reports); the run record names it (``interval``). Intervals of a *difference* live with their tests:
the paired difference of two arms (a percentile bootstrap over questions) in :mod:`harness.stats.paired`,
the Agresti–Caffo interval that decides which evals tie with the peak in :mod:`harness.stats.detect`.
Pure Python: no scipy (slow to import), Student-t quantiles tabulated to 30 degrees of freedom.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Sequence

Z975 = NormalDist().inv_cdf(0.975)

# Student-t 97.5% quantiles for 1..30 degrees of freedom (two-sided 95%).
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)


def wilson(k: float, n: float, alpha: float = 0.05) -> tuple[float, float] | None:
    """Two-sided ``1 - alpha`` Wilson score interval of the proportion k/n; None when n is 0.

    >>> [round(x, 3) for x in wilson(15, 32)]
    [0.309, 0.636]
    >>> [round(x, 3) for x in wilson(0, 32)]
    [0.0, 0.107]
    """
    if not n:
        return None
    return wilson_z(k, n, Z975 if alpha == 0.05 else NormalDist().inv_cdf(1 - alpha / 2))


def wilson_lower(k: float, n: float, alpha: float) -> float:
    """One-sided ``1 - alpha`` Wilson lower bound (``alpha`` >= 0.5 gives the estimate itself or above).

    >>> round(wilson_lower(15, 32, 0.025), 3)  # the two-sided 95% interval's lower end
    0.309
    """
    if alpha >= 0.5:
        return k / n
    return wilson_z(k, n, NormalDist().inv_cdf(1 - alpha))[0]


def wilson_z(k: float, n: float, z: float) -> tuple[float, float]:
    """The Wilson score interval of k/n at normal quantile ``z`` (``n`` > 0); exactly 0 at k = 0 and 1 at k = n,
    where rounding would otherwise leave the end a hair inside the estimate.

    >>> wilson_z(0, 5, 1.96)[0], wilson_z(7, 7, 1.96)[1]
    (0.0, 1.0)
    """
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    den = 1 + z * z / n
    low = 0.0 if k <= 0 else max(0.0, (centre - half) / den)
    high = 1.0 if k >= n else min(1.0, (centre + half) / den)
    return low, high


def t975(df: int) -> float:
    """The 97.5% Student-t quantile: tabulated to 30 df, Cornish-Fisher expansion beyond.

    >>> t975(2), round(t975(60), 3), round(t975(120), 3)
    (4.303, 2.0, 1.98)
    """
    if df <= len(T975):
        return T975[df - 1]
    z = Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def t_interval(values: Sequence[float]) -> tuple[float | None, float | None]:
    """95% Student-t confidence interval of the mean; (None, None) for fewer than two values.

    >>> [round(x, 4) for x in t_interval([0.4, 0.5, 0.6])]
    [0.2516, 0.7484]
    """
    n = len(values)
    if n < 2:
        return None, None
    mean = sum(values) / n
    half = t975(n - 1) * math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) / math.sqrt(n)
    return mean - half, mean + half


def clip01(interval: tuple[float | None, float | None]) -> tuple[float | None, float | None]:
    """An interval of a mean of proportions cut to [0, 1] (a t-interval of three accuracies can pass 1).

    >>> clip01((0.226, 1.316)), clip01((None, None))
    ((0.226, 1.0), (None, None))
    """
    low, high = interval
    return (None if low is None else max(0.0, low), None if high is None else min(1.0, high))


#: Resamples and seed of :func:`cluster_interval` (fixed: the same episodes always print the same interval).
CLUSTER_RESAMPLES = 2000
CLUSTER_SEED = 0


def cluster_interval(numerators: Sequence[float], denominators: Sequence[float], n_boot: int = CLUSTER_RESAMPLES,
                     seed: int = CLUSTER_SEED) -> tuple[float, float] | None:
    """95% cluster-bootstrap interval of the rate ``sum(numerators) / sum(denominators)`` whose terms come in
    clusters (one per question: its successes and trials over K samples). Questions are resampled with
    replacement; a resample whose denominators sum to 0 is left out. None when no question has a trial.

    >>> [round(x, 3) for x in cluster_interval([4, 0, 2, 3, 1], [4, 4, 4, 4, 4])]
    [0.2, 0.8]
    >>> cluster_interval([0, 0], [0, 0]) is None
    True
    """
    import numpy as np

    num, den = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    if den.sum() <= 0:
        return None
    idx = np.random.default_rng(seed).integers(0, len(den), size=(n_boot, len(den)))
    tops, bottoms = num[idx].sum(axis=1), den[idx].sum(axis=1)
    rates = tops[bottoms > 0] / bottoms[bottoms > 0]
    low, high = np.quantile(rates, [0.025, 0.975])
    return float(low), float(high)


def mean_interval(mean: float | None, sd: float | None, n: int | None) -> tuple[float, float] | None:
    """Normal 95% interval of a mean from its standard deviation and count.

    >>> [round(x, 3) for x in mean_interval(1.0, 0.5, 25)]
    [0.804, 1.196]
    """
    if mean is None or sd is None or not n or not math.isfinite(sd):
        return None
    half = Z975 * sd / math.sqrt(n)
    return mean - half, mean + half
