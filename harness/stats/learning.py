"""Did a training run learn? One rule over what the run records, and the likely cause when it did not.

A run *learned* when some held-out eval after step 0 lies above the upper end of step 0's 95% Wilson
interval (the interval every report prints). It *did not learn* (verdict ``flat``) when every later
eval lies inside that interval; ``declined`` when none is above and some are below (the policy
changed, for the worse: see the collapse detector); ``too_short`` before the first eval after step 0.

A flat run gets the first cause of this list that its record supports:

=====================  ========================================================================
cause                  evidence
=====================  ========================================================================
at_ceiling             step 0 already answered every question (nothing left to gain on this eval)
weights_unchanged      the trainable weights did not move at all (``weight_change`` is 0)
no_reward_variance     every group's rewards were equal (``frac_reward_zero_std`` = 1, so the
                       loss is ~0) on at least 90% of the steps: GRPO had no advantage to follow
small_update           the weights moved less than :data:`SMALL_UPDATE` (0.2%) of their norm: the
                       learning rate (or the number of steps) is too small for this model
short_or_noisy         the weights moved and rewards varied, yet no eval left step 0's interval:
                       too few steps, or an eval too small to show the change
=====================  ========================================================================

``weight_change`` is ``||w_t - w_0|| / ||w_0||`` over the trainable weights (``harness train`` writes it
at every eval, measured on a fixed sample of each weight tensor: :mod:`harness.train.weights`).

The threshold of ``small_update`` sits between measured runs of the micro policy (``apollo3_micro``,
preset rezero; docs/detection.md): lr 5e-4 with groups of 8 (the task's defaults, which learn: 0.47 ->
0.90 in 5 steps, 0.94 in 10) moved the weights by 0.87% of their norm in 5 steps and 2.4% in 10; lr 1e-5
with groups of 4 (apollo3's defaults, flat at 0.47 for 10 steps) by 0.051% in 10 steps; lr 1e-7 by
0.0001% in 3 steps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from harness.stats.detect import EvalPoint
from harness.stats.intervals import wilson

__all__ = ["NO_SIGNAL_SHARE", "SMALL_UPDATE", "Learning", "learning_from_curve", "learning_verdict"]

#: Relative weight change below which a flat run's update is called too small (between the measured runs below).
SMALL_UPDATE = 0.002
#: Share of steps without reward variance from which a flat run is blamed on it.
NO_SIGNAL_SHARE = 0.9

CAUSES = {
    "at_ceiling": "step 0 already answered every question: this eval has nothing left to show",
    "weights_unchanged": "the trainable weights did not change at all (every gradient was zero, or nothing "
                         "is trainable)",
    "no_reward_variance": "every group's rewards were equal on {zero_share} of the steps (frac_reward_zero_std = "
                          "1, loss ~ 0): GRPO had no advantage to follow; a larger group (-G), a higher "
                          "temperature or rewards that separate the episodes give it one",
    "small_update": "the weights moved only {change} of their norm in {steps} steps at learning rate {lr}: "
                    "too small a step for this model (raise --lr or train longer; a task's tested recipe is "
                    "its task.yaml's train: defaults)",
    "short_or_noisy": "the weights moved ({change} of their norm) and rewards varied, but no eval left step 0's "
                      "interval: train longer, or evaluate on more questions (an interval here is "
                      "±{half_width} wide)",
}


@dataclass(frozen=True)
class Learning:
    """The verdict on one training run (JSON-friendly through :meth:`to_dict`)."""

    verdict: str                      # learned, flat, declined, too_short
    cause: str | None                 # for flat runs: a key of CAUSES
    message: str                      # one sentence a person reads
    start_accuracy: float | None = None
    start_interval: tuple[float, float] | None = None
    best_step: int | float | None = None
    best_accuracy: float | None = None
    weight_change: float | None = None
    zero_std_share: float | None = None

    @property
    def learned(self) -> bool:
        return self.verdict == "learned"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start_interval"] = list(self.start_interval) if self.start_interval else None
        return d


def _pct(x: float) -> str:
    """A share as a percentage with two significant digits.

    >>> _pct(0.05123), _pct(0.0012), _pct(0.0)
    ('5.1%', '0.12%', '0%')
    """
    if x == 0:
        return "0%"
    return f"{100 * x:.2g}%" if 100 * x < 10 else f"{100 * x:.0f}%"


def _interval(lo: float, hi: float) -> str:
    return f"[{lo:.3f}, {hi:.3f}]"


def learning_verdict(evals: Sequence[EvalPoint], *, zero_std: Sequence[float] = (), weight_change: float | None = None,
                     learning_rate: float | None = None, steps: int | None = None) -> Learning:
    """The verdict on a run from its evals (step 0 first), the per-step ``frac_reward_zero_std`` values, the
    relative weight change at its last eval and the learning rate.

    >>> e = [EvalPoint(0, 47, 100), EvalPoint(5, 90, 100), EvalPoint(10, 94, 100)]
    >>> v = learning_verdict(e, weight_change=0.05)
    >>> v.verdict, v.best_step, v.message
    ('learned', 10, 'learned: accuracy rose from 0.470 [0.375, 0.567] at step 0 to 0.940 at step 10')
    >>> flat = [EvalPoint(0, 47, 100), EvalPoint(5, 47, 100), EvalPoint(10, 48, 100)]
    >>> v = learning_verdict(flat, zero_std=[0.5, 1.0, 0.5, 0.0], weight_change=1e-5, learning_rate=1e-7, steps=10)
    >>> v.verdict, v.cause
    ('flat', 'small_update')
    >>> print(v.message)  # doctest: +NORMALIZE_WHITESPACE
    did not learn: accuracy stayed within step 0's 95% interval (0.470 [0.375, 0.567], n=100) at every later eval
    (best 0.480 at step 10); likely cause: the weights moved only 0.001% of their norm in 10 steps at learning rate
    1e-07: too small a step for this model (raise --lr or train longer; a task's tested recipe is its task.yaml's
    train: defaults)
    >>> learning_verdict(flat, zero_std=[1.0] * 10, weight_change=0.02).cause
    'no_reward_variance'
    >>> learning_verdict(flat, weight_change=0.0).cause
    'weights_unchanged'
    >>> learning_verdict([EvalPoint(0, 47, 100), EvalPoint(5, 20, 100)]).verdict
    'declined'
    >>> learning_verdict([EvalPoint(0, 47, 100)]).verdict
    'too_short'
    """
    if not evals:
        return Learning("too_short", None, "no eval yet: nothing to judge")
    first, later = evals[0], list(evals[1:])
    lo, hi = wilson(first.correct, first.n)
    start: dict[str, Any] = {"start_accuracy": first.accuracy, "start_interval": (lo, hi),
                             "weight_change": weight_change}
    zero = [z for z in zero_std if isinstance(z, (int, float)) and math.isfinite(z)]
    share = sum(z >= 1.0 for z in zero) / len(zero) if zero else None
    start["zero_std_share"] = share
    if not later:
        return Learning("too_short", None, f"no eval after step {first.step} yet: nothing to judge", **start)
    best = max(later, key=lambda p: (p.accuracy, -p.step))
    start.update(best_step=best.step, best_accuracy=best.accuracy)
    at_start = f"{first.accuracy:.3f} {_interval(lo, hi)}"
    if best.accuracy > hi:
        return Learning("learned", None, f"learned: accuracy rose from {at_start} at step {first.step} to "
                        f"{best.accuracy:.3f} at step {best.step}", **start)
    if any(p.accuracy < lo for p in later):
        worst = min(later, key=lambda p: (p.accuracy, p.step))
        return Learning("declined", None, f"got worse: no eval rose above step {first.step}'s 95% interval "
                        f"({at_start}); accuracy fell to {worst.accuracy:.3f} at step {worst.step}", **start)
    cause = _cause(first, weight_change, share)
    values = {"zero_share": _pct(share or 0), "change": _pct(weight_change or 0),
              "steps": steps if steps is not None else best.step,
              "lr": f"{learning_rate:g}" if learning_rate is not None else "this learning rate",
              "half_width": f"{(hi - lo) / 2:.2f}"}
    return Learning("flat", cause, f"did not learn: accuracy stayed within step {first.step}'s 95% interval "
                    f"({at_start}, n={first.n}) at every later eval (best {best.accuracy:.3f} at step {best.step}); "
                    f"likely cause: {CAUSES[cause].format(**values)}", **start)


def _cause(first: EvalPoint, weight_change: float | None, zero_share: float | None) -> str:
    if first.correct == first.n:
        return "at_ceiling"
    if weight_change is not None and weight_change == 0:
        return "weights_unchanged"
    if zero_share is not None and zero_share >= NO_SIGNAL_SHARE:
        return "no_reward_variance"
    if weight_change is not None and weight_change < SMALL_UPDATE:
        return "small_update"
    return "short_or_noisy"


def learning_from_curve(curve: Any, points: Sequence[EvalPoint] | None) -> Learning | None:
    """:func:`learning_verdict` of a ``curve.csv`` DataFrame whose eval points are ``points`` (None when the
    eval size is unknown: no verdict). Reads ``frac_reward_zero_std``, ``learning_rate`` and
    ``weight_change`` (its value at the last eval that has one) when the curve has them."""
    if not points:
        return None

    def column(name: str) -> list[float]:
        if name not in curve.columns:
            return []
        return [float(v) for v in curve[name] if isinstance(v, (int, float)) and math.isfinite(float(v))]

    changes = column("weight_change")
    rates = [v for v in column("learning_rate") if v > 0]
    steps = int(curve["step"].max()) if len(curve) else None
    return learning_verdict(points, zero_std=column("frac_reward_zero_std"),
                            weight_change=changes[-1] if changes else None,
                            learning_rate=max(rates) if rates else None, steps=steps)
