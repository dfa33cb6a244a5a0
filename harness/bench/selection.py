"""``harness bench selection RUN...``: the winner's curse of selecting on the reported questions, measured.

Reads training runs that evaluated both splits at every eval (``harness train --eval-reported every``)
and compares, run by run, the reported split's accuracy at the step the selection split picks (what the
harness reports by default) with the best reported eval (what selecting on the reported questions would
report); see :mod:`harness.stats.selection`. It also gives what the second split costs: the seconds the
runs spent evaluating each split (``timing`` in ``results.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from harness.core.errors import DataError
from harness.core.record import read_record
from harness.core.rundir import read_curve
from harness.stats.selection import run_selection, selection_bias


def bench_selection(run_dirs: Sequence[Path | str]) -> dict:
    import pandas as pd

    rows, cost = [], {"eval_selection_s": 0.0, "eval_reported_s": 0.0, "wall_s": 0.0}
    for d in map(Path, run_dirs):
        curve = read_curve(d)
        if "test_accuracy" not in curve.columns:
            raise DataError(f"{d}: its curve has no reported-split column (test_accuracy); train with "
                            "--eval-reported every to evaluate both splits at every eval")
        sel = pd.to_numeric(curve["accuracy"], errors="coerce")
        rep = pd.to_numeric(curve["test_accuracy"], errors="coerce")
        both = curve.assign(accuracy=sel, test_accuracy=rep).dropna(subset=["accuracy", "test_accuracy"])
        if both.empty:
            raise DataError(f"{d}: no eval step has both splits")
        rows.append(run_selection(d.name, [int(s) for s in both["step"]], list(both["accuracy"]),
                                  list(both["test_accuracy"])))
        timing = read_record(d).timing or {}
        for k in cost:
            v = timing.get(k)
            if isinstance(v, (int, float)):
                cost[k] += float(v)
    out = selection_bias(rows)
    sel = cost["eval_selection_s"]
    out["cost"] = {**cost, "reported_per_selection_eval_s": cost["eval_reported_s"] / sel if sel else None}
    return out
