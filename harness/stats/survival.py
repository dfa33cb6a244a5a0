"""Time-to-event statistics for onsets measured at evals (Study A's primary analysis, docs/findings.md §9).

An *onset* is the first eval step at which something happens (e.g. :func:`harness.stats.cells.retry_onset`);
``None`` means it never happened before the run ended, so the run is *censored* at its last step. Runs
come in seed-matched pairs (arm A and arm B with the same seed), and the pre-registered test is the
log-rank statistic with its p-value from permuting the arm labels **within** pairs: with n pairs there
are 2**n relabellings, all enumerated (exact, conditional on the pairing) when 2**n <= ``max_exact``,
otherwise drawn at random.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

Onset = float | None


def logrank_oe(times: Sequence[float], events: Sequence[bool], group: Sequence[bool]) -> float:
    """Observed minus expected events in ``group`` (True rows) over the distinct event times (log-rank).

    ``times`` are event or censoring times, ``events`` whether the event happened (False: censored there).
    A positive value means the group's events came sooner than under no difference.

    >>> logrank_oe([5, 10, 50, 50], [True, True, False, False], [True, True, False, False])
    1.1666666666666667
    >>> round(logrank_oe([5, 10, 50, 50], [True, True, False, False], [False, False, True, True]), 12)
    -1.166666666667
    """
    return _logrank(times, events, group)[0]


def logrank_z(times: Sequence[float], events: Sequence[bool], group: Sequence[bool]) -> float | None:
    """The standardised log-rank statistic (O - E over the square root of its hypergeometric variance), as
    ``scipy.stats.logrank`` computes it with the group as its first sample; None when the variance is 0.

    >>> round(logrank_z([5, 10, 10, 15, 50, 50, 25, 50], [1, 1, 1, 1, 0, 0, 1, 0], [1, 1, 1, 1, 0, 0, 0, 0]), 4)
    2.7007
    """
    oe, var = _logrank(times, events, group)
    return oe / var**0.5 if var > 0 else None


def _logrank(times, events, group) -> tuple[float, float]:
    t, e, g = np.asarray(times, float), np.asarray(events, bool), np.asarray(group, bool)
    oe = var = 0.0
    for s in np.unique(t[e]):
        at_risk = t >= s
        n, n_g = at_risk.sum(), (at_risk & g).sum()
        d, d_g = (e & (t == s)).sum(), (e & (t == s) & g).sum()
        oe += d_g - d * n_g / n
        if n > 1:
            var += d * (n_g / n) * (1 - n_g / n) * (n - d) / (n - 1)
    return float(oe), float(var)


def _as_times(onsets: Sequence[Onset], censor_at: float) -> tuple[list[float], list[bool]]:
    return [censor_at if o is None else float(o) for o in onsets], [o is not None for o in onsets]


@dataclass(frozen=True)
class PairedLogrank:
    """The log-rank O - E of arm A over B, its one-sided permutation p-values and how they were computed."""

    oe: float
    p_a_sooner: float   # P(O - E >= observed) under relabelling: small when A's onsets come sooner
    p_a_later: float    # P(O - E <= observed): small when A's onsets come later
    n_pairs: int
    n_relabellings: int
    exact: bool


def paired_logrank(a: Sequence[Onset], b: Sequence[Onset], censor_at: float, *, max_exact: int = 2**16,
                   n_perm: int = 10_000, seed: int = 0) -> PairedLogrank:
    """Log-rank O - E of arm ``a`` against ``b`` (seed-matched: ``a[i]`` and ``b[i]`` share a seed), with
    one-sided p-values from swapping the two labels within pairs.

    Events at 5, 10 (two), 15 in A and 25 in B: O - E = 0.5 + (2 - 2 * 3/7) + (1 - 1/5) + 0 = 2.443, the
    largest of the 16 relabellings, so p = 1/16.

    >>> r = paired_logrank([5, 10, 10, 15], [None, None, 25, None], censor_at=50)
    >>> round(r.oe, 3), r.p_a_sooner, r.n_relabellings, r.exact
    (2.443, 0.0625, 16, True)
    >>> paired_logrank([None, None], [None, None], censor_at=50).p_a_sooner   # no event: no evidence
    1.0
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"seed-matched arms need the same number of runs (got {len(a)} and {len(b)}), at least one")
    n = len(a)
    t_a, e_a = _as_times(a, censor_at)
    t_b, e_b = _as_times(b, censor_at)
    times, events = t_a + t_b, e_a + e_b

    def stat(swap: Sequence[bool]) -> float:
        group = [not s for s in swap] + list(swap)   # a swapped pair puts b's run in arm A
        return logrank_oe(times, events, group)

    observed = stat([False] * n)
    if 2**n <= max_exact:
        swaps = list(itertools.product((False, True), repeat=n))
        exact = True
    else:
        rng = np.random.default_rng(seed)
        swaps = [tuple(rng.random(n) < 0.5) for _ in range(n_perm)]
        exact = False
    null = np.array([stat(s) for s in swaps])
    tol = 1e-12
    return PairedLogrank(oe=observed, p_a_sooner=float(np.mean(null >= observed - tol)),
                         p_a_later=float(np.mean(null <= observed + tol)), n_pairs=n,
                         n_relabellings=len(swaps), exact=exact)


def kaplan_meier(onsets: Sequence[Onset], censor_at: float) -> list[tuple[float, float]]:
    """The Kaplan-Meier curve of "no onset yet": ``(step, share still without onset)`` after each event time.

    >>> kaplan_meier([5, 10, None, None], censor_at=50)
    [(0.0, 1.0), (5.0, 0.75), (10.0, 0.5)]
    """
    times, events = _as_times(onsets, censor_at)
    t, e = np.asarray(times), np.asarray(events)
    curve, s = [(0.0, 1.0)], 1.0
    for step in np.unique(t[e]):
        at_risk = (t >= step).sum()
        s *= 1 - (e & (t == step)).sum() / at_risk
        curve.append((float(step), float(s)))
    return curve


def km_median(onsets: Sequence[Onset], censor_at: float) -> float | None:
    """First step at which half the runs have had their onset (Kaplan-Meier); None: not reached.

    >>> km_median([5, 10, None, None], censor_at=50), km_median([5, None, None, None], censor_at=50)
    (10.0, None)
    """
    return next((step for step, s in kaplan_meier(onsets, censor_at) if s <= 0.5), None)
