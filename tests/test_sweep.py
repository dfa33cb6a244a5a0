"""Sweeps end to end: real Optuna studies whose trials are real `harness train` subprocesses (tiny model)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli.app import app
from harness.sweep.study import known_experimental

pytestmark = pytest.mark.tier("integration")

REPO = Path(__file__).resolve().parent.parent
#: A trial small enough for CI: warm start (cached after the first trial), 2 GRPO steps, 4 eval questions.
SMOKE = ["--model", "tiny", "--max-steps", "2", "--eval-every", "2", "--eval-limit", "4",
         "--set", "warm_start=40", "--set", "threads=1", "--set", "max_new_tokens=16", "--set", "max_turns=2",
         "--set", "num_generations=2", "--set", "prompts_per_step=2"]


def _grid(tmp_path, name="grid4"):
    ab = {"name": name, "task": "apollo3", "preset": "rezero", "base": {"max_steps": 2, "eval_every": 2},
          "search_space": {"reward.retry": {"type": "categorical", "choices": [0.0, 1.0]},
                           "seed": {"type": "categorical", "choices": [0, 1]}},
          "objective": "peak", "sampler": {"name": "grid"}, "pruner": {"name": "none"}}
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(ab))
    return p


def _trials(storage, name):
    import optuna

    return optuna.load_study(study_name=name, storage=storage).trials


@pytest.mark.integration
def test_cpu_smoke_sweep_three_trials(data, tmp_path):
    out = tmp_path / "study"
    res = CliRunner().invoke(app, ["sweep", str(REPO / "ablations/retry_vs_baseline.yaml"), "--n-trials", "3",
                                   "-o", str(out), *SMOKE], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["states"] == {"COMPLETE": 3}
    trials = _trials(summary["storage"], "retry_vs_baseline")
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 3      # grid cells, no repeats
    for t in trials:
        assert Path(t.user_attrs["run_dir"], "curve.csv").is_file()
        # the trial's whole configuration is its file; the command names nothing else
        cfg = yaml.safe_load(Path(t.user_attrs["run_dir"], "trial_config.yaml").read_text())
        assert t.user_attrs["command"] == f"harness train --config {t.user_attrs['run_dir']}/trial_config.yaml"
        assert cfg["max_steps"] == 2 and cfg["warm_start"] == 40 and cfg["seed"] == t.params["seed"]
        assert json.loads(Path(t.user_attrs["run_dir"], "config.json").read_text())["train"]["train_noise"] == \
            t.params["train_noise"]
        assert t.user_attrs["peak_step"] is not None and "collapse_step" in t.user_attrs
        assert t.intermediate_values                                           # eval accuracy was reported
    assert (out / "report.html").is_file() and "retry" in (out / "report.html").read_text()
    # resuming the study runs nothing twice
    again = CliRunner().invoke(app, ["sweep", str(REPO / "ablations/retry_vs_baseline.yaml"), "--n-trials", "3",
                                     "-o", str(out), "--no-report", *SMOKE], catch_exceptions=False)
    assert again.exit_code == 0 and len(_trials(summary["storage"], "retry_vs_baseline")) == 3


@pytest.mark.integration
@pytest.mark.postgres
def test_two_workers_share_a_postgres_study(data, tmp_path, postgres_url):
    ab = _grid(tmp_path)
    res = CliRunner().invoke(app, ["sweep", str(ab), "--storage", postgres_url, "--workers", "2", "-o",
                                   str(tmp_path / "s"), "--no-report", *SMOKE], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    trials = _trials(postgres_url, "grid4")
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(done) == 4
    # a race for the last grid cell may leave a record marked "duplicate" (pruned, never run); nothing else
    assert all(t.user_attrs.get("stopped") == "duplicate" for t in trials if t not in done)
    assert len({tuple(sorted(t.params.items())) for t in done}) == 4         # no duplicates
    assert all(Path(t.user_attrs["run_dir"], "curve.csv").is_file() for t in done)   # no lost results


@pytest.mark.integration
@pytest.mark.postgres
def test_killed_worker_trial_fails_and_is_retried(data, tmp_path, postgres_url, monkeypatch):
    from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry

    monkeypatch.setenv("HARNESS_SWEEP_HEARTBEAT", "1")
    monkeypatch.setenv("HARNESS_SWEEP_GRACE", "4")
    ab = _grid(tmp_path, "killme")
    url = postgres_url
    overrides = {"model": "tiny", "max_steps": "2", "eval_every": "2", "eval_limit": "4", "warm_start": "40",
                 "threads": "1", "max_new_tokens": "16", "max_turns": "2", "num_generations": "2",
                 "prompts_per_step": "2"}
    worker = [sys.executable, "-m", "harness.sweep.runner", str(ab), url, "killme", str(tmp_path / "s"), "4",
              json.dumps(overrides), ""]
    victim = subprocess.Popen(worker, env=os.environ.copy())
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            # kill it mid-trial: the trial has its parameters and its train subprocess is running
            if any(t.state.name == "RUNNING" and "run_dir" in t.user_attrs for t in _trials(url, "killme")):
                break
        except KeyError:
            pass
        time.sleep(0.5)
    else:
        victim.kill()
        pytest.fail("the first worker never started a trial")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    time.sleep(6)  # past the grace period: the trial's heartbeat is stale
    subprocess.run(worker, env=os.environ.copy(), check=True, timeout=600)
    trials = _trials(url, "killme")
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(failed) == 1
    with known_experimental():
        retried = [t for t in trials if Retry.retried_trial_number(t) == failed[0].number]
    assert retried and retried[0].state.name == "COMPLETE" and retried[0].params == failed[0].params
    assert sum(t.state.name == "COMPLETE" for t in trials) == 4


# ----------------------------------------------------------------------------- failures, warnings, process hygiene
@pytest.mark.integration
def test_sweep_where_every_trial_fails_exits_nonzero_with_the_first_cause_once(data, tmp_path):
    """Trials that pass validation but fail at run time (their data folder is missing): exit 1, one cause, no trace."""
    ab = _grid(tmp_path, "allfail")
    raw = yaml.safe_load(ab.read_text())
    raw["base"]["data_dir"] = str(tmp_path / "no-data-here")
    raw["search_space"] = {"seed": {"type": "categorical", "choices": [0, 1]}}
    ab.write_text(yaml.safe_dump(raw))
    p = subprocess.run([sys.executable, "-m", "harness", "sweep", str(ab), "-o", str(tmp_path / "s"), "--no-report"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and "ExperimentalWarning" not in p.stderr, p.stderr
    assert p.stderr.count("first failure (trial 0): harness train exited 2: error: ") == 1, p.stderr
    assert "not found in" in p.stderr and "train.log" in p.stderr          # the cause, and where its log is
    assert p.stderr.count("Trial 1 failed") == 1                             # one line per failed trial
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["states"] == {"FAIL": 2} and summary["first_failure"]["number"] == 0


@pytest.mark.integration
def test_bad_ablation_values_stop_the_sweep_before_any_trial(tmp_path):
    ab = _grid(tmp_path, "badvals")
    raw = yaml.safe_load(ab.read_text())
    raw["search_space"]["train_noise"] = {"type": "categorical", "choices": [0.0, 1.5]}
    ab.write_text(yaml.safe_dump(raw))
    res = CliRunner().invoke(app, ["sweep", str(ab), "-o", str(tmp_path / "s")])
    assert res.exit_code != 0 and "search_space.train_noise.choices[1] = 1.5" in str(res.exception)
    res = CliRunner().invoke(app, ["sweep", str(_grid(tmp_path, "badset")), "-o", str(tmp_path / "s"),
                                   "--set", "max_steps=sixty"])
    assert "override max_steps: Input should be a valid integer" in str(res.exception)
    assert not (tmp_path / "s").exists()                                     # no study, no trial directory


WORKER = """
import subprocess, sys, time
code = ("import os, sys, time; from harness.sweep.child import die_with_parent; "
        "die_with_parent(int(sys.argv[2])); open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)")
