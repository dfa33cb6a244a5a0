"""The winner's-curse measurement (harness.stats.selection, harness bench selection) on written curves."""

from __future__ import annotations

import json

import pytest

from harness.bench.selection import bench_selection
from harness.core.errors import DataError
from harness.stats.selection import run_selection, selection_bias

pytestmark = pytest.mark.tier("unit")


def test_honest_reads_the_reported_split_at_the_selection_argmax_and_ties_keep_the_first():
    r = run_selection("r", [0, 5, 10, 15], [0.5, 0.9, 0.9, 0.7], [0.4, 0.6, 0.8, 0.9])
    assert (r.selected_step, r.honest) == (5, 0.6)           # the first of the tied selection bests
    assert (r.optimistic_step, r.optimistic, r.last) == (15, 0.9, 0.9)
    assert r.bias == pytest.approx(0.3)


def test_bias_is_zero_when_both_splits_agree_and_the_interval_covers_the_mean():
    same = [run_selection(f"s{i}", [0, 5, 10], [0.2, 0.8, 0.5], [0.3, 0.7, 0.6]) for i in range(3)]
    out = selection_bias(same)
    assert out["bias_mean"] == 0 and out["runs_with_bias"] == 0 and out["bias_ci"] == [0.0, 0.0]
    mixed = selection_bias([run_selection("a", [0, 5], [0.5, 0.9], [0.4, 0.6]),
                            run_selection("b", [0, 5], [0.9, 0.5], [0.4, 0.6]),
                            run_selection("c", [0, 5], [0.9, 0.5], [0.5, 0.7])])
    lo, hi = mixed["bias_ci"]
    assert lo < mixed["bias_mean"] < hi and mixed["runs_with_bias"] == 2


def test_mismatched_or_empty_evals_are_refused():
    with pytest.raises(ValueError, match="same non-empty"):
        run_selection("r", [0, 5], [0.5], [0.4, 0.6])
    with pytest.raises(ValueError, match="no runs"):
        selection_bias([])


def _run(tmp_path, name, rows, timing):
    d = tmp_path / name
    d.mkdir()
    lines = ["step,accuracy,n,test_accuracy,test_n"] + [",".join(map(str, r)) for r in rows]
    (d / "curve.csv").write_text("\n".join(lines) + "\n")
    record = {"schema_version": 2, "kind": "train", "task": {"name": "apollo3_micro"}, "status": "complete",
              "timing": timing}
    (d / "results.json").write_text(json.dumps(record))
    return d


def test_bench_reads_run_directories_skips_rows_without_both_splits_and_sums_the_cost(tmp_path):
    a = _run(tmp_path, "a", [(0, 0.5, 100, 0.45, 107), (1, "", "", "", ""), (5, 0.9, 100, 0.7, 107),
                             (10, 0.8, 100, 0.85, 107)], {"eval_selection_s": 3.0, "eval_reported_s": 3.3})
    b = _run(tmp_path, "b", [(0, 0.5, 100, 0.5, 107), (5, 0.6, 100, 0.5, 107)],
             {"eval_selection_s": 1.0, "eval_reported_s": 1.1})
    out = bench_selection([a, b])
    assert out["runs"] == 2 and [r["selected_step"] for r in out["per_run"]] == [5, 5]
    assert out["per_run"][0]["bias"] == pytest.approx(0.15) and out["per_run"][1]["bias"] == 0
    assert out["cost"]["reported_per_selection_eval_s"] == pytest.approx(1.1)


def test_bench_refuses_a_curve_without_the_reported_split(tmp_path):
    d = tmp_path / "old"
    d.mkdir()
    (d / "curve.csv").write_text("step,accuracy,n\n0,0.5,100\n")
    with pytest.raises(DataError, match="--eval-reported every"):
        bench_selection([d])
