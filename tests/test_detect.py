"""Noise-aware detection (harness.stats.detect), its calibration set and paired statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.stats.curves import analyze, eval_points, infer_n
from harness.stats.detect import (
    DetectorConfig,
    EvalPoint,
    OnlineDetector,
    collapse_evidence,
    detect_offline,
    estimate_peak,
    online_alarm,
    significantly_better,
    tied_with,
    weighted_binom_cdf,
)
from harness.stats.intervals import wilson
from harness.stats.paired import compare_paired, mcnemar_exact
from harness.stats.synthetic import SyntheticSpec, synthetic_set

pytestmark = pytest.mark.tier("unit")


def pts(pairs, n=32):
    return [EvalPoint(s, k, n) for s, k in pairs]


# ----------------------------------------------------------------------------- binomial pieces
def test_eval_point_validates_counts():
    with pytest.raises(ValueError, match="correct <= n"):
        EvalPoint(0, 33, 32)
    with pytest.raises(ValueError, match="accuracy must be in"):
        EvalPoint.from_accuracy(0, 1.2, 32)
    with pytest.raises(ValueError, match="positive integer"):
        EvalPoint.from_accuracy(0, 0.5, 0)
    assert EvalPoint.from_accuracy(10, 0.3, 100).correct == 30


def test_wilson_interval_contains_the_estimate_and_shrinks_with_n():
    for k, n in [(0, 32), (16, 32), (32, 32), (30, 100)]:
        lo, hi = wilson(k, n)
        assert 0 <= lo <= k / n <= hi <= 1
    assert np.diff(wilson(50, 100)) < np.diff(wilson(16, 32))


def test_tied_steps_and_significantly_better():
    points = pts([(0, 4), (10, 15), (20, 13), (30, 9), (40, 1)])
    assert tied_with(points, 1) == [False, True, True, True, False]
    peak = estimate_peak(points)
    assert peak.step == 10 and peak.tied_steps == (10, 20, 30)
    assert peak.level == pytest.approx((15 + 13 + 9) / 96)
    assert peak.interval[0] < 15 / 32 < peak.interval[1]
    assert significantly_better(EvalPoint(1, 15, 32), EvalPoint(0, 4, 32))
    assert not significantly_better(EvalPoint(1, 15, 32), EvalPoint(0, 13, 32))


def test_peak_ties_take_the_earliest_step():
    assert estimate_peak(pts([(0, 5), (10, 9), (20, 9)])).step == 10


def test_detector_config_is_validated():
    for bad in ({"fraction": 1.0}, {"alpha": 0}, {"single_alpha": 1}, {"recent_alpha": 0}, {"window": 0},
                {"confirm": 1.5}, {"online_confirm": 0}, {"confirm_fraction": 0.4}):
        with pytest.raises(ValueError):
            DetectorConfig(**bad)


# ----------------------------------------------------------------------------- online
#: The one-eval online rule (the default until 2026-12-07): an eval far below half the level decides alone.
ONE_EVAL = DetectorConfig(online_confirm=1, confirm_fraction=None)


def test_online_detector_stops_at_a_collapse_and_stays_stopped():
    det = OnlineDetector()
    actions = [det.update(s, k / 32, 32).action for s, k in [(0, 5), (25, 14), (50, 15), (75, 13), (100, 2),
                                                                (125, 0), (150, 15)]]
    assert actions == ["continue"] * 5 + ["collapse"] * 2  # confirmed by the second low eval; then latched
    assert det.stop_step == 125
    det = OnlineDetector(ONE_EVAL)
    actions = [det.update(s, k / 32, 32).action for s, k in [(0, 5), (25, 14), (50, 15), (75, 13), (100, 2),
                                                                (125, 0), (150, 15)]]
    assert actions == ["continue"] * 4 + ["collapse"] * 3 and det.stop_step == 100


def test_a_one_eval_dip_never_stops_a_run_by_default():
    """Real micro curves dip deep for one eval and come back (0.97 -> 0.22 -> 0.96): the default waits for a
    second eval below 0.6 x the level (docs/detection.md); the one-eval rule stops on the dip."""
    dip = pts([(0, 47), (5, 90), (10, 95), (15, 97), (20, 97), (25, 96), (30, 22), (35, 96), (40, 96)], n=100)
    assert online_alarm(dip) is None and online_alarm(dip, ONE_EVAL) == 30
    fall = pts([(0, 47), (5, 90), (10, 95), (15, 97), (20, 97), (25, 96), (30, 22), (35, 5), (40, 0)], n=100)
    assert online_alarm(fall) == 35 and online_alarm(fall, ONE_EVAL) == 30  # the confirmation costs one eval
    slow = pts([(0, 47), (5, 90), (10, 95), (15, 97), (20, 97), (25, 55), (30, 30), (35, 10)], n=100)
    assert online_alarm(slow) == 30  # a fall whose previous eval is below 0.6 x the level confirms at once


def test_online_detector_ignores_binomial_noise_around_a_plateau():
    rng = np.random.default_rng(3)
    det = OnlineDetector()
    for i, k in enumerate(rng.binomial(100, 0.5, size=40)):
        det.update(i * 10, k / 100, 100)
    assert det.stop_step is None


def test_one_bad_eval_at_n32_is_not_enough_but_a_fall_is():
    plateau = [(i * 10, k) for i, k in enumerate([10, 12, 9, 11, 10, 12, 11])]
    assert online_alarm(pts(plateau + [(70, 5), (80, 11)])) is None  # 5/32 against a level of ~0.33: noise
    assert online_alarm(pts(plateau + [(70, 1), (80, 0)])) in (70, 80)


def test_weighted_binomial_cdf_is_exact():
    from itertools import product

    from scipy.stats import binom

    n, p = 5, 0.3
    brute = sum(binom.pmf(x, n, p) * binom.pmf(y, 3, p) for x, y in product(range(n + 1), range(4)) if x + 2 * y <= 4)
    assert weighted_binom_cdf(4, [n, 3], [1, 2], p) == pytest.approx(brute)
    assert weighted_binom_cdf(-1, [n], [1], p) == 0 and weighted_binom_cdf(99, [n, 3], [1, 2], p) == pytest.approx(1)
    with pytest.raises(ValueError, match="positive integers"):
        weighted_binom_cdf(1, [n], [0.5], p)


def test_a_borderline_low_eval_is_confirmed_by_the_next_one():
    """The recent count (current eval twice, the previous once) finds a fall whose first low eval is borderline."""
    plateau = [(i * 10, k) for i, k in enumerate([10, 12, 9, 11, 10, 12, 11])]  # level ~0.34: half is 5.4 of 32
    curve = pts(plateau + [(70, 4), (80, 3)])
    peak = estimate_peak(curve)
    assert [collapse_evidence(curve, t, estimate_peak(curve[: t + 1])) for t in (7, 8)] == [None, "recent"]
    assert online_alarm(curve) == 80 and peak.step == 10
    assert online_alarm(pts(plateau + [(70, 4), (80, 9)])) is None  # one low eval that comes back: noise
    assert online_alarm(pts(plateau + [(70, 0)]), ONE_EVAL) == 70  # one-eval rule: an eval far below decides alone
    assert online_alarm(pts(plateau + [(70, 0)])) is None  # the default waits for a second low eval
    det = OnlineDetector()
    det.replay((p.step, p.accuracy, p.n) for p in curve)
    assert det.stop_step == 80 and "recent accuracy" in det.decision.reason


def test_patience_counts_evals_without_a_significantly_better_one():
    det = OnlineDetector(patience=3)
    steps = [(0, 0.2), (10, 0.5), (20, 0.52), (30, 0.5), (40, 0.53)]
    decisions = [det.update(s, a, 100) for s, a in steps]
    assert [d.since_better for d in decisions] == [0, 0, 1, 2, 3]  # 0.52 and 0.53 are not better than 0.5
    assert decisions[-1].action == "patience" and det.stop_step == 40
    with pytest.raises(ValueError, match="increasing step"):
        det.update(40, 0.5, 100)


def test_replay_reaches_the_same_decisions_as_the_live_run():
    curve = synthetic_set(1, SyntheticSpec(n=32), seed=4, collapse=True)[0]
    live = OnlineDetector(patience=5)
    live_actions = [live.update(p.step, p.accuracy, p.n).action for p in curve.points()]
    cut = len(live_actions) // 2
    resumed = OnlineDetector(patience=5)
    resumed.replay((p.step, p.accuracy, p.n) for p in curve.points()[:cut])
    rest = [resumed.update(p.step, p.accuracy, p.n).action for p in curve.points()[cut:]]
    assert live_actions[cut:] == rest and live.stop_step == resumed.stop_step


# ----------------------------------------------------------------------------- offline
def test_offline_a_dip_that_recovers_is_not_a_collapse():
    dip = pts([(0, 5), (25, 14), (50, 15), (75, 13), (100, 1), (125, 0), (150, 14), (175, 13), (200, 15)])
    r = detect_offline(dip)
    assert r["collapse_step"] is None
    assert r["alarm_step"] == 125  # online, the two-eval dip looked like a collapse: the documented difference


def test_offline_collapse_onset_and_fall_to_the_end():
    fall = pts([(0, 5), (25, 14), (50, 15), (75, 13), (100, 12), (125, 3), (150, 1), (175, 0)])
    assert detect_offline(fall)["collapse_step"] == 125
    last = pts([(0, 30), (10, 60), (20, 58), (30, 2)], n=100)
    assert detect_offline(last)["collapse_step"] == 30


def test_offline_never_collapsing_curves():
    flat = pts([(i * 10, k) for i, k in enumerate([3, 8, 10, 9, 12, 7, 9, 6, 11, 10])])
    assert detect_offline(flat)["collapse_step"] is None
    rising = pts([(i * 10, 3 * i) for i in range(10)])
    assert detect_offline(rising)["collapse_step"] is None and detect_offline(rising)["peak"]["step"] == 90


# ----------------------------------------------------------------------------- curves with n
def test_eval_points_sources():
    c = pd.DataFrame({"step": [0, 5, 10], "accuracy": [15 / 32, np.nan, 0.5], "n": [32, np.nan, 32]})
    points, source = eval_points(c)
    assert source == "column" and [p.correct for p in points] == [15, 16]
    assert eval_points(c.drop(columns="n"))[1] == "inferred"
    assert eval_points(c.drop(columns="n").assign(accuracy=[0.25, np.nan, 0.5]))[1] == "unknown"  # quarters
    assert eval_points(c.drop(columns="n"), n=100)[0][0].n == 100
    assert eval_points(pd.DataFrame({"step": [0, 1], "accuracy": [0.1, 0.4]}))[1] == "unknown"


def test_infer_n():
    assert infer_n(np.array([4, 15, 0]) / 32) == 32
    assert infer_n([0.33, 0.5]) == 100
    assert infer_n([1 / 3, 0.5]) is None  # 6 is too coarse to be an eval size
    assert infer_n([np.pi / 10]) is None


def test_analyze_uses_the_n_column(tmp_path: Path):
    c = pd.DataFrame({"step": [0, 10, 20, 30, 40], "accuracy": [0.3, 0.6, 0.55, 0.1, 0.05], "n": 100})
    c.to_csv(tmp_path / "curve.csv", index=False)
    r = analyze(tmp_path)
    assert r["method"] == "binomial" and r["n_source"] == "column" and r["eval_n"] == {"min": 100, "max": 100}
    assert r["collapse_step"] == 30 and r["tied_steps"] == [10, 20]
    assert r["peak_level"] == pytest.approx(0.575)
    assert json.loads(json.dumps(r, allow_nan=False)) == r
    assert analyze(c, mode="online")["collapse_step"] == r["collapse_alarm_step"] == 40  # confirmed at 40
    with pytest.raises(ValueError, match="needs the eval size"):
        analyze(c.drop(columns="n").assign(accuracy=[0.3, 0.6, np.pi / 6, 0.1, 0.05]), method="binomial")
    with pytest.raises(ValueError, match="mode"):
        analyze(c, mode="sometimes")


def test_binomial_noise_alone_is_not_a_collapse_where_the_exact_rule_says_it_is():
    """The case the noise-aware detectors were built for: a plateau at 0.25 on 32 questions, 40 evals."""
    rng = np.random.default_rng(12)
    exact = binomial = 0
    for _ in range(40):
        c = pd.DataFrame({"step": np.arange(40) * 10, "accuracy": rng.binomial(32, 0.25, 40) / 32, "n": 32})
        exact += analyze(c, method="exact")["collapse_step"] is not None
        binomial += analyze(c)["collapse_step"] is not None
    assert binomial == 0 and exact >= 5


# ----------------------------------------------------------------------------- synthetic set
def test_synthetic_collapses_fall_below_half_and_stay():
    for c in synthetic_set(30, SyntheticSpec(n=100), seed=2, collapse=True):
        after = c.true[c.steps >= c.collapse_step]
        assert (after < 0.5 * c.true.max()).all() and len(after) >= 3
    for c in synthetic_set(30, SyntheticSpec(n=100), seed=2):
        assert c.collapse_step is None and c.true.min() >= 0.5 * c.true.max() * 0.1


# ----------------------------------------------------------------------------- paired statistics
def test_mcnemar_exact_matches_the_binomial_test():
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(8, 0) == pytest.approx(2 * 0.5**8)


def test_paired_comparison_one_and_several_seeds():
    rng = np.random.default_rng(0)
    a = rng.random((3, 100)) < 0.6
    b = a.copy()
    b[:, :6] = ~b[:, :6]  # B differs on 6 questions of every seed
    r = compare_paired(a.astype(int), b.astype(int), "retry", "baseline")
    assert r.seeds == 3 and r.questions == 100 and r.test == "permutation"
    assert r.difference == pytest.approx(a.mean() - b.mean())
    assert r.interval[0] <= r.difference <= r.interval[1]
    assert "paired, 3 seeds x 100 questions" in r.sentence()
    assert len(r.per_seed) == 3 and np.mean(r.per_seed) == pytest.approx(r.difference)
    one = compare_paired(a[0].astype(int), a[0].astype(int))
    assert one.difference == 0 and one.p_value == 1.0 and not one.significant
    assert one.sentence().endswith("(paired, 100 questions): not significant")
    with pytest.raises(ValueError, match="shape"):
        compare_paired(a[:2].astype(int), b.astype(int))


def test_a_clear_difference_is_significant():
    a = [1] * 80 + [0] * 20
    b = [1] * 50 + [0] * 50
    r = compare_paired(a, b)
    assert r.significant and r.p_value < 1e-6 and r.interval[0] > 0.15
    assert ", p < 0.001 (paired, 100 questions): significant" in r.sentence()


# ----------------------------------------------------------------------------- runs and the CLI
def _train_run(root: Path, name: str, outcomes_by_step: dict[int, list[int]]) -> Path:
    run = root / name
    (run / "eval_samples").mkdir(parents=True)
    rows = []
    for step, outs in outcomes_by_step.items():
        lines = [json.dumps({"qid": f"q{i:03d}", "correct": bool(o), "step": step}) for i, o in enumerate(outs)]
        (run / "eval_samples" / f"step_{step:05d}.jsonl").write_text("\n".join(lines) + "\n")
        rows.append({"step": step, "accuracy": sum(outs) / len(outs), "n": len(outs)})
    pd.DataFrame(rows).to_csv(run / "curve.csv", index=False)
    return run


def test_analyze_vs_compares_runs_at_their_peaks(tmp_path: Path):
    from harness.cli.app import app

    a = _train_run(tmp_path, "a", {0: [0] * 20, 10: [1] * 18 + [0] * 2, 20: [1] * 5 + [0] * 15})
    b = _train_run(tmp_path, "b", {0: [0] * 20, 10: [1] * 8 + [0] * 12})
    res = CliRunner().invoke(app, ["analyze", str(a), "--vs", str(b), "--names", "retry,baseline"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("retry vs baseline: peak 0.90 vs 0.40, difference 0.50")
    assert "(paired, 20 questions): significant" in res.output
    res = CliRunner().invoke(app, ["analyze", str(a), "--vs", str(b), "--json"])
    assert json.loads(res.output)["test"] == "mcnemar"
    plain = CliRunner().invoke(app, ["analyze", str(a)])
    assert "tied with the peak" in plain.output and "(column)" in plain.output


def test_eval_run_outcomes_need_one_policy(tmp_path: Path):
    from harness.core.errors import DataError
    from harness.core.rundir import outcomes

    rows = [{"qid": f"q{i}", "correct": i % 2 == 0, "policy": p, "noise_level": 0.0} for p in ("x", "y")
            for i in range(4)]
    (tmp_path / "samples.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(DataError, match="choose one"):
        outcomes(tmp_path)
    assert outcomes(tmp_path, policy="y").outcomes == {"q0": True, "q1": False, "q2": True, "q3": False}


# ----------------------------------------------------------------------------- leading indicators against chance
def _indicator_case(name, collapse, kl_jump_at=None):
    from harness.stats.indicators import RunCase

    steps = np.arange(0, 41)
    acc = np.full(41, np.nan)
    acc[::4] = [0.3, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    if collapse is not None:
        acc[(steps % 4 == 0) & (steps >= collapse)] = 0.0
    kl = np.where(steps >= (kl_jump_at or 10**6), 1.0, 0.01)
    return RunCase(name, pd.DataFrame({"step": steps, "accuracy": acc, "kl": kl}), 8, collapse, 4)


def test_indicator_rates_count_early_warnings_and_false_ones():
    from harness.stats.indicators import indicator_rates

    rates = indicator_rates([_indicator_case("a", 32, kl_jump_at=20), _indicator_case("b", 32, kl_jump_at=30),
                             _indicator_case("c", None, kl_jump_at=20), _indicator_case("d", None)])["kl"]
    counts = (rates["collapsing"], rates["warned_early"], rates["non_collapsing"], rates["false_warnings"])
    assert counts == (2, 1, 2, 1)
    assert rates["runs"]["b"]["outcome"] == "late" and rates["runs"]["d"]["outcome"] == "quiet"


def test_null_model_matches_scale_and_autocorrelation():
    from harness.stats.indicators import NullModel, fit_null, null_curve

    model = NullModel(mean=1.0, sd=0.2, rho=0.8, low=0.0, high=5.0, every_step=True)
    x = model.sample(np.random.default_rng(0), 20000)
    assert x.mean() == pytest.approx(1.0, abs=0.03) and x.std() == pytest.approx(0.2, rel=0.05)
    assert np.corrcoef(x[:-1], x[1:])[0, 1] == pytest.approx(0.8, abs=0.03)
    curves = [pd.DataFrame({"step": np.arange(50), "accuracy": 0.5, "kl": model.sample(np.random.default_rng(s), 50)})
              for s in range(3)]
    fitted = fit_null(curves)["kl"]
    assert fitted.every_step and 0.5 < fitted.rho < 0.95
    frame = null_curve(np.random.default_rng(1), np.array([0, 10, 20]), np.array([0.1, 0.5, 0.4]), {"kl": fitted})
    assert len(frame) == 21 and frame["accuracy"].notna().sum() == 3 and frame["kl"].notna().all()


def test_verdicts_keep_only_what_beats_chance():
    from harness.stats.indicators import verdicts

    real = {"kl": {"collapsing": 10, "warned_early": 9, "false_warning_rate": 0.1},
            "entropy": {"collapsing": 10, "warned_early": 5, "false_warning_rate": 0.1}}
    chance = {"kl": {"warned_early_rate": 0.3, "false_warning_rate": 0.3},
              "entropy": {"warned_early_rate": 0.5, "false_warning_rate": 0.3}}
    v = verdicts(real, chance)
    assert v["kl"]["verdict"] == "keep" and v["entropy"]["verdict"] == "demote"
