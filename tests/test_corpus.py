"""The early-warning corpus in tests/data/micro_corpus: real micro runs' curves with labelled collapses.

Guards what the corpus is for: it holds enough collapses to score the detectors and indicators, its
labels follow the stated rule, the offline detector agrees with the labels, and the indicator scoring
runs on it end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.bench.corpus import sustained_drop
from harness.bench.detect import bench_indicators, corpus_runs
from harness.core.rundir import read_curve
from harness.stats.curves import analyze

pytestmark = pytest.mark.tier("unit")

CORPUS = Path(__file__).resolve().parent / "data" / "micro_corpus"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
RUNS = MANIFEST["runs"]


def test_corpus_size_and_collapses():
    collapsed = [n for n, r in RUNS.items() if r["collapse_step"] is not None]
    assert len(RUNS) >= 20 and len(collapsed) >= 8, (len(RUNS), len(collapsed))
    assert all((CORPUS / f"{n}.csv").stat().st_size < 20_000 for n in RUNS)  # small curves, not checkpoints


@pytest.mark.parametrize("name", sorted(RUNS))
def test_labels_follow_the_rule(name):
    curve = read_curve(CORPUS / f"{name}.csv")
    evals = curve[curve["accuracy"].notna()]
    assert sustained_drop(evals["step"].tolist(), evals["accuracy"].tolist()) == RUNS[name]["collapse_step"]
    for key in ("model", "preset", "learning_rate", "seed", "source"):
        assert RUNS[name].get(key) not in (None, ""), (name, key)


def test_offline_detector_agrees_with_the_labels():
    agree = 0
    for name, r in RUNS.items():
        found = analyze(read_curve(CORPUS / f"{name}.csv"))["collapse_step"]
        agree += (found is None) == (r["collapse_step"] is None)
    assert agree / len(RUNS) >= 0.85, f"offline detector agrees with {agree} of {len(RUNS)} labels"


def test_indicator_scoring_runs_on_the_corpus():
    paths, labels = corpus_runs(CORPUS)
    res = bench_indicators(paths, count=20, labels=labels)
    assert res["collapsing_runs"] == sum(r["collapse_step"] is not None for r in RUNS.values())
    assert res["combinations"] and set(res["lead_times"]) == set(res["real"])
    for row in res["combinations"]:
        assert 0 <= row["warned_early"] <= row["collapsing"] == res["collapsing_runs"]
        assert row["false_warnings"] <= row["non_collapsing"] == len(RUNS) - res["collapsing_runs"]