import os
subprocess.Popen([sys.executable, "-c", code, sys.argv[1], str(os.getpid())], start_new_session=True)
time.sleep(120)
"""


@pytest.mark.integration
def test_trial_process_dies_with_its_worker(tmp_path):
    """A worker killed with SIGKILL takes its trial's process with it (harness.sweep.child, no preexec_fn)."""
    pidfile = tmp_path / "child.pid"
    w = subprocess.Popen([sys.executable, "-c", WORKER, str(pidfile)])
    deadline = time.time() + 60
    while not (pidfile.is_file() and pidfile.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    child = int(pidfile.read_text())
    assert _alive(child)
    w.kill()
    w.wait()
    deadline = time.time() + 10
    while time.time() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"     # a zombie is dead, waiting to be reaped
    except FileNotFoundError:
        return False


@pytest.mark.integration
def test_child_command_execs_harness(tmp_path):
    from harness.sweep.child import command

    p = subprocess.run(command(os.getpid(), ["train", "--config", str(tmp_path / "missing.yaml")]),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "config file not found" in p.stderr


# ----------------------------------------------------------------------------- objective values and the baseline
def _ab(objective="peak", **kw):
    from harness.sweep.ablation import Ablation

    space = kw.pop("search_space", {"seed": {"type": "categorical", "choices": [0, 1]}})
    return Ablation(name="x", objective=objective, search_space=space, **kw)


def _curve(steps, acc):
    import pandas as pd

    return pd.DataFrame({"step": steps, "accuracy": acc})


@pytest.mark.unit
def test_objective_values_final_auc_peak_and_collapse():
    from harness.stats.curves import analyze
    from harness.sweep.trial import objective_value

    curve = _curve([0, 10, 30, 40], [0.2, 0.6, 0.1, 0.0])
    res = analyze(curve, delta=0.5, m=2)
    assert res["peak"] == 0.6 and res["collapse_step"] == 30
    assert objective_value(_ab("final"), curve, res) == 0.0
    assert objective_value(_ab("peak"), curve, res) == 0.6
    # trapezoids: (0.2+0.6)/2*10 + (0.6+0.1)/2*20 + (0.1+0)/2*10 = 4 + 7 + 0.5 = 11.5 over 40 steps
    assert objective_value(_ab("auc"), curve, res) == pytest.approx(11.5 / 40)
    assert objective_value(_ab("peak_and_collapse"), curve, res) == (0.6, 30.0)
    flat = _curve([0, 10, 20], [0.3, 0.4, 0.5])                     # no collapse: one past the last step
    assert objective_value(_ab("peak_and_collapse"), flat, analyze(flat)) == (0.5, 21.0)
    one = _curve([0], [0.25])                                      # one eval: its accuracy
    assert objective_value(_ab("auc"), one, analyze(one)) == 0.25


@pytest.mark.unit
def test_enqueue_baseline_queues_the_preset_weights_once():
    import optuna

    from harness.sweep.study import enqueue_baseline

    space = {"reward.retry": {"type": "float", "low": 0.0, "high": 1.0},          # rezero: 1.0, inside
             "reward.correctness": {"type": "categorical", "choices": [1.0, 2.0]},  # rezero: 4.0, not a choice
             "learning_rate": {"type": "float", "low": 1e-6, "high": 1e-4, "log": True}}
    ab = _ab(search_space=space, sampler={"name": "tpe"})
    study = optuna.create_study(direction="maximize")
    assert enqueue_baseline(study, ab) == {"reward.retry": 1.0}
    assert [t.system_attrs["fixed_params"] for t in study.trials] == [{"reward.retry": 1.0}]
    assert study.trials[0].state.name == "WAITING"
    assert enqueue_baseline(study, ab) is None and len(study.trials) == 1       # a study with trials: nothing
    grid = _ab(search_space={"reward.retry": {"type": "categorical", "choices": [0.0, 1.0]}}, sampler={"name": "grid"})
    assert enqueue_baseline(optuna.create_study(), grid) is None                # a grid covers the cell anyway
    none_inside = _ab(search_space={"reward.retry": {"type": "float", "low": 2.0, "high": 3.0}})
    assert enqueue_baseline(optuna.create_study(), none_inside) is None


@pytest.mark.unit
def test_known_experimental_silences_only_the_features_we_use():
    import warnings

    from optuna.exceptions import ExperimentalWarning

    from harness.sweep.study import known_experimental

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with known_experimental():
            warnings.warn("Argument ``heartbeat_interval`` is an experimental feature.", ExperimentalWarning,
                          stacklevel=1)
            warnings.warn("RetryHeartbeatStaleTrialCallback is experimental (supported from v2.8.0).",
                          ExperimentalWarning, stacklevel=1)
            warnings.warn("SomethingNew is experimental.", ExperimentalWarning, stacklevel=1)
        warnings.warn("Argument ``heartbeat_interval`` is an experimental feature.", ExperimentalWarning,
                      stacklevel=1)
    assert [str(w.message) for w in seen] == ["SomethingNew is experimental.",
                                              "Argument ``heartbeat_interval`` is an experimental feature."]


# ----------------------------------------------------------------------------- duplicates and worker seeds
def _space3():
    return {"reward.retry": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.5}}


@pytest.mark.unit
def test_parallel_workers_draw_different_proposals_and_worker_0_keeps_the_seed():
    import optuna

    from harness.sweep.study import make_sampler

    ab = _ab(search_space={"x": {"type": "float", "low": 0.0, "high": 1.0}}, sampler={"name": "random", "seed": 3})

    def first(sampler):
        study = optuna.create_study(sampler=sampler)
        return [study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}).params["x"] for _ in range(3)]

    assert first(make_sampler(ab, 0)) == first(optuna.samplers.RandomSampler(seed=3))   # worker 0: the ablation's seed
    assert first(make_sampler(ab, 1)) != first(make_sampler(ab, 0))   # the bug: both workers proposed the same


