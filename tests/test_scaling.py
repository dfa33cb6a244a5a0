"""Sweeps across GPUs and machines: ``--gpus-per-trial`` placement, and a Slurm job array of workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.core.errors import ConfigError
from harness.sweep.placement import parse_visible, place, visible_gpus, worker_env, worker_gpus
from harness.sweep.slurm import check_storage, sbatch_script

pytestmark = pytest.mark.tier("unit")

REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- placement (pure)
def test_each_worker_gets_its_own_gpus_and_never_shares_one():
    for n_gpus in range(1, 9):
        gpus = [str(i) for i in range(n_gpus)]
        for per in range(1, n_gpus + 1):
            for workers in range(1, n_gpus // per + 1):
                slices = place(gpus, workers, per)
                flat = [g for s in slices for g in s]
                assert len(slices) == workers and all(len(s) == per for s in slices)
                assert len(flat) == len(set(flat))              # no GPU in two workers' slices
            with pytest.raises(ConfigError, match=f"needs {(n_gpus // per + 1) * per} GPUs"):
                place(gpus, n_gpus // per + 1, per)


def test_visible_gpus_follow_cuda_visible_devices():
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "3,5,7"}) == ["3", "5", "7"]
    assert worker_gpus(2, 1, {"CUDA_VISIBLE_DEVICES": "3,5,7"}) == [["3"], ["5"]]
    assert worker_gpus(1, 2, {"CUDA_VISIBLE_DEVICES": "GPU-a,GPU-b"}) == [["GPU-a", "GPU-b"]]
    assert worker_gpus(2, None, {}) is None                     # not asked: nothing placed
    assert parse_visible("0,1,") == ["0", "1"]
    with pytest.raises(ConfigError, match="CUDA_VISIBLE_DEVICES hides them all"):
        worker_gpus(1, 1, {"CUDA_VISIBLE_DEVICES": ""})
    assert worker_env(["1"], {"A": "b"}) == {"A": "b", "CUDA_VISIBLE_DEVICES": "1"}
    assert worker_env(None, {"A": "b"}) == {"A": "b"}


def test_slurm_script_needs_a_shared_database_and_runs_one_worker_per_task():
    with pytest.raises(ConfigError, match="database server"):
        check_storage(None)
    script = sbatch_script(["python", "-m", "harness.sweep.runner", "a b.yaml"], tasks=3, job_name="j",
                           log_dir="/l", workdir="/w", gpus=2, env={"HARNESS_DATA_DIR": "/d"})
    assert "#SBATCH --array=0-2" in script and "#SBATCH --gres=gpu:2" in script
    assert "export HARNESS_DATA_DIR=/d" in script
    assert script.rstrip().endswith("""exec python -m harness.sweep.runner 'a b.yaml' "${SLURM_ARRAY_TASK_ID:-0}\"""")


def test_a_slurm_script_never_holds_the_storage_password():
    """Issue 27's trust class: every place a storage URL is written masks its password. A script for a storage
    with a password reads the URL from $HARNESS_SWEEP_STORAGE (Slurm passes the submitter's environment) and
    stops at once, saying so, when it is not set."""
    from harness.sweep.slurm import STORAGE_ENV, Shell, worker_command

    cmd = worker_command("a.yaml", Shell(f'"${STORAGE_ENV}"'), "s", "runs/s", 2, {}, None)
    script = sbatch_script(cmd, tasks=2, job_name="j", log_dir="/l", workdir="/w")
    assert f'"${STORAGE_ENV}" s ' in script and f": \"${{{STORAGE_ENV}:?export {STORAGE_ENV}=" in script
    empty = {k: v for k, v in os.environ.items() if k != STORAGE_ENV}
    p = subprocess.run(["bash", "-c", script.split("\n", 1)[1].replace("cd /w", "cd /").replace("mkdir -p /l", ":")],
                       env=empty, capture_output=True, text=True, check=False)
    assert p.returncode != 0 and f"export {STORAGE_ENV}=the storage URL" in p.stderr


# ----------------------------------------------------------------------------- placement (real processes)
def _grid(tmp_path: Path, name: str) -> Path:
    ab = {"name": name, "task": "apollo3", "preset": "rezero", "base": {"max_steps": 2, "eval_every": 2},
          "search_space": {"seed": {"type": "categorical", "choices": [0, 1]}},
          "objective": "peak", "sampler": {"name": "grid"}, "pruner": {"name": "none"}}
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(ab))
    return p


SMOKE = ["--model", "tiny", "--max-steps", "2", "--eval-every", "2", "--eval-limit", "2", "--set", "warm_start=40",
         "--set", "threads=1", "--set", "max_new_tokens=16", "--set", "max_turns=2", "--set", "num_generations=2",
         "--set", "prompts_per_step=1", "--no-report"]


