"""The training curve (``curve.csv``) and the fault monitor that watches it.

One row per optimisation step with the training statistics TRL logged; rows of eval steps (and the
step-0 row, which has no training statistics) also carry the selection split's metrics (what the
peak, the stopping rules and sweeps read) and, at the steps where the reported split was evaluated
(a new best, the end), its headline metrics prefixed ``test_``. Column names are the ones
:mod:`harness.report.run_report` and :mod:`harness.stats.curves` read:

    step, accuracy, accuracy_ci_low, accuracy_ci_high, n (questions evaluated),
    <every other scalar metric of compute_metrics>,
    test_accuracy, test_accuracy_ci_low, test_accuracy_ci_high, test_n (+ test_pass_at_k, test_maj_at_k),
    reward_<name>_mean, reward_<name>_std (within-group), reward, reward_std, frac_reward_zero_std,
    loss, kl, entropy, grad_norm, learning_rate, clip_ratio, completion_length, wall_time

The file is rewritten whole through a temp file and rename after every row, so a killed run leaves
a complete CSV, and a resumed run keeps exactly the rows up to its checkpoint.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from harness.core.io import atomic_write_text
from harness.core.record import SplitEval

#: Columns always written first, in this order. ``n`` (questions evaluated) makes every eval a binomial
#: draw the detectors of :mod:`harness.stats.detect` can weigh.
LEADING = ("step", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "n")
#: Training statistics: our column <- TRL's logged key.
TRL_KEYS = {"reward": "reward", "reward_std": "reward_std", "frac_reward_zero_std": "frac_reward_zero_std",
            "loss": "loss", "kl": "kl", "entropy": "entropy", "grad_norm": "grad_norm",
            "learning_rate": "learning_rate", "clip_ratio": "clip_ratio/region_mean",
            "completion_length": "completions/mean_length", "frac_groups_dropped": "frac_groups_dropped"}


def eval_columns(metrics: dict[str, Any]) -> dict[str, Any]:
    """The scalar metrics of :func:`harness.scoring.metrics.compute_metrics` (eval reward stats are left to the
    eval samples, so ``reward_<name>_std`` always means the training within-group std); ``n`` is the
    questions evaluated (with K samples each: ``n_questions``, what each eval's binomial draw is over).

    >>> eval_columns({"n": 8, "n_questions": 2, "accuracy": 0.5, "reward_format": 1.0, "searches_hist": {}})
    {'n': 2, 'accuracy': 0.5}
    """
    out = {k: v for k, v in metrics.items()
           if not isinstance(v, (dict, list)) and not k.startswith("reward_") and k != "n_questions"}
    if "n_questions" in metrics:
        out["n"] = metrics["n_questions"]
    return out


#: The reported split's columns of an eval row (prefixed ``test_`` in the curve).
REPORTED = ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "n", "pass_at_k", "maj_at_k")
PREFIX = "test_"


def reported_columns(metrics: dict[str, Any]) -> dict[str, Any]:
    """The reported split's headline metrics as curve columns.

    >>> reported_columns({"n": 32, "accuracy": 0.5, "accuracy_ci_low": 0.3, "accuracy_ci_high": 0.7, "retry_rate": 1})
    {'test_accuracy': 0.5, 'test_accuracy_ci_low': 0.3, 'test_accuracy_ci_high': 0.7, 'test_n': 32}
    """
    cols = eval_columns(metrics)
    return {PREFIX + k: cols[k] for k in REPORTED if k in cols}


def reported_eval(row: dict[str, Any], split: str) -> SplitEval | None:
    """The reported split's eval in a curve row, or None where it was not evaluated.

    >>> reported_eval({"step": 5, "test_accuracy": 0.5, "test_accuracy_ci_low": 0.3, "test_accuracy_ci_high": 0.7,
    ...                "test_n": 32}, "test")
    SplitEval(split='test', step=5, accuracy=0.5, interval=(0.3, 0.7), n=32)
    """
    acc = row.get(PREFIX + "accuracy")
    if not isinstance(acc, (int, float)) or isinstance(acc, bool) or math.isnan(acc):
        return None
    lo, hi, n = (row.get(PREFIX + k) for k in ("accuracy_ci_low", "accuracy_ci_high", "n"))
    ok = all(isinstance(x, (int, float)) and not math.isnan(x) for x in (lo, hi))
    return SplitEval(split=split, step=int(row["step"]), accuracy=float(acc), interval=(lo, hi) if ok else None,
                     n=int(n) if isinstance(n, (int, float)) and not math.isnan(n) else None)


def train_columns(logs: dict[str, Any], rewards: list[str], rollout_stats: dict[str, float]) -> dict[str, Any]:
    """Map one step's TRL logs (and our rollout statistics) to curve columns."""
    row = {col: logs.get(key) for col, key in TRL_KEYS.items()}
    if row["frac_groups_dropped"] is None:  # only runs with --drop-zero-std-groups log it
        row.pop("frac_groups_dropped")
    for name in rewards:
        row[f"reward_{name}_mean"] = logs.get(f"rewards/{name}/mean", rollout_stats.get(f"reward_{name}_mean"))
        row[f"reward_{name}_std"] = rollout_stats.get(f"reward_{name}_std")
    for key in ("train_noise_level", "logp_correct"):
        if key in rollout_stats:
            row[key] = rollout_stats[key]
    return row


def _fmt(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return v


class CurveWriter:
    """Holds the curve's rows and rewrites ``curve.csv`` atomically on every change."""

    def __init__(self, path: Path, rows: list[dict] | None = None):
        self.path = Path(path)
        self.rows: list[dict] = rows or []

    @classmethod
    def resume(cls, path: Path, up_to_step: int) -> "CurveWriter":
        """Rows already written for steps <= ``up_to_step`` (the checkpoint being resumed)."""
        rows = []
        if Path(path).is_file():
            with open(path, newline="", encoding="utf-8") as f:
                for r in csv.DictReader(f):
                    row = {k: _parse(v) for k, v in r.items()}
                    if row["step"] <= up_to_step:
                        rows.append(row)
        return cls(path, rows)

    def upsert(self, step: int, values: dict[str, Any]) -> dict:
        """Merge ``values`` into the row of ``step`` (creating it) and rewrite the file."""
        row = next((r for r in self.rows if r["step"] == step), None)
        if row is None:
            row = {"step": step}
            self.rows.append(row)
            self.rows.sort(key=lambda r: r["step"])
        row.update(values)
        self.write()
        return row

    def columns(self) -> list[str]:
        seen = dict.fromkeys(LEADING)
        for r in self.rows:
            seen.update(dict.fromkeys(r))
        seen.pop("wall_time", None)
        return [*seen, "wall_time"]

    def write(self) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns(), extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: _fmt(v) for k, v in r.items()})
        atomic_write_text(self.path, buf.getvalue())

    def peak(self) -> dict | None:
        """First step with the highest accuracy: ``{"step", "accuracy"}``."""
        evals = [r for r in self.rows if isinstance(r.get("accuracy"), (int, float))]
        if not evals:
            return None
        best = max(evals, key=lambda r: (r["accuracy"], -r["step"]))
        return {"step": best["step"], "accuracy": best["accuracy"]}

    def last_eval(self) -> dict | None:
        evals = [r for r in self.rows if isinstance(r.get("accuracy"), (int, float))]
        return evals[-1] if evals else None