class _NoTraining:
    """A TrialRunner whose training is a function of the parameters (everything else is the real runner)."""

    @staticmethod
    def make(ab, root, overrides=None, ran=None):
        from harness.sweep.trial import TrialRunner

        class Runner(TrialRunner):
            def run(self, trial, params):
                if ran is not None:
                    ran.append(trial.number)
                return float(params["reward.retry"])

        return Runner(ab, root, overrides or {})


@pytest.mark.unit
def test_a_trial_with_the_configuration_of_an_earlier_one_is_not_run_again(tmp_path):
    import optuna

    from harness.sweep.runner import failing_from_the_start
    from harness.sweep.study import claimed
    from harness.sweep.trial import covered_configurations

    ran: list[int] = []
    ab = _ab(search_space=_space3(), sampler={"name": "tpe"})
    study = optuna.create_study(direction="maximize")
    for value in (0.5, 0.5, 1.0):
        study.enqueue_trial({"reward.retry": value})
    study.optimize(_NoTraining.make(ab, tmp_path, ran=ran), n_trials=3)
    states = [(t.number, t.state.name, t.user_attrs.get("duplicate_of")) for t in study.trials]
    assert states == [(0, "COMPLETE", None), (1, "PRUNED", 0), (2, "COMPLETE", None)]
    assert ran == [0, 2] and not (tmp_path / "trials").exists()       # the duplicate started nothing
    assert claimed(study) == 2 and len(study.trials) == 3
    assert covered_configurations(study, ab, {}) == 2 and ab.space_size() == 3
    assert not failing_from_the_start(study, 1)                       # a duplicate is no failure, nor a success
    # the same parameters under another base (a resumed study whose ablation changed) are a new configuration
    changed = _ab(search_space=_space3(), sampler={"name": "tpe"}, base={"max_steps": 7})
    study.enqueue_trial({"reward.retry": 0.5})
    study.optimize(_NoTraining.make(changed, tmp_path, ran=ran), n_trials=1)
    assert study.trials[-1].state.name == "COMPLETE" and ran[-1] == 3
    assert covered_configurations(study, ab, {}) == 2 and covered_configurations(study, changed, {}) == 1


