"""Synthetic training curves observed with binomial eval noise: the calibration set of the detectors.

Every curve has a true accuracy per eval and an observed count ``correct ~ Binomial(n, true)``:

=================  =========================================================================
draw               distribution (per curve, independent)
=================  =========================================================================
plateau ``P``      uniform in ``plateau`` (default 0.25 .. 0.7)
eval interval      uniform integer in ``interval`` steps (default 10 .. 50)
evals              uniform integer in ``evals`` (default 16 .. 40), the first at step 0
rise               from ``U(0.1, 0.6) x P`` at step 0, linearly to ``P`` over 2 .. max(2, evals / 3) evals
after the rise     one of three shapes, equally likely: ``plateau`` (flat at P); ``drift`` (linear
                   to ``U(0.75, 1.1) x P`` by the last eval); ``dip`` (flat, with 1 .. 3 consecutive
                   evals at ``U(0.55, 0.8) x P``, then back to P: never below half the peak)
collapse           (collapsing curves only) after at least two evals at the plateau, the true
                   accuracy falls linearly from its level ``L`` to a floor ``U(floor) x L``
                   (default 0 .. 0.25) over ``fall`` evals (default 1 .. 6) and stays there; at
                   least three evals follow the first eval below half the peak
true collapse      the first eval after the fall starts whose true accuracy is below
                   ``fraction`` (0.5) x the curve's true maximum
=================  =========================================================================

A collapse counts as *found* when the detector's step is within one eval interval of the true
collapse step. Pure numpy; :func:`synthetic_set` is deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.stats.detect import EvalPoint

__all__ = ["SyntheticCurve", "SyntheticSpec", "generate", "synthetic_set"]

SHAPES = ("plateau", "drift", "dip")


@dataclass(frozen=True)
class SyntheticSpec:
    """Ranges of the synthetic set (see the module table)."""

    n: int = 32
    plateau: tuple[float, float] = (0.25, 0.7)
    interval: tuple[int, int] = (10, 50)
    evals: tuple[int, int] = (16, 40)
    floor: tuple[float, float] = (0.0, 0.25)
    fall: tuple[int, int] = (1, 6)
    fraction: float = 0.5


@dataclass
class SyntheticCurve:
    """One synthetic run: true accuracy, observed counts and, when planted, the true collapse step."""

    steps: np.ndarray
    true: np.ndarray
    correct: np.ndarray
    n: int
    interval: int
    plateau: float
    shape: str
    collapse_step: int | None = None
    fall: int | None = None
    floor: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def accuracy(self) -> np.ndarray:
        return self.correct / self.n

    def points(self) -> list[EvalPoint]:
        return [EvalPoint(int(s), int(k), self.n) for s, k in zip(self.steps, self.correct)]

    def frame(self):
        """A ``curve.csv``-shaped DataFrame: step, accuracy, n."""
        import pandas as pd

        return pd.DataFrame({"step": self.steps.astype(int), "accuracy": self.accuracy, "n": self.n})


def generate(rng: np.random.Generator, spec: SyntheticSpec, collapse: bool) -> SyntheticCurve:
    """One curve (see the module table). Collapsing draws that leave no room for a fall are redrawn.

    >>> c = generate(np.random.default_rng(0), SyntheticSpec(n=100), collapse=True)
    >>> bool(c.true[c.steps == c.collapse_step][0] < 0.5 * c.true.max())
    True
    """
    while True:
        P = float(rng.uniform(*spec.plateau))
        interval = int(rng.integers(spec.interval[0], spec.interval[1] + 1))
        E = int(rng.integers(spec.evals[0], spec.evals[1] + 1))
        rise = int(rng.integers(2, max(2, E // 3) + 1))
        true = np.empty(E)
        true[: rise + 1] = np.linspace(rng.uniform(0.1, 0.6) * P, P, rise + 1)
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        rest = E - rise - 1
        true[rise + 1 :] = P
        if shape == "drift":
            true[rise + 1 :] = np.linspace(P, P * rng.uniform(0.75, 1.1), rest + 1)[1:]
        elif shape == "dip" and rest >= 3:
            start, width = int(rng.integers(rise + 1, E - 1)), int(rng.integers(1, 4))
            true[start : start + width] = P * rng.uniform(0.55, 0.8)
        true = np.clip(true, 0.0, 1.0)
        steps = np.arange(E) * interval
        if not collapse:
            return SyntheticCurve(steps, true, rng.binomial(spec.n, true), spec.n, interval, P, shape)
        fall = int(rng.integers(spec.fall[0], spec.fall[1] + 1))
        lo, hi = rise + 2, E - 3 - fall  # two plateau evals before; three evals from the crossing on
        if hi < lo:
            continue
        c = int(rng.integers(lo, hi + 1))  # the last eval before the fall
        level = true[c]
        floor = float(rng.uniform(*spec.floor)) * level
        true[c + 1 : c + 1 + fall] = np.linspace(level, floor, fall + 1)[1:]
        true[c + 1 + fall :] = floor
        below = np.flatnonzero((true < spec.fraction * true.max()) & (np.arange(E) > c))
        return SyntheticCurve(steps, true, rng.binomial(spec.n, true), spec.n, interval, P, shape,
                              collapse_step=int(steps[below[0]]), fall=fall, floor=floor / level)


def synthetic_set(count: int, spec: SyntheticSpec | None = None, seed: int = 0,
                  collapse: bool = False) -> list[SyntheticCurve]:
    """``count`` curves of one kind (never collapsing, or with a planted collapse), reproducible by seed.

    >>> a = synthetic_set(3, seed=1)
    >>> b = synthetic_set(3, seed=1)
    >>> all((x.correct == y.correct).all() for x, y in zip(a, b)), {c.collapse_step for c in a}
    (True, {None})
    """
    spec = spec or SyntheticSpec()
    rng = np.random.default_rng([seed, spec.n, int(collapse)])
    return [generate(rng, spec, collapse) for _ in range(count)]
