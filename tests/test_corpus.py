"""The early-warning corpus in tests/data/micro_corpus: real micro runs' curves with labelled collapses.

Guards what the corpus is for: it holds enough collapses to score the detectors and indicators, its
labels follow the stated rule, the offline detector agrees with the labels, and the indicator scoring
runs on it end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.bench.corpus import facts_fingerprint, mark_duplicates, sustained_drop
from harness.bench.detect import bench_indicators, corpus_runs
from harness.core.rundir import read_curve
from harness.stats.curves import analyze

pytestmark = pytest.mark.tier("unit")

CORPUS = Path(__file__).resolve().parent / "data" / "micro_corpus"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
RUNS = MANIFEST["runs"]
#: The runs every corpus reader counts: one per training fingerprint.
DISTINCT = {n: r for n, r in RUNS.items() if not r.get("duplicate_of")}


def test_corpus_size_and_collapses():
    collapsed = [n for n, r in DISTINCT.items() if r["collapse_step"] is not None]
    assert len(DISTINCT) >= 19 and len(collapsed) >= 8, (len(DISTINCT), len(collapsed))
    assert all((CORPUS / f"{n}.csv").stat().st_size < 20_000 for n in RUNS)  # small curves, not checkpoints


def test_one_run_counted_once():
    """explore_trial_0005 and lr_trial_0002 are one training run (same configuration, 50 and 30 steps, evaluated on
    100 and 50 facts): the same fingerprint, bit-identical training rows over the steps they share; the manifest
    marks the second. Study B's `none` seeds 0 and 1 train what the pruning benchmark's lr_trial_0001 and 0004
    trained (rezero, lr 1e-3), longer and evaluated on other facts, and its `lower_lr` seeds 0 and 1 what lr_trial_0005
    and explore_trial_0005 trained (rezero, lr 5e-4): marked too."""
    assert {n: r["duplicate_of"] for n, r in RUNS.items() if r.get("duplicate_of")} == {
        "lr_trial_0002": "explore_trial_0005", "studyB_trial_0000": "lr_trial_0001",
        "studyB_trial_0001": "lr_trial_0004", "studyB2_trial_0009": "lr_trial_0005",
        "studyB2_trial_0010": "explore_trial_0005"}
    a, b = (read_curve(CORPUS / f"{n}.csv") for n in ("explore_trial_0005", "lr_trial_0002"))
    train = ["step", "reward", "reward_std", "frac_reward_zero_std", "loss", "kl", "entropy", "grad_norm",
             "completion_length"]
    shared = a[a["step"].between(1, 30)][train].reset_index(drop=True)
    assert len(shared) == 30 and shared.equals(b[b["step"].between(1, 30)][train].reset_index(drop=True))
    evals_a, evals_b = (c.loc[c["accuracy"].notna(), "accuracy"].tolist()[:4] for c in (a, b))
    assert evals_a != evals_b  # evaluated on 100 and on 50 facts
    fps = [r["training_fingerprint"] for r in DISTINCT.values()]
    assert len(set(fps)) == len(fps)
    assert all(facts_fingerprint(r) == r["training_fingerprint"] for r in RUNS.values())
    assert mark_duplicates(json.loads(json.dumps(RUNS))) == {"lr_trial_0002": "explore_trial_0005",
                                                             "studyB_trial_0000": "lr_trial_0001",
                                                             "studyB_trial_0001": "lr_trial_0004",
                                                             "studyB2_trial_0009": "lr_trial_0005",
                                                             "studyB2_trial_0010": "explore_trial_0005"}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_labels_follow_the_rule(name):
    curve = read_curve(CORPUS / f"{name}.csv")
    evals = curve[curve["accuracy"].notna()]
    assert sustained_drop(evals["step"].tolist(), evals["accuracy"].tolist()) == RUNS[name]["collapse_step"]
    for key in ("model", "preset", "learning_rate", "seed", "source"):
        assert RUNS[name].get(key) not in (None, ""), (name, key)


def test_offline_detector_agrees_with_the_labels():
    agree = 0
    for name, r in DISTINCT.items():
        found = analyze(read_curve(CORPUS / f"{name}.csv"))["collapse_step"]
        agree += (found is None) == (r["collapse_step"] is None)
    assert agree / len(DISTINCT) >= 0.85, f"offline detector agrees with {agree} of {len(DISTINCT)} labels"


def test_indicator_scoring_runs_on_the_corpus():
    paths, labels = corpus_runs(CORPUS)
    res = bench_indicators(paths, count=20, labels=labels)
    assert len(paths) == len(DISTINCT) and not any("lr_trial_0002" in p for p in paths)
    assert res["collapsing_runs"] == sum(r["collapse_step"] is not None for r in DISTINCT.values())
    assert res["combinations"] and set(res["lead_times"]) == set(res["real"])
    for row in res["combinations"]:
        assert 0 <= row["warned_early"] <= row["collapsing"] == res["collapsing_runs"]
        assert row["false_warnings"] <= row["non_collapsing"] == len(DISTINCT) - res["collapsing_runs"]


def test_reconstructed_exploration_curves_match_the_corpus():
    """tests/data/real_curves holds the exploration study's curves read off its committed figures; the 13 that are
    corpus runs too match the corpus curves value for value, so the reconstruction reads the figures right."""
    real = json.loads((CORPUS.parent / "real_curves" / "manifest.json").read_text())["runs"]
    by_fp = {r["training_fingerprint"]: n for n, r in real.items() if n.startswith("explore_")}
    matched = 0
    for name, r in RUNS.items():
        if not name.startswith("explore_"):
            continue
        curve = read_curve(CORPUS / f"{name}.csv")
        acc = curve.loc[curve["accuracy"].notna(), "accuracy"].tolist()
        assert real[by_fp[r["training_fingerprint"]]]["accuracy"] == pytest.approx(acc, abs=1e-9)
        matched += 1
    assert matched == 12
    for name, r in real.items():
        steps = [r["eval_every"] * i for i in range(len(r["accuracy"]))]
        assert sustained_drop(steps, r["accuracy"]) == r["collapse_step"], name


def test_real_curves_leave_out_rollback_runs():
    """A run rescued by --on-collapse rollback has no sustained drop in its logged curve, so it would count as
    a healthy run the online detector stopped: the detector's own decision would be scored against it.
    Study B's rollback seeds 0 and 1 (rolled back at step 20, then recovered) are not read as real curves."""
    from harness.bench.real import load_real_curves

    rollback = {n for n, r in DISTINCT.items() if r.get("on_collapse") == "rollback"}
    assert rollback == {"studyB2_trial_0005", "studyB2_trial_0006"}
    curves, _ = load_real_curves([CORPUS])
    names = {c.name for c in curves}
    assert not names & rollback and len(curves) == len(DISTINCT) - len(rollback)