@pytest.mark.unit
def test_only_an_earlier_trial_makes_a_duplicate_and_a_retry_sheds_its_original_attributes(tmp_path):
    import optuna

    from harness.sweep.trial import FINGERPRINT, config_fingerprint

    ab = _ab(search_space=_space3(), sampler={"name": "tpe"})
    study = optuna.create_study(direction="maximize")
    dist = {"reward.retry": optuna.distributions.FloatDistribution(0, 1, step=0.5)}
    fp = config_fingerprint(ab, {"reward.retry": 0.5}, {})
    # two workers started the same configuration at once: trials 0 and 1 both RUNNING with it. Trial 1 stands
    # down for trial 0; trial 0 never stands down for the later trial 1 (before: each named the other)
    for _ in range(2):
        study.add_trial(optuna.trial.create_trial(params={"reward.retry": 0.5}, distributions=dist,
                                                  user_attrs={FINGERPRINT: fp}, state=optuna.trial.TrialState.RUNNING))
    runner = _NoTraining.make(ab, tmp_path)
    assert runner._duplicate(SimpleNamespace(number=0, study=study), fp) is None
    assert runner._duplicate(SimpleNamespace(number=1, study=study), fp).number == 0
    assert runner._duplicate(SimpleNamespace(number=2, study=study), "another configuration") is None
    # a retried trial arrives with the dead trial's attributes, a duplicate mark among them: they are cleared
    study.enqueue_trial({"reward.retry": 1.0}, user_attrs={"stopped": "duplicate", "duplicate_of": 0,
                                                          "run_dir": "trials/trial_0000"})
    study.optimize(_NoTraining.make(ab, tmp_path), n_trials=1)
    retried = study.trials[-1]
    assert retried.state.name == "COMPLETE" and retried.user_attrs.get("stopped") is None
    assert retried.user_attrs.get("duplicate_of") is None and retried.user_attrs.get("run_dir") is None


