"""The best trial of a study against the others, paired on the held-out questions (harness.analysis.ranking),
and what the study report says when the objective cannot rank anything (the same value in every trial)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.analysis.curves import analyze
from harness.analysis.ranking import eval_outcomes, question_scores, versus_best
from harness.sweep.ablation import Ablation
from harness.sweep.trial import objective_value

pytestmark = pytest.mark.unit

STEPS = [0, 5, 10, 20]
N = 60


def write_trial(root: Path, name: str, correct_by_step: dict[int, int]) -> dict:
    """A training run folder: curve.csv and eval_samples/ where the first k questions are right at each step."""
    run = root / name
    (run / "eval_samples").mkdir(parents=True)
    lines = ["step,accuracy,n", "1,,"]        # a training-only row (no accuracy) must be ignored
    for step, k in correct_by_step.items():
        rows = [{"qid": f"q{i:03d}", "correct": i < k} for i in range(N)]
        (run / "eval_samples" / f"step_{step:05d}.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
        lines.append(f"{step},{k / N},{N}")
    (run / "curve.csv").write_text("\n".join(lines) + "\n")
    curve = pd.read_csv(run / "curve.csv")
    return {"run_dir": str(run), "curve": curve, "analysis": analyze(curve)}


def _ab(objective: str) -> Ablation:
    return Ablation(name="x", objective=objective, search_space={"seed": {"type": "categorical", "choices": [0]}})


@pytest.mark.parametrize("objective", ["peak", "final", "auc"])
def test_mean_question_score_is_the_trial_objective(tmp_path, objective):
    t = write_trial(tmp_path, "a", {0: 20, 5: 50, 10: 41, 20: 7})
    evals = t["curve"].dropna(subset=["accuracy"])
    outcomes = eval_outcomes(t["run_dir"], [int(s) for s in evals["step"]])
    scores = question_scores(outcomes, objective, t["analysis"]["peak_step"])
    value = objective_value(_ab(objective), evals.reset_index(drop=True), t["analysis"])
    assert sum(scores.values()) / len(scores) == pytest.approx(value)


def test_best_against_the_rest_paired_verdicts_and_a_trial_without_samples(tmp_path):
    best = write_trial(tmp_path, "best", {0: 20, 5: 54, 10: 54, 20: 54})
    close = write_trial(tmp_path, "close", {0: 20, 5: 52, 10: 52, 20: 52})   # 2 questions fewer: noise
    worse = write_trial(tmp_path, "worse", {0: 20, 5: 30, 10: 30, 20: 30})   # 24 fewer: McNemar p < 1e-6
    broken = write_trial(tmp_path, "broken", {0: 20, 5: 40})
    (Path(broken["run_dir"]) / "eval_samples" / "step_00005.jsonl").unlink()
    trials = [{"number": i, "run_dir": t["run_dir"], "peak_step": t["analysis"]["peak_step"]}
              for i, t in enumerate((best, close, worse, broken))]
    curves = {i: t["curve"] for i, t in enumerate((best, close, worse, broken))}
    for objective in ("peak", "auc"):
        res = versus_best(trials, objective, curves)
        rows = {r[0]: r for r in res["rows"]}
        assert res["best"] == 0 and set(rows) == {1, 2}
        assert rows[1][-1] == "not significantly below" and rows[1][3] > 0.05
        assert rows[2][-1] == "significantly below" and rows[2][3] < 1e-4
        assert rows[2][2].startswith("+0.") and rows[1][4] == N
        assert res["not_below"] == [1] and "step_00005.jsonl is missing" in res["skipped"][3]


def test_question_scores_refuse_what_they_cannot_score():
    from harness.core.errors import DataError

    with pytest.raises(ValueError, match="objective must be one of"):
        question_scores({0: {"a": True}}, "collapse_step")
    with pytest.raises(DataError, match="no eval at the peak step 5"):
        question_scores({0: {"a": True}}, "peak", peak_step=5)


# ----------------------------------------------------------------------------- in the study report
@pytest.mark.integration
def test_study_report_ranks_on_auc_and_warns_on_a_constant_objective(tmp_path, monkeypatch):
    optuna = pytest.importorskip("optuna")
    from harness.analysis.study import collect
    from harness.analysis.study_report import write_study_report

    dist = {"reward.retry": optuna.distributions.CategoricalDistribution([0.0, 0.5, 1.0])}

    def make(name: str, runs: list[dict], value) -> Path:
        root = tmp_path / name
        root.mkdir()
        study = optuna.create_study(study_name=name, storage=f"sqlite:///{root / 'study.db'}", direction="maximize")
        study.set_user_attr("objectives", ["auc" if value is None else "peak"])
        for i, (retry, t) in enumerate(zip((0.0, 0.5, 1.0), runs)):
            evals = t["curve"].dropna(subset=["accuracy"]).reset_index(drop=True)
            v = objective_value(_ab("auc"), evals, t["analysis"]) if value is None else value
            study.add_trial(optuna.trial.create_trial(
                params={"reward.retry": retry}, distributions=dist, value=v,
                user_attrs={"run_dir": t["run_dir"], "peak": t["analysis"]["peak"],
                            "peak_step": t["analysis"]["peak_step"], "stopped": "finished"}))
        # a duplicate: pruned, in no table, counted
        study.add_trial(optuna.trial.create_trial(params={"reward.retry": 0.0}, distributions=dist,
                                                  user_attrs={"stopped": "duplicate", "duplicate_of": 0},
                                                  state=optuna.trial.TrialState.PRUNED))
        return root

    runs = [write_trial(tmp_path / "runs", n, {0: 20, 5: 54, 10: k, 20: k}) for n, k in
            (("a", 54), ("b", 50), ("c", 20))]
    root = make("auc_study", runs, None)
    data = collect(f"sqlite:///{root / 'study.db'}")
    assert data.duplicates == 1 and len(data.done) == 3
    assert data.ranking["best"] == 0 and [r[-1] for r in data.ranking["rows"]] == \
        ["not significantly below", "significantly below"]
    assert data.best_notes and "1 of the 2 trials compared with the best (trial 0)" in data.best_notes[0]
    assert not data.best_warnings
    monkeypatch.chdir(tmp_path)
    page = write_study_report(root, svg_dir=tmp_path / "figs").read_text()
    assert "Best vs the next trials, paired on the held-out questions (auc)" in page
    assert "sqlite:///auc_study/study.db" in page      # the storage named relative to the current directory
    figs = {p.name: p.read_text() for p in (tmp_path / "figs").iterdir()}
    assert {"curves.svg", "parallel.svg"} <= set(figs) and "pareto.svg" not in figs    # one objective: no front
    assert all(t.startswith("<?xml") and 'xmlns="http://www.w3.org/2000/svg"' in t for t in figs.values())
    assert "proposed again with the parameters of an earlier trial" in page

    flat = make("flat_study", runs, 0.9)             # every trial "peaks" at 0.9: nothing to rank
    data = collect(f"sqlite:///{flat / 'study.db'}")
    assert data.best_warnings and "Every completed trial (3) has the same peak: 0.9" in data.best_warnings[0]
    assert not data.ranking and not data.importances
