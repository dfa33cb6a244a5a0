"""How much selecting a checkpoint on the reported questions flatters the reported number.

A training run evaluated on two splits at every eval (``harness train --eval-reported every``) gives,
per eval step t, the selection split's accuracy ``sel_t`` (curve ``accuracy``) and the reported split's
``rep_t`` (curve ``test_accuracy``). Two ways to report the run:

* **optimistic** (the paper's protocol, ``--selection-split test``): ``max_t rep_t``, the best of the
  reported evals; the maximum of noisy evals is biased upward (the winner's curse);
* **honest** (the default): ``rep_s`` at ``s = argmax_t sel_t``, the step the selection split picks
  (the earliest on ties, as :class:`harness.train.peak.PeakKeeper` keeps the first best).

``selection_bias`` gives both per run and their difference, ``optimistic - honest`` (>= 0 by construction
per run; its size is the question), with a Student-t interval over runs. The last eval's reported
accuracy is given too, for runs that are read at their end.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

from harness.stats.intervals import t_interval


@dataclass(frozen=True)
class RunSelection:
    run: str
    evals: int                  # eval steps with both splits
    selected_step: int          # argmax of the selection split
    honest: float               # reported accuracy at selected_step
    optimistic_step: int        # argmax of the reported split
    optimistic: float           # reported accuracy there (its maximum)
    last: float                 # reported accuracy at the last eval
    bias: float                 # optimistic - honest

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_selection(run: str, steps: Sequence[int], selection: Sequence[float],
                  reported: Sequence[float]) -> RunSelection:
    """One run's honest and optimistic numbers from its paired evals (same steps, both splits).

    >>> r = run_selection("a", [0, 5, 10], [0.5, 0.9, 0.8], [0.45, 0.7, 0.85])
    >>> r.selected_step, r.honest, r.optimistic_step, r.optimistic, round(r.bias, 2)
    (5, 0.7, 10, 0.85, 0.15)
    """
    if not (len(steps) == len(selection) == len(reported)) or not steps:
        raise ValueError(f"{run}: needs the same non-empty list of eval steps for both splits")
    s = max(range(len(steps)), key=lambda i: (selection[i], -i))
    o = max(range(len(steps)), key=lambda i: (reported[i], -i))
    return RunSelection(run=run, evals=len(steps), selected_step=int(steps[s]), honest=float(reported[s]),
                        optimistic_step=int(steps[o]), optimistic=float(reported[o]), last=float(reported[-1]),
                        bias=float(reported[o] - reported[s]))


def selection_bias(runs: Sequence[RunSelection]) -> dict[str, Any]:
    """Mean honest, optimistic and last accuracy over runs, and the mean bias with its t interval.

    >>> rows = [run_selection("a", [0, 5], [0.5, 0.9], [0.4, 0.6]), run_selection("b", [0, 5], [0.9, 0.5], [0.4, 0.6])]
    >>> out = selection_bias(rows)
    >>> round(out["bias_mean"], 2), out["runs_with_bias"]
    (0.1, 1)
    """
    n = len(runs)
    if n == 0:
        raise ValueError("no runs with evals of both splits")
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    lo, hi = t_interval([r.bias for r in runs]) if n > 1 else (None, None)
    return {"runs": n, "honest_mean": mean([r.honest for r in runs]),
            "optimistic_mean": mean([r.optimistic for r in runs]), "last_mean": mean([r.last for r in runs]),
            "bias_mean": mean([r.bias for r in runs]), "bias_ci": [lo, hi],
            "runs_with_bias": sum(r.bias > 0 for r in runs), "per_run": [r.to_dict() for r in runs]}