@pytest.mark.unit
def test_a_resumed_random_sampler_draws_on_instead_of_replaying(tmp_path):
    from harness.sweep.study import default_storage, open_study

    ab = _ab(search_space={"x": {"type": "float", "low": 0.0, "high": 1.0}}, sampler={"name": "random", "seed": 0})
    url = default_storage(tmp_path)
    study = open_study(ab, url, "r")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    again = open_study(ab, url, "r")                                 # the same command run again
    again.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    xs = [t.params["x"] for t in again.trials]
    assert len(set(xs)) == 6                                         # before: the first three, replayed


@pytest.mark.unit
def test_worker_runs_n_distinct_configurations_and_stops_when_the_space_is_exhausted(tmp_path, monkeypatch, caplog):
    import optuna

    from harness.sweep import runner as sweep_runner
    from harness.sweep.study import default_storage, is_duplicate
    from harness.sweep.trial import TrialRunner

    class Runner(TrialRunner):
        def run(self, trial, params):
            return 1.0 - abs(float(params["reward.retry"]) - 0.5)   # TPE keeps coming back to 0.5

    monkeypatch.setattr(sweep_runner, "TrialRunner", Runner)
    ab_path = tmp_path / "ab.yaml"
    ab_path.write_text(yaml.safe_dump({"name": "dups", "task": "apollo3", "search_space": _space3(),
                                       "sampler": {"name": "tpe", "n_startup_trials": 1}, "pruner": {"name": "none"}}))
    url = default_storage(tmp_path)
    sweep_runner.run_worker(str(ab_path), url, "dups", tmp_path, 2, {})
    trials = optuna.load_study(study_name="dups", storage=url).trials
    ran = [t for t in trials if not is_duplicate(t)]
    assert len(ran) == 2 and len({t.params["reward.retry"] for t in ran}) == 2   # two distinct configurations
    # asked for more than the space holds: all 3 configurations run, then the worker stops by itself
    sweep_runner.run_worker(str(ab_path), url, "dups", tmp_path, 10, {})
    trials = optuna.load_study(study_name="dups", storage=url).trials
    ran = [t for t in trials if not is_duplicate(t)]
    assert sorted(t.params["reward.retry"] for t in ran) == [0.0, 0.5, 1.0]
    assert all(t.state.name == "PRUNED" for t in trials if is_duplicate(t))
    assert "all 3 configurations of the search space are covered" in caplog.text


@pytest.mark.unit
def test_an_equivalent_grid_cell_is_skipped_without_ending_the_grid(tmp_path):
    import optuna

    from harness.sweep.study import make_sampler

    space = {"train_noise": {"type": "categorical", "choices": [0.0, 0.5]},
             "train_noise_mode": {"type": "categorical", "choices": ["drop_gold", "random"]}}
    ab = _ab(search_space=space, sampler={"name": "grid", "seed": 4})   # seed 4: the equivalent cell comes 2nd
    ran: list[int] = []

    from harness.sweep.trial import TrialRunner

    class Runner(TrialRunner):
        def run(self, trial, params):
            ran.append(trial.number)
            return float(params["train_noise"])

    study = optuna.create_study(direction="maximize", sampler=make_sampler(ab))
    study.optimize(Runner(ab, tmp_path, {}), n_trials=4)
    # noise 0 under two modes is one configuration: one of the two is pruned, the grid still runs its 3 others
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "COMPLETE", "COMPLETE", "PRUNED"] and len(ran) == 3
    [dup] = [t for t in study.trials if t.state.name == "PRUNED"]
    assert dup.params["train_noise"] == 0.0 and dup.user_attrs["stopped"] == "duplicate"
    assert dup.number < 3                      # not the grid's last cell, so ending the grid there would show


