"""A second calibration set: synthetic curves drawn from what real micro runs look like.

The first set (:mod:`harness.stats.synthetic`, *planted*) was written from the detectors' own assumptions:
its hard negatives dip to 0.55-0.8 of the plateau, and its evals are independent binomial draws. Real
micro curves dip much deeper and come back (0.97 -> 0.22 -> 0.96), and their eval-to-eval variance on
healthy runs is several times binomial. This set is fitted on real healthy runs
(:func:`fit_empirical`, from the de-duplicated real curves of :mod:`harness.bench.real`):

=================  ==========================================================================
draw               from (per curve, independent)
=================  ==========================================================================
plateau ``P``      the pooled peak level of a real healthy run, resampled
evals              the number of evals of a real run, resampled
rise               a real run's evals before it first reached 0.9 x its best eval, and its first
                   eval as a share of its plateau, resampled (as a pair); linear to ``P``
jitter             after the rise the true level is ``P`` plus normal noise whose variance is what
                   the real runs' non-dip evals show beyond binomial
dips               after the rise each eval starts a dip with the real rate (evals below 0.75 x P per
                   eval after the rise); a dip's depth (its lowest eval / P, 0 included) and width
                   (evals, at most 3, then back to the plateau) are a real dip's, resampled as a pair
collapse           (collapsing curves) as in the planted set: after two plateau evals a linear fall
                   over ``fall`` evals to ``floor`` x the level, then flat; three evals after the crossing
observation        a fixed question set: each of the ``n`` questions has a latent draw u ~ U(0, 1); a
                   question is right when u < the true level; at each eval a share ``churn`` of the
                   questions redraw u (the policy changed on them). Each eval is marginally
                   Binomial(n, level), consecutive evals are correlated (churn 1: independent)
=================  ==========================================================================

:func:`generate_empirical` can force one dip of a given depth and width (the false-alarm envelope) or a
fall of a given length at a given plateau (the detection envelope). Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from harness.stats.detect import EvalPoint, estimate_peak
from harness.stats.synthetic import SyntheticCurve

__all__ = ["EmpiricalSpec", "empirical_set", "fit_empirical", "generate_empirical"]

#: An eval below this share of the plateau, after the rise, is part of a dip.
DIP_BELOW = 0.75
#: The rise ends at the first eval at or above this share of the run's best eval.
RISE_TO = 0.9


@dataclass(frozen=True)
class EmpiricalSpec:
    """The resampled pools of the empirical set (:func:`fit_empirical`) and the fixed settings."""

    plateaus: tuple[float, ...]
    evals: tuple[int, ...]
    rises: tuple[tuple[int, float], ...]
    dip_rate: float
    dips: tuple[tuple[int, float], ...]
    jitter_sd: float
    n: int = 100
    churn: float = 0.5
    interval: int = 5
    floor: tuple[float, float] = (0.0, 0.25)
    fall: tuple[int, int] = (1, 6)
    fraction: float = 0.5
    source: dict = field(default_factory=dict, compare=False)

    def summary(self) -> dict:
        return {"runs": self.source.get("runs"), "plateau_median": float(np.median(self.plateaus)),
                "evals": sorted(set(self.evals)), "dip_rate": self.dip_rate, "dips": len(self.dips),
                "dip_depths": sorted(round(d, 2) for _, d in self.dips), "jitter_sd": self.jitter_sd,
                "churn": self.churn, "n": self.n}


def fit_empirical(curves: Sequence[tuple[Sequence[float], int]], **settings) -> EmpiricalSpec:
    """The pools of :class:`EmpiricalSpec` from real healthy curves: ``(accuracies, n)`` each.

    >>> spec = fit_empirical([([0.4, 0.9, 0.92, 0.2, 0.9, 0.91], 100), ([0.5, 0.5, 0.8, 0.82, 0.8], 50)])
    >>> spec.dips, spec.evals, round(spec.dip_rate, 2)
    (((1, 0.22),), (6, 5), 0.17)
    """
    plateaus, evals, rises, dips, resid, binom = [], [], [], [], [], []
    post = 0
    for accs, n in curves:
        a = np.asarray(accs, dtype=float)
        level = estimate_peak([EvalPoint.from_accuracy(i, x, n) for i, x in enumerate(a)]).level
        first = int(np.argmax(a >= RISE_TO * a.max()))
        plateaus.append(level)
        evals.append(len(a))
        rises.append((first, float(a[0] / level) if level else 1.0))
        seg = a[first:]
        post += max(len(seg) - 1, 0)
        i = 1
        while i < len(seg):
            if seg[i] < DIP_BELOW * level:
                j = i
                while j < len(seg) and seg[j] < DIP_BELOW * level:
                    j += 1
                dips.append((min(j - i, 3), round(float(seg[i:j].min() / level), 2)))
                i = j
            else:
                resid.append(seg[i] - level)
                binom.append(level * (1 - level) / n)
                i += 1
    extra = float(np.var(resid) - np.mean(binom)) if resid else 0.0
    return EmpiricalSpec(plateaus=tuple(plateaus), evals=tuple(evals), rises=tuple(rises),
                         dip_rate=len(dips) / post if post else 0.0, dips=tuple(dips),
                         jitter_sd=float(np.sqrt(max(extra, 0.0))), source={"runs": len(plateaus)}, **settings)


def _observe(rng: np.random.Generator, true: np.ndarray, n: int, churn: float) -> np.ndarray:
    """Counts of a fixed question set of ``n`` questions at each true level (see the module table)."""
    u = rng.uniform(size=n)
    out = np.empty(len(true), dtype=int)
    for t, p in enumerate(true):
        if t:
            redraw = rng.uniform(size=n) < churn
            u[redraw] = rng.uniform(size=int(redraw.sum()))
        out[t] = int((u < p).sum())
    return out


def generate_empirical(rng: np.random.Generator, spec: EmpiricalSpec, collapse: bool = False,
                       dip: tuple[float, int] | None = None, fall: int | None = None,
                       plateau: float | None = None) -> SyntheticCurve:
    """One curve of the empirical set. ``dip=(depth, width)``: exactly one dip of that depth (x P) and width
    after the rise and no other; ``fall`` / ``plateau``: a collapse of that many evals / at that plateau.

    >>> spec = fit_empirical([([0.4, 0.9, 0.92, 0.2, 0.9, 0.91, 0.9], 100)] * 3)
    >>> c = generate_empirical(np.random.default_rng(0), spec, collapse=True)
    >>> bool(c.true[c.steps == c.collapse_step][0] < 0.5 * c.true.max()), c.shape
    (True, 'empirical')
    >>> d = generate_empirical(np.random.default_rng(0), spec, dip=(0.0, 1))
    >>> int((d.true == 0).sum())
    1
    """
    while True:
        P = float(plateau if plateau is not None else rng.choice(spec.plateaus))
        E = int(rng.choice(spec.evals))
        rise, start = spec.rises[int(rng.integers(len(spec.rises)))]
        rise = min(int(rise), max(E - 4, 0))
        true = np.full(E, P)
        true[: rise + 1] = np.linspace(min(start, 1.0) * P, P, rise + 1)
        true[rise + 1 :] = np.clip(P + rng.normal(0, spec.jitter_sd, E - rise - 1), 0, min(1.0, P + 2 * spec.jitter_sd))
        fall_at = None
        if collapse:
            f = int(fall if fall is not None else rng.integers(spec.fall[0], spec.fall[1] + 1))
            lo, hi = rise + 2, E - 3 - f
            if hi < lo:
                if fall is not None or plateau is not None:  # a forced shape needs room: take a longer run
                    E_needed = rise + 5 + f
                    spec = replace(spec, evals=tuple(e for e in spec.evals if e >= E_needed) or (E_needed,))
                continue
            c = int(rng.integers(lo, hi + 1))
            fall_at = (c, f)
        if dip is not None:
            depth, width = dip
            room = E - 1 - rise - width
            if room < 1:
                spec = replace(spec, evals=tuple(e for e in spec.evals if e >= rise + 2 + width) or (rise + 2 + width,))
                continue
            s = int(rng.integers(rise + 1, rise + 1 + room))
            true[s : s + width] = depth * P
        else:
            i = rise + 1
            while i < E - 1:
                if rng.uniform() < spec.dip_rate:
                    width, depth = spec.dips[int(rng.integers(len(spec.dips)))]
                    true[i : i + width] = np.minimum(true[i : i + width], depth * P)
                    i += width + 1
                else:
                    i += 1
        steps = np.arange(E) * spec.interval
        collapse_step, floor = None, None
        if fall_at is not None:
            c, f = fall_at
            level = float(true[c])
            floor = float(rng.uniform(*spec.floor))
            true[c + 1 : c + 1 + f] = np.linspace(level, floor * level, f + 1)[1:]
            true[c + 1 + f :] = floor * level
            below = np.flatnonzero((true < spec.fraction * true.max()) & (np.arange(E) > c))
            if not len(below):
                continue
            collapse_step = int(steps[below[0]])
        true = np.clip(true, 0.0, 1.0)
        correct = _observe(rng, true, spec.n, spec.churn)
        return SyntheticCurve(steps, true, correct, spec.n, spec.interval, P, "empirical",
                              collapse_step=collapse_step, fall=fall_at[1] if fall_at else None, floor=floor)


def empirical_set(count: int, spec: EmpiricalSpec, seed: int = 0, collapse: bool = False,
                  **forced) -> list[SyntheticCurve]:
    """``count`` curves of the empirical set, reproducible by seed (``forced``: see :func:`generate_empirical`)."""
    rng = np.random.default_rng([seed, spec.n, int(collapse), 7])
    return [generate_empirical(rng, spec, collapse, **forced) for _ in range(count)]
