"""Peak, collapse, zero-step and leading-indicator detection (harness.stats.curves)."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import harness.stats.curves
from harness.core.errors import DataError
from harness.core.rundir import read_curve
from harness.stats.curves import analyze, find_collapse, find_peak, find_zero_step
from harness.stats.intervals import wilson

pytestmark = pytest.mark.tier("unit")


def curve(steps, accuracy, **columns) -> pd.DataFrame:
    return pd.DataFrame({"step": list(steps), "accuracy": list(accuracy), **columns})


# Rebuilt from the paper's figures, on its 32-question test split (accuracy = k / 32).
# Retry reward: evals every 25 steps, peak 15/32 = 46.88% at step 250, 0% from step 450 on.
RETRY_K = [4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 13, 11, 7, 5, 3, 2, 1] + [0] * 7
RETRY = curve(range(0, 625, 25), np.array(RETRY_K) / 32)
# No retry reward: evals every 50 steps, peak 8/32 = 25.00% at step 350, 0% from step 700 on.
NO_RETRY_K = [2, 3, 4, 4, 5, 6, 7, 8, 7, 6, 3, 2, 1, 1] + [0] * 7
NO_RETRY = curve(range(0, 1050, 50), np.array(NO_RETRY_K) / 32)


@pytest.mark.parametrize("n", [None, 32])  # None: the eval size is inferred from the k/32 accuracies
def test_paper_retry_curve(n):
    result = analyze(RETRY, n=n)
    assert result["method"] == "binomial" and result["n_source"] == ("inferred" if n is None else "argument")
    assert result["peak_step"] == 250
    assert result["peak"] == pytest.approx(0.46875)
    assert result["peak_interval"][0] < 0.46875 < result["peak_interval"][1]
    assert 250 in result["tied_steps"] and 0 not in result["tied_steps"]
    assert result["zero_step"] == 450
    assert 250 < result["collapse_step"] <= 450
    assert result["collapse_step"] == 350  # 5/32 is the first of two evals below half the pooled peak level
    assert 250 < result["collapse_alarm_step"] <= 450
    assert result["final_step"] == 600 and result["final_accuracy"] == 0.0
    exact = analyze(RETRY, method="exact")
    assert exact["collapse_step"] == 325  # 7/32 is the first eval below 7.5/32 and it never recovers


@pytest.mark.parametrize("n", [None, 32])
def test_paper_no_retry_curve(n):
    result = analyze(NO_RETRY, n=n)
    assert result["method"] == "binomial"
    assert result["peak_step"] == 350
    assert result["peak"] == pytest.approx(0.25)
    assert result["zero_step"] == 700
    assert 350 < result["collapse_step"] <= 700
    assert 350 < result["collapse_alarm_step"] <= 700
    assert analyze(NO_RETRY, method="exact")["collapse_step"] == 500


def synthetic(peak_step: int, collapse_step: int, seed: int, peak: float = 0.5) -> pd.DataFrame:
    """Rise to a unique peak, a slow decline above half the peak, a fall at collapse_step, zeros.

    Noise of +-0.02 is added to every non-zero point except the peak; all non-peak points sit at
    least 0.08 below the peak, and the collapse fall lands well under half of it.
    """
    rng = np.random.default_rng(seed)
    steps = np.arange(0, 1001, 25)
    n_before, n_mid = peak_step // 25, (collapse_step - peak_step) // 25 - 1
    n_fall = 6
    clean = np.concatenate([
        np.linspace(0.1, peak - 0.08, n_before), [peak], np.linspace(peak - 0.08, 0.6 * peak, n_mid),
        np.linspace(0.3 * peak, 0.05, n_fall), np.zeros(len(steps) - n_before - 1 - n_mid - n_fall),
    ])
    noisy = np.where(clean > 0, clean + rng.uniform(-0.02, 0.02, len(clean)), 0.0)
    noisy[n_before] = peak
    return curve(steps, np.clip(noisy, 0, 1))


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("peak_step,collapse_step", [(250, 400), (300, 600), (100, 150)])
def test_synthetic_noisy_curves(seed, peak_step, collapse_step):
    c = synthetic(peak_step, collapse_step, seed)
    result = analyze(c)
    assert result["peak_step"] == peak_step
    assert result["collapse_step"] == collapse_step
    assert result["zero_step"] == collapse_step + 6 * 25


@pytest.mark.parametrize("seed", range(50))
def test_noise_alone_is_not_a_collapse(seed):
    rng = np.random.default_rng(seed)
    acc = 0.4 * (1 + rng.uniform(-0.2, 0.2, 40))  # +-20% around 0.4: never below half the peak
    result = analyze(curve(range(0, 2000, 50), acc))
    assert result["collapse_step"] is None
    assert result["zero_step"] is None


def test_isolated_dips_need_m_consecutive_evals():
    acc = [0.2, 0.4, 0.1, 0.35, 0.1, 0.38, 0.3]  # single evals below 0.2, each followed by recovery
    c = curve(range(0, 350, 50), acc)
    assert find_collapse(c) is None
    assert find_collapse(c, m=1) == 100
    assert analyze(c, m=1, method="exact")["collapse_step"] == 100


def test_fall_reaching_the_end_counts_even_if_shorter_than_m():
    c = curve(range(0, 250, 50), [0.2, 0.4, 0.35, 0.3, 0.1])
    assert find_collapse(c, m=3) == 200


def test_delta_and_m_are_configurable_and_recorded():
    c = curve(range(0, 400, 50), [0.2, 0.5, 0.45, 0.34, 0.33, 0.32, 0.3, 0.3])
    assert analyze(c, method="exact")["collapse_step"] is None  # never below 0.25
    result = analyze(c, delta=0.3, m=3, method="exact")  # below 0.35 from step 150 on
    assert result["collapse_step"] == 150
    assert result["params"] == {"delta": 0.3, "m": 3, "smooth": None, "n": None, "mode": "offline"}
    assert result["collapse_threshold"] == pytest.approx(0.35)


def test_monotone_rising_curve_has_no_collapse():
    result = analyze(curve(range(0, 500, 50), np.linspace(0.05, 0.5, 10), entropy=np.ones(10)))
    assert result["peak_step"] == 450
    assert result["collapse_step"] is None and result["zero_step"] is None
    assert result["indicators"]["entropy"] == {**result["indicators"]["entropy"],
                                               "onset_step": None, "lead_time": None}


def test_all_zero_curve():
    result = analyze(curve(range(0, 300, 50), [0.0] * 6))
    assert result["peak"] == 0.0 and result["peak_step"] == 0
    assert result["collapse_step"] is None  # a peak of 0 has nothing to collapse from
    assert result["zero_step"] == 0


def test_ties_take_the_earliest_step():
    assert find_peak(curve([0, 50, 100, 150], [0.1, 0.3, 0.2, 0.3]))["step"] == 50


def test_zero_step_needs_zeros_to_the_end():
    assert find_zero_step(curve([0, 50, 100, 150], [0.2, 0.0, 0.1, 0.0])) == 150
    assert find_zero_step(curve([0, 50, 100], [0.2, 0.0, 0.1])) is None


def test_smoothing_ignores_a_one_eval_spike():
    acc = [0.1, 0.6, 0.1, 0.2, 0.45, 0.5, 0.45, 0.3, 0.1, 0.0]
    c = curve(range(0, 500, 50), acc)
    assert analyze(c)["peak_step"] == 50
    smoothed = analyze(c, smooth=3)
    assert smoothed["peak_step"] == 250
    assert smoothed["peak"] == pytest.approx((0.45 + 0.5 + 0.45) / 3)
    assert smoothed["peak_raw"] == 0.5
    assert smoothed["params"]["smooth"] == 3


def test_peak_interval_is_wilson_from_the_eval_size_and_json_serialisable():
    c = curve([0, 50, 100], [0.1, 0.4, 0.3], n=[20, 20, 20], entropy=[1.0, 1.0, 0.2])
    result = analyze(c)
    assert result["peak_interval"] == pytest.approx(list(wilson(8, 20)))
    smoothed = analyze(c, smooth=2)  # the exact method: the same family, at the step it picks
    assert smoothed["peak_interval"] == pytest.approx(list(wilson(round(smoothed["peak_raw"] * 20), 20)))
    assert analyze(curve([0, 50], [0.1, 0.4]))["peak_interval"] is None  # no eval size known or inferable
    assert "peak_ci" not in result
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    for key in ("peak_step", "peak", "peak_interval", "collapse_step", "zero_step", "final_step",
                "final_accuracy", "params", "indicators"):
        assert key in result


# ---------------------------------------------------------------- loading and hygiene


def test_read_curve_from_dir_or_file_sorted(tmp_path: Path):
    (tmp_path / "curve.csv").write_text("step,accuracy,entropy\n100,0.3,1\n0,0.1,2\n50,,1.5\n")
    for source in (tmp_path, tmp_path / "curve.csv", str(tmp_path)):
        c = read_curve(source)
        assert c["step"].tolist() == [0, 50, 100]
        assert np.isnan(c["accuracy"].iloc[1])
    assert analyze(tmp_path)["peak_step"] == 100


def test_read_curve_names_file_and_missing_column(tmp_path: Path):
    bad = tmp_path / "curve.csv"
    bad.write_text("step,acc\n0,0.1\n")
    with pytest.raises(DataError, match=r"curve\.csv.*'accuracy'"):
        read_curve(tmp_path)
    bad.write_text("iteration,accuracy\n0,0.1\n")
    with pytest.raises(DataError, match=r"curve\.csv.*'step'"):
        read_curve(bad)
    with pytest.raises(FileNotFoundError):
        read_curve(tmp_path / "missing")


@pytest.mark.parametrize("rows, message", [
    ("0,0.1\n5,abc\n", r"line 3: accuracy 'abc' is not a number in \[0, 1\]"),
    ("0,0.1\n5,nan\n", r"line 3: accuracy 'nan'"),
    ("0,0.1\n5,1.5\n", r"line 3: accuracy '1.5'"),
    ("-5,0.1\n5,0.2\n", r"line 2: step '-5' is not a whole number >= 0"),
    ("0,0.1\n2.5,0.2\n", r"line 3: step '2.5'"),
    ("0,0.1\n5,0.2\n5,0.3\n", r"line 4: step 5 appears twice"),
    ("0,0.1\n,0.2\n", r"line 3: step ''"),
])
def test_read_curve_refuses_malformed_rows_with_file_and_line(tmp_path: Path, rows: str, message: str):
    """A curve is never read with rows dropped: analyze must not report peak_step -5 (issue #27)."""
    (tmp_path / "curve.csv").write_text("step,accuracy\n" + rows)
    with pytest.raises(DataError, match=r"curve\.csv " + message):
        read_curve(tmp_path)


def test_read_curve_names_a_file_that_is_not_text(tmp_path: Path):
    """`harness analyze BINARY` printed only "'utf-8' codec can't decode byte ...", naming no file."""
    (tmp_path / "curve.csv").write_bytes(b"step,accuracy\n0,\xd0\xff\n")
    with pytest.raises(DataError, match=r"curve\.csv is not UTF-8 text \(byte \d+\)"):
        read_curve(tmp_path)
    assert read_curve(tmp_path, live=True) is None


def test_read_curve_live_tolerates_a_file_being_written(tmp_path: Path):
    assert read_curve(tmp_path / "curve.csv", live=True) is None          # not there yet
    (tmp_path / "curve.csv").write_text("")
    assert read_curve(tmp_path / "curve.csv", live=True) is None          # created, empty
    (tmp_path / "curve.csv").write_text("step,accuracy,loss\n0,0.25,\n1,,0.5\n2,0.5,0.4\n")
    live = read_curve(tmp_path, live=True)
    assert live["step"].tolist() == [0, 2] and live["accuracy"].tolist() == [0.25, 0.5]  # eval rows only



def test_docstring_examples_run():
    result = doctest.testmod(harness.stats.curves)
    assert result.attempted >= 8 and result.failed == 0


def test_analysis_imports_no_plotting_library():
    code = "import sys, harness.stats.curves; print(sorted(m for m in ('matplotlib', 'seaborn') if m in sys.modules))"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