@pytest.mark.unit
def test_a_grid_worker_that_loses_a_race_for_a_cell_still_runs_every_other_cell(tmp_path, monkeypatch):
    """CI caught it: two workers took the first cell at once, the loser's pruned record counted towards the
    grid's budget, and one cell of four never ran."""
    import optuna

    from harness.sweep import runner as sweep_runner
    from harness.sweep.ablation import load_ablation
    from harness.sweep.study import default_storage
    from harness.sweep.trial import FINGERPRINT, TrialRunner, config_fingerprint

    class Runner(TrialRunner):
        def run(self, trial, params):
            return 1.0

    monkeypatch.setattr(sweep_runner, "TrialRunner", Runner)
    ab_path = tmp_path / "grid.yaml"
    ab_path.write_text(yaml.safe_dump({"name": "g", "task": "apollo3", "sampler": {"name": "grid"},
                                       "search_space": {"reward.retry": {"type": "categorical", "choices": [0.0, 1.0]},
                                                        "seed": {"type": "categorical", "choices": [0, 1]}}}))
    ab, url = load_ablation(str(ab_path)), default_storage(tmp_path)
    study = optuna.create_study(study_name="g", storage=url, direction="maximize")
    # the other worker's trial: running the cell (retry 1, seed 0)
    dist = {"reward.retry": optuna.distributions.CategoricalDistribution([0.0, 1.0]),
            "seed": optuna.distributions.CategoricalDistribution([0, 1])}
    params = {"reward.retry": 1.0, "seed": 0}
    study.add_trial(optuna.trial.create_trial(params=params, distributions=dist, state=optuna.trial.TrialState.RUNNING,
                                              user_attrs={FINGERPRINT: config_fingerprint(ab, params, {})}))
    study.enqueue_trial(params)       # this worker's first proposal: the same cell (what a simultaneous start does)
    sweep_runner.run_worker(str(ab_path), url, "g", tmp_path, 4, {})
    trials = optuna.load_study(study_name="g", storage=url).trials
    complete = {(t.params["reward.retry"], t.params["seed"]) for t in trials if t.state.name == "COMPLETE"}
    assert complete == {(0.0, 0), (0.0, 1), (1.0, 1)}           # every cell but the one the other worker runs
    assert any(t.user_attrs.get("stopped") == "duplicate" for t in trials)   # the race did happen


@pytest.mark.unit
def test_search_space_values_are_what_optuna_samples():
    import warnings

    import optuna

    from harness.sweep.ablation import ParamSpec

    for low, high, step in ((0.0, 1.0, 0.5), (0.0, 1.0, 0.35), (0.0, 0.8, 0.2), (1e-4, 1e-3, 3e-4)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # Optuna warns when it shortens a range to a whole number of steps
            dist = optuna.distributions.FloatDistribution(low, high, step=step)
        n_optuna = round((dist.high - dist.low) / step) + 1
        assert len(ParamSpec(type="float", low=low, high=high, step=step).values()) == n_optuna
    assert _ab(search_space={"x": {"type": "float", "low": 0, "high": 1}}).space_size() is None
    assert _ab(search_space={"n": {"type": "int", "low": 1, "high": 4},
                             "m": {"type": "categorical", "choices": ["a", "b"]}}).space_size() == 8
    ab = _ab(search_space={"reward.retry": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.5}})
    assert ab.in_space({"reward.retry": 0.5}) and not ab.in_space({"reward.retry": 0.7})
    with pytest.raises(ValueError, match="needs 'step'"):            # a grid still wants its numeric step said
        ParamSpec(type="int", low=1, high=3).grid_values()