@pytest.mark.integration
def test_gpus_per_trial_is_refused_in_one_line_on_a_cpu_machine(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    if visible_gpus(env):
        pytest.skip("this machine has GPUs")
    p = subprocess.run([sys.executable, "-m", "harness", "sweep", str(_grid(tmp_path, "g")), "--workers", "2",
                        "--gpus-per-trial", "1", "-o", str(tmp_path / "s")], capture_output=True, text=True, env=env)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "--gpus-per-trial needs CUDA GPUs" in lines[0], p.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.integration
def test_each_worker_s_trials_see_only_its_gpus(data, tmp_path):
    """Two workers, one "GPU" each, named by CUDA_VISIBLE_DEVICES (the only thing placement reads): every
    trial's own record shows the one device its worker was given, and the two workers' devices differ.
    On a machine with real GPUs the same path runs on them (torch sees only the trial's device)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "6,7"}
    p = subprocess.run([sys.executable, "-m", "harness", "sweep", str(_grid(tmp_path, "place")), "--workers", "2",
                        "--gpus-per-trial", "1", "-o", str(tmp_path / "s"), *SMOKE], capture_output=True, text=True,
                       env=env, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    seen = {}
    for rec in (tmp_path / "s" / "trials").glob("trial_*/results.json"):
        machine = json.loads(rec.read_text())["machine"]
        seen[rec.parent.name] = machine["cuda_visible_devices"]
    assert len(seen) == 2 and set(seen.values()) <= {"6", "7"}
    logs = "".join(t.read_text() for t in (tmp_path / "s" / "trials").glob("trial_*/train.log"))
    assert "Traceback" not in logs


# ----------------------------------------------------------------------------- Slurm (real daemons)
@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    from tests.servers import SlurmCluster, slurm_missing

    why = slurm_missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs slurm-wlm and munge: {why}")
        pytest.skip(why)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.postgres
def test_slurm_array_of_two_workers_runs_a_micro_study_to_completion(data, slurm, postgres_url, tmp_path):
    """``harness sweep --print-slurm`` for the smallest micro ablation (micro_retry's grid, cut to 2 trials of
    2 steps): submitted with sbatch to a one-node Slurm, its two array tasks share the PostgreSQL study and
    complete it; each trial's record names the array task that ran it."""
    study = tmp_path / "study"
    args = [sys.executable, "-m", "harness", "sweep", str(REPO / "ablations" / "micro_retry.yaml"), "--storage",
            postgres_url, "--study-name", "slurm_micro", "--workers", "2", "--n-trials", "2", "-o", str(study),
            "--max-steps", "2", "--eval-every", "2", "--eval-limit", "4", "--set", "num_generations=2",
            "--set", "threads=1", "--print-slurm", "--slurm-cpus", "1"]
    p = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr
    script = tmp_path / "job.sh"
    script.write_text(p.stdout)
    assert "#SBATCH --array=0-1" in p.stdout
    job = slurm.sbatch(script)
    slurm.wait(job, timeout=1500)
    import optuna

    trials = optuna.load_study(study_name="slurm_micro", storage=postgres_url).trials
    done = [t for t in trials if t.state.name == "COMPLETE"]
    logs = {f.name: f.read_text() for f in (study / "slurm").glob("*.log")}
    assert len(logs) == 2, logs                                           # both array tasks ran
    assert len(done) == 2, ([t.state.name for t in trials], logs)
    tasks = {json.loads(Path(t.user_attrs["run_dir"], "results.json").read_text())["machine"]["slurm_array_task_id"]
             for t in done}
    assert tasks <= {"0", "1"} and tasks


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.postgres
def test_a_cancelled_array_task_s_trial_is_retried_by_the_other_task(data, slurm, postgres_url, tmp_path):
    """``scancel`` one array task in the middle of its trial: its heartbeat stops, the other task marks the
    trial failed once the grace period is past and runs its parameters again, and the study completes."""
    import time

    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry

    from harness.sweep.study import known_experimental

    study = tmp_path / "study"
    env = {**os.environ, "HARNESS_SWEEP_HEARTBEAT": "1", "HARNESS_SWEEP_GRACE": "5"}  # carried into the script
    args = [sys.executable, "-m", "harness", "sweep", str(REPO / "ablations" / "micro_retry.yaml"), "--storage",
            postgres_url, "--study-name", "slurm_kill", "--workers", "2", "--n-trials", "2", "-o", str(study),
            "--max-steps", "4", "--eval-every", "2", "--eval-limit", "4", "--set", "num_generations=2",
            "--set", "threads=1", "--print-slurm", "--slurm-cpus", "1"]
    p = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    assert "export HARNESS_SWEEP_HEARTBEAT=1" in p.stdout
    script = tmp_path / "job.sh"
    script.write_text(p.stdout)
    job = slurm.sbatch(script)
    victim, task, deadline = None, None, time.time() + 600
    while victim is None and time.time() < deadline:   # a running trial whose training has written its record
        for t in optuna.load_study(study_name="slurm_kill", storage=postgres_url).trials:
            record = Path(t.user_attrs.get("run_dir") or "/nonexistent") / "results.json"
            if t.state.name == "RUNNING" and record.is_file():
                try:
                    task = json.loads(record.read_text())["machine"]["slurm_array_task_id"]
                except (ValueError, KeyError):
                    continue
                victim = t
                break
        time.sleep(0.5)
    assert victim is not None, "no running trial to cancel"
    subprocess.run(["scancel", f"{job}_{task}"], env=slurm.env, check=True)   # the task running it
    slurm.wait(job, timeout=1500)
    trials = optuna.load_study(study_name="slurm_kill", storage=postgres_url).trials
    failed = [t for t in trials if t.state.name == "FAIL"]
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(failed) == 1 and len(done) == 2, [(t.number, t.state.name) for t in trials]
    with known_experimental():
        retried = [t for t in done if Retry.retried_trial_number(t) == failed[0].number]
    assert retried and retried[0].params == failed[0].params