def _parse(v: str) -> Any:
    if v == "" or v is None:
        return None
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f


class FaultMonitor:
    """Detects training faults from each step's logs; returns a fault dict when one starts.

    - ``non_finite``: the loss or gradient norm is NaN/inf (the run must stop: status ``diverged``)
    - ``kl_explosion``: the logged KL exceeds ``kl_alarm`` (recorded once per excursion)
    - ``zero_reward_variance``: every group had identical rewards for ``patience`` consecutive steps
      (no learning signal; recorded once per streak)
    """

    def __init__(self, kl_alarm: float = 10.0, patience: int = 10):
        self.kl_alarm = kl_alarm
        self.patience = patience
        self._zero_streak = 0
        self._kl_high = False

    def check(self, step: int, logs: dict[str, Any]) -> list[dict]:
        faults = []
        for key in ("loss", "grad_norm"):
            v = logs.get(key)
            if isinstance(v, (int, float)) and not math.isfinite(v):
                faults.append({"step": step, "kind": "non_finite", "detail": f"{key} = {v}"})
        kl = logs.get("kl")
        high = isinstance(kl, (int, float)) and (not math.isfinite(kl) or kl > self.kl_alarm)
        if high and not self._kl_high:
            faults.append({"step": step, "kind": "kl_explosion", "detail": f"kl = {kl} > {self.kl_alarm}"})
        self._kl_high = high
        if logs.get("frac_reward_zero_std") == 1.0:
            self._zero_streak += 1
            if self._zero_streak == self.patience:
                faults.append({"step": step, "kind": "zero_reward_variance",
                               "detail": f"no reward variance in any group for {self.patience} steps"})
        else:
            self._zero_streak = 0
        return faults

    def state_dict(self) -> dict[str, Any]:
        """The streaks in progress, checkpointed so a resumed run reports the same faults.

        >>> m = FaultMonitor(patience=3)
        >>> _ = m.check(1, {"frac_reward_zero_std": 1.0})
        >>> m.state_dict()
        {'zero_streak': 1, 'kl_high': False}
        """
        return {"zero_streak": self._zero_streak, "kl_high": self._kl_high}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._zero_streak = int(state.get("zero_streak", 0))
        self._kl_high = bool(state.get("kl_high", False))
