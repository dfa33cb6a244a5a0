"""What a sweep shows while and after it runs: named objectives (Optuna's metric names, so the dashboard does not
say "Objective 0"), the command-line overrides a study ran under (on every trial and on the study page), and a
progress line per running trial."""

from __future__ import annotations

import logging
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from harness.sweep import runner as sweep_runner
from harness.sweep.study import default_storage
from harness.sweep.trial import TrialRunner, write_trial_config

pytestmark = pytest.mark.tier("unit")


class InstantRunner(TrialRunner):
    """Trials without training: the objective as a function of the parameters."""

    def run(self, trial, params):
        return 0.5 + 0.25 * float(params["seed"])


def _ablation(tmp_path: Path, objective: str = "peak") -> Path:
    path = tmp_path / "ab.yaml"
    path.write_text(yaml.safe_dump({"name": "vis", "task": "apollo3", "objective": objective,
                                    "search_space": {"seed": {"type": "categorical", "choices": [0, 1]}},
                                    "sampler": {"name": "grid"}, "pruner": {"name": "none"}}))
    return path


def test_objectives_are_named_and_overrides_are_on_every_trial_and_the_page(tmp_path, monkeypatch):
    import optuna

    from harness.report.study import collect, study_summary
    from harness.report.study_report import render_study_html

    monkeypatch.setattr(sweep_runner, "TrialRunner", InstantRunner)
    url = default_storage(tmp_path)
    sweep_runner.run_worker(str(_ablation(tmp_path)), url, "vis", tmp_path, 2, {"max_steps": 2, "eval_every": 2})
    study = optuna.load_study(study_name="vis", storage=url)
    assert study.metric_names == ["peak accuracy"]
    assert [t.user_attrs["overrides"] for t in study.trials] == [{"max_steps": 2, "eval_every": 2}] * 2
    data = collect(url)
    assert data.objectives == ["peak accuracy"] and data.best["peak accuracy"].tolist() == [0.75, 0.5]
    page = render_study_html(data)
    assert ("Command-line overrides (not the ablation file as written): eval_every=2, max_steps=2 (every trial)."
            in page)
    assert study_summary(url)["overrides"] == [{"overrides": {"max_steps": 2, "eval_every": 2}, "trials": [0, 1]}]


def test_a_two_objective_study_names_both(tmp_path, monkeypatch):
    import optuna

    class TwoValues(TrialRunner):
        def run(self, trial, params):
            return 0.5, 3.0

    monkeypatch.setattr(sweep_runner, "TrialRunner", TwoValues)
    url = default_storage(tmp_path)
    sweep_runner.run_worker(str(_ablation(tmp_path, "peak_and_collapse")), url, "vis", tmp_path, 1, {})
    study = optuna.load_study(study_name="vis", storage=url)
    assert study.metric_names == ["peak accuracy", "collapse step or end"]
    assert study.trials[0].user_attrs["overrides"] == {}


def _trial_dir(tmp_path: Path, eval_every: int):
    """The ablation and a trial folder with its trial_config.yaml (4 steps), for a stand-in run to write into."""
    from harness.sweep.ablation import load_ablation

    ab = load_ablation(str(_ablation(tmp_path)))
    run_dir = tmp_path / "trial_0000"
    run_dir.mkdir()
    write_trial_config(ab, {"seed": 0}, {"max_steps": 4, "eval_every": eval_every}, run_dir)
    return ab, run_dir


@pytest.mark.integration
def test_a_running_trial_prints_its_step_latest_eval_and_time(tmp_path, monkeypatch, caplog):
    """The trial's process is a stand-in that writes a curve the way harness train does (an eval row, then
    training rows), slowly enough for the progress lines to show."""
    import optuna

    from harness.sweep import trial as trial_module

    monkeypatch.setattr(trial_module, "PROGRESS_S", 0.3)
    ab, run_dir = _trial_dir(tmp_path, eval_every=4)
    writer = textwrap.dedent(f"""
        import time
        rows = ["step,accuracy,n", "0,0.5,32", "1,,", "2,,", "3,,", "4,0.75,32"]
        for i in range(2, len(rows) + 1):
            open({str(run_dir / 'curve.csv')!r}, "w").write("\\n".join(rows[:i]) + "\\n")
            time.sleep(0.8)
    """)
    runner = TrialRunner(ab, tmp_path, {"max_steps": 4})
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    with caplog.at_level(logging.INFO, logger="harness.sweep.trial"):
        _, curve, code = runner._watch(trial, [sys.executable, "-c", writer], run_dir, run_dir / "train.log",
                                       {"seed": 0})
    assert code == 0 and curve["step"].tolist() == [0, 4]
    lines = [r.getMessage() for r in caplog.records if r.name == "harness.sweep.trial"]
    assert any(line.startswith("trial 0 (seed=0): step ") and "/4, latest eval 0.500 at step 0, 0m0" in line
               for line in lines), lines
    assert any("step 3/4" in line or "step 2/4" in line for line in lines), lines


@pytest.mark.integration
def test_the_watcher_reads_the_curve_only_when_the_run_wrote_to_it(tmp_path, monkeypatch):
    """Re-reading and validating the whole curve at every poll cost 15% of a core per worker; the watcher now
    reads it when its size or mtime changed (and once more when the process ends)."""
    import optuna

    from harness.sweep import trial as trial_module

    reads = []
    real = trial_module.read_curve
    monkeypatch.setattr(trial_module, "read_curve", lambda *a, **k: reads.append(1) or real(*a, **k))
    monkeypatch.setattr(trial_module, "POLL_S", 0.02)
    ab, run_dir = _trial_dir(tmp_path, eval_every=2)
    writer = textwrap.dedent(f"""
        import time
        rows = ["step,accuracy,n", "0,0.5,32", "1,,", "2,0.6,32", "3,,", "4,0.75,32"]
        for i in (2, 4, 6):
            open({str(run_dir / 'curve.csv')!r}, "w").write("\\n".join(rows[:i]) + "\\n")
            time.sleep(0.5)
    """)
    trial = optuna.create_study(direction="maximize").ask()
    _, curve, code = TrialRunner(ab, tmp_path, {})._watch(trial, [sys.executable, "-c", writer], run_dir,
                                                          run_dir / "train.log", {"seed": 0})
    assert code == 0 and curve["step"].tolist() == [0, 2, 4] and curve["accuracy"].tolist() == [0.5, 0.6, 0.75]
    # about 75 polls over 1.5 s; 3 writes, the end, and a write caught half-way at most once each
    assert len(reads) <= 8, len(reads)
