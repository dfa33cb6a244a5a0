"""The best trial of a study against the others, paired on the held-out questions (harness.stats.ranking),
and what the study report says when the objective cannot rank anything (the same value in every trial)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.core.rundir import eval_outcomes
from harness.stats.curves import analyze
from harness.stats.ranking import question_scores, versus_best
from harness.sweep.ablation import Ablation
from harness.sweep.trial import objective_value

pytestmark = pytest.mark.tier("unit")

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
        assert res["best"] == 0 and set(rows) == {1, 2} and res["error"] is None
        assert rows[1][-1] == "not separated" and rows[1][4] > 0.05
        assert rows[2][-1] == "below on these questions" and rows[2][4] < 1e-3
        assert rows[2][4] >= rows[2][3]   # Holm: never smaller
        assert rows[2][2].startswith("+0.") and rows[1][5] == N
        assert res["not_below"] == [1] and "step_00005.jsonl is missing" in res["skipped"][3]
    # the best trial itself cannot be scored: no ranking at all (not the runner-up promoted in silence)
    res = versus_best([trials[3], *trials[:3]], "peak", curves)
    assert res["best"] is None and not res["rows"] and "the best trial (3) could not be scored" in res["error"]
    # a trial the shared questions favour over the "best" is not reported as below it
    odd = write_trial(tmp_path, "odd", {0: 20, 5: 60, 10: 60, 20: 60})
    res = versus_best([trials[2], {"number": 9, "run_dir": odd["run_dir"], "peak_step": 5}], "peak",
                      {2: worse["curve"], 9: odd["curve"]})
    assert res["rows"][0][-1] == "above on these questions" and res["not_below"] == [9]


def test_holm_adjustment_is_monotone_and_never_below_the_raw_p():
    from harness.stats.ranking import holm

    raw = [0.001, 0.2, 0.01, 0.04, 0.5]
    adj = holm(raw)
    assert all(a >= r for a, r in zip(adj, raw)) and max(adj) <= 1
    order = sorted(range(len(raw)), key=raw.__getitem__)
    assert [adj[i] for i in order] == sorted(adj)


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
    from harness.report.study import collect
    from harness.report.study_report import write_study_report

    dist = {"reward.retry": optuna.distributions.CategoricalDistribution([0.0, 0.5, 1.0])}

    def make(name: str, runs: list[dict], value) -> Path:
        root = tmp_path / name
        root.mkdir()
        study = optuna.create_study(study_name=name, storage=f"sqlite:///{root / 'study.db'}", direction="maximize")
        study.set_user_attr("objectives", ["auc" if value is None else "peak"])
        for retry, t in zip((0.0, 0.5, 1.0), runs):
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
    assert data.ranking["best"] == 0
    assert [r[-1] for r in data.ranking["rows"]] == ["not separated", "below on these questions"]
    assert data.best_notes and "the best trial (0) is not separated from 1 of the 2 trials" in data.best_notes[0]
    assert not data.best_warnings
    # an auc study compares its arms on auc, not on the peak (which can be the same everywhere)
    assert [c.metric for c in data.comparisons] == ["auc"] and "mean auc" in data.comparisons[0].table.columns
    monkeypatch.chdir(tmp_path)
    page = write_study_report(root, figures_dir=tmp_path / "figs").read_text()
    assert "Best vs the next trials, paired on the held-out questions (auc)" in page
    assert "sqlite:///auc_study/study.db" in page      # the storage named relative to the current directory
    figs = {p.name: p.read_text() for p in (tmp_path / "figs").iterdir()}
    # every figure of the page; one objective: no Pareto front; three trials: no importances
    assert set(figs) == {"curves.svg", "comparison_reward.retry.svg", "parallel.svg", "params.svg"}
    assert all(t.startswith("<?xml") and 'xmlns="http://www.w3.org/2000/svg"' in t for t in figs.values())
    (tmp_path / "auc_report.html").write_text(page)   # kept for the browser test below
    assert "proposed again with the configuration of an earlier trial" in page

    flat = make("flat_study", runs, 0.9)             # every trial "peaks" at 0.9: nothing to rank
    data = collect(f"sqlite:///{flat / 'study.db'}")
    assert data.best_warnings and "Every completed trial (3) has the same peak: 0.9" in data.best_warnings[0]
    assert "auc or final" in data.best_warnings[0] and not data.ranking and not data.importances


@pytest.mark.integration
def test_importances_skip_only_the_constant_objective(tmp_path):
    optuna = pytest.importorskip("optuna")
    from harness.report.study import collect

    dist = {"reward.retry": optuna.distributions.FloatDistribution(0.0, 1.0),
            "train_noise": optuna.distributions.FloatDistribution(0.0, 1.0)}
    study = optuna.create_study(study_name="pc", storage=f"sqlite:///{tmp_path / 'study.db'}",
                                directions=["maximize", "maximize"])
    study.set_user_attr("objectives", ["peak", "collapse_step"])
    for i in range(12):                               # nothing collapsed: collapse_step = last step + 1 everywhere
        r, n = (i % 4) / 3, (i // 4) / 2
        study.add_trial(optuna.trial.create_trial(params={"reward.retry": r, "train_noise": n}, distributions=dist,
                                                  values=[round(0.5 + 0.4 * n - 0.05 * r, 4), 31.0]))
    data = collect(f"sqlite:///{tmp_path / 'study.db'}")
    assert set(data.importances) == {data.objectives[0]}          # peak's importances, not collapse_step's
    assert any("Importances for collapse_step are left out" in n for n in data.notes)
    assert "the same collapse_step: 31" in data.best_warnings[0] and "auc or final" not in data.best_warnings[0]
    assert not any("the same peak" in w for w in data.best_warnings)   # peak varies: no warning about it
    assert "No ranking on peak: the best trial (8) could not be scored" in data.best_warnings[1]  # no run folders


@pytest.mark.integration
def test_an_arm_comparison_says_what_its_rows_pool(tmp_path):
    optuna = pytest.importorskip("optuna")
    from harness.report.study import collect
    from harness.report.study_report import pooled_params, render_study_html

    dist = {"train_noise": optuna.distributions.FloatDistribution(0.0, 0.8, step=0.2),
            "train_noise_mode": optuna.distributions.CategoricalDistribution(["drop_gold", "drop_gold,random"])}
    study = optuna.create_study(study_name="n", storage=f"sqlite:///{tmp_path / 'study.db'}", direction="maximize")
    for i, (noise, mode) in enumerate([(0.2, "drop_gold"), (0.8, "drop_gold"), (0.4, "drop_gold,random")]):
        study.add_trial(optuna.trial.create_trial(params={"train_noise": noise, "train_noise_mode": mode},
                                                  distributions=dist, value=0.5 + 0.1 * i,
                                                  user_attrs={"peak": 0.5 + 0.1 * i, "peak_step": 5}))
    data = collect(f"sqlite:///{tmp_path / 'study.db'}")
    [comp] = data.comparisons
    assert comp.param == "train_noise_mode" and pooled_params(data, comp) == ["train_noise"]
    assert "Each row pools trials that differ in train_noise" in render_study_html(data)


@pytest.mark.integration
@pytest.mark.browser
def test_ranked_study_page_renders_in_headless_chromium(tmp_path, monkeypatch):
    """The page with the ranking table, the duplicates line and an auc comparison, rendered for real."""
    from tests.browser import check_page_in_chromium

    test_study_report_ranks_on_auc_and_warns_on_a_constant_objective(tmp_path, monkeypatch)
    dom = check_page_in_chromium(tmp_path / "auc_report.html", tmp_path / "chromium")
    assert "verdict (eval noise only)" in dom and "AUC accuracy by reward.retry" in dom
