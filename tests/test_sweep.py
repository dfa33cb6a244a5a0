"""Sweeps end to end: real Optuna studies whose trials are real `harness train` subprocesses (tiny model)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli.app import app

pytestmark = pytest.mark.integration

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
        assert t.user_attrs["peak_step"] is not None and "collapse_step" in t.user_attrs
        assert t.intermediate_values                                           # eval accuracy was reported
    assert (out / "report.html").is_file() and "retry" in (out / "report.html").read_text()
    # resuming the study runs nothing twice
    again = CliRunner().invoke(app, ["sweep", str(REPO / "ablations/retry_vs_baseline.yaml"), "--n-trials", "3",
                                     "-o", str(out), "--no-report", *SMOKE], catch_exceptions=False)
    assert again.exit_code == 0 and len(_trials(summary["storage"], "retry_vs_baseline")) == 3


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
    retried = [t for t in trials if Retry.retried_trial_number(t) == failed[0].number]
    assert retried and retried[0].state.name == "COMPLETE" and retried[0].params == failed[0].params
    assert sum(t.state.name == "COMPLETE" for t in trials) == 4
