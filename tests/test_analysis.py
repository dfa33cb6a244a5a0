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
from harness.stats.curves import analyze, find_collapse, find_peak, find_zero_step, first_sustained, load_curve

pytestmark = pytest.mark.unit


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


def test_peak_ci_and_json_serialisable():
    c = curve([0, 50, 100], [0.1, 0.4, 0.3], accuracy_ci_low=[0.0, 0.25, 0.2],
              accuracy_ci_high=[0.2, 0.55, 0.4], entropy=[1.0, 1.0, 0.2])
    result = analyze(c)
    assert result["peak_ci"] == [0.25, 0.55]
    assert analyze(curve([0, 50], [0.1, 0.4]))["peak_ci"] is None
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    for key in ("peak_step", "peak", "peak_ci", "collapse_step", "zero_step", "final_step",
                "final_accuracy", "params", "indicators"):
        assert key in result


def test_rows_without_eval_are_ignored():
    steps = np.arange(0, 305, 5)
    acc = np.where(steps % 50 == 0, 0.0, np.nan)
    acc[steps == 100] = 0.4
    acc[steps == 150] = 0.38
    result = analyze(curve(steps, acc))
    assert result["peak_step"] == 100 and result["collapse_step"] == 200 and result["zero_step"] == 200
    assert result["n_evals"] == 7 and result["final_step"] == 300


def test_invalid_parameters():
    c = curve([0, 50], [0.1, 0.2])
    for kwargs in ({"delta": 0}, {"delta": 1.5}, {"m": 0}, {"m": 1.5}, {"smooth": 0}):
        with pytest.raises(ValueError):
            analyze(c, **kwargs)
    with pytest.raises(ValueError, match="no evaluated steps"):
        analyze(curve([0, 50], [np.nan, np.nan]))


def test_first_sustained():
    assert first_sustained([1, 2, 3, 4], [True, False, True, True], 2) == 3
    assert first_sustained([1, 2, 3, 4], [True, False, True, False], 2) is None
    assert first_sustained([], [], 2) is None


# ---------------------------------------------------------------- leading indicators

STEPS = list(range(0, 525, 25))
# Peak 0.5 at step 250; first eval below 0.25 that stays there: step 350.
ACC = [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.42, 0.45, 0.48, 0.5, 0.45, 0.4, 0.3, 0.1] + [0.0] * 6


def indicator_curve(**columns) -> pd.DataFrame:
    return curve(STEPS, ACC, **columns)


def step_fn(before: float, after: float, at: int, blips: dict[int, float] | None = None) -> list[float]:
    values = [before if s < at else after for s in STEPS]
    for step, value in (blips or {}).items():
        values[STEPS.index(step)] = value
    return values


def test_entropy_collapsing_50_steps_early_gives_lead_50():
    result = analyze(indicator_curve(entropy=step_fn(1.0, 0.3, at=300)))
    assert result["collapse_step"] == 350
    entropy = result["indicators"]["entropy"]
    assert entropy["onset_step"] == 300 and entropy["lead_time"] == 50
    assert "entropy" in entropy["rule"]


def test_indicators_only_for_logged_columns():
    assert analyze(indicator_curve())["indicators"] == {}
    assert set(analyze(indicator_curve(kl=[0.01] * len(STEPS)))["indicators"]) == {"kl"}


def test_reward_std_from_component_columns():
    result = analyze(indicator_curve(reward_correctness_std=step_fn(0.4, 0.0, at=275),
                                     reward_format_std=step_fn(0.2, 0.001, at=275)))
    assert result["indicators"]["reward_std"]["onset_step"] == 275
    assert result["indicators"]["reward_std"]["lead_time"] == 75
    assert result["indicators"]["reward_std"]["reference"] == pytest.approx(0.3)


def test_kl_spike_ignores_a_single_blip():
    kl = step_fn(0.01, 0.06, at=325, blips={275: 0.2})
    result = analyze(indicator_curve(kl=kl))
    assert result["indicators"]["kl"]["onset_step"] == 325 and result["indicators"]["kl"]["lead_time"] == 25


def test_searches_explosion_from_a_zero_reference():
    searches = step_fn(0.0, 4.0, at=300, blips={275: 0.5})  # +0.5 is noise, not retry hacking
    result = analyze(indicator_curve(searches_per_episode=searches))
    assert result["indicators"]["searches_per_episode"]["onset_step"] == 300


def test_length_and_format_indicators():
    result = analyze(indicator_curve(completion_length=step_fn(200, 450, at=325),
                                     format_validity=step_fn(0.95, 0.6, at=275)))
    assert result["indicators"]["completion_length"]["lead_time"] == 25
    assert result["indicators"]["format_validity"]["lead_time"] == 75


def test_indicator_logged_every_step_between_evals():
    steps = np.arange(0, 501, 5)
    acc = pd.Series(ACC, index=STEPS).reindex(steps).to_numpy()
    entropy = np.where(steps < 310, 1.0, 0.2)
    result = analyze(curve(steps, acc, entropy=entropy))
    assert result["indicators"]["entropy"]["onset_step"] == 310
    assert result["indicators"]["entropy"]["lead_time"] == 40


def test_no_collapse_means_no_lead_time():
    c = curve(range(0, 300, 50), [0.1, 0.4, 0.35, 0.38, 0.36, 0.4], entropy=[1, 1, 0.1, 0.1, 0.1, 0.1])
    entropy = analyze(c)["indicators"]["entropy"]
    assert entropy["onset_step"] == 100 and entropy["lead_time"] is None


# ---------------------------------------------------------------- loading and hygiene


def test_load_curve_from_dir_or_file_sorted(tmp_path: Path):
    (tmp_path / "curve.csv").write_text("step,accuracy,entropy\n100,0.3,1\n0,0.1,2\n50,,1.5\n")
    for source in (tmp_path, tmp_path / "curve.csv", str(tmp_path)):
        c = load_curve(source)
        assert c["step"].tolist() == [0, 50, 100]
        assert np.isnan(c["accuracy"].iloc[1])
    assert analyze(tmp_path)["peak_step"] == 100


def test_load_curve_names_file_and_missing_column(tmp_path: Path):
    bad = tmp_path / "curve.csv"
    bad.write_text("step,acc\n0,0.1\n")
    with pytest.raises(ValueError, match=r"curve\.csv.*'accuracy'"):
        load_curve(tmp_path)
    bad.write_text("iteration,accuracy\n0,0.1\n")
    with pytest.raises(ValueError, match=r"curve\.csv.*'step'"):
        load_curve(bad)
    with pytest.raises(FileNotFoundError):
        load_curve(tmp_path / "missing")


def test_docstring_examples_run():
    result = doctest.testmod(harness.stats.curves)
    assert result.attempted >= 8 and result.failed == 0


def test_analysis_imports_no_plotting_library():
    code = "import sys, harness.stats.curves; print(sorted(m for m in ('matplotlib', 'seaborn') if m in sys.modules))"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
