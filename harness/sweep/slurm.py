"""A Slurm job array whose tasks are the workers of one Optuna study (``harness sweep ... --print-slurm``).

Each array task runs :func:`harness.sweep.runner.run_worker` (``python -m harness.sweep.runner``) on the
same study in a shared database, with ``SLURM_ARRAY_TASK_ID`` as its worker index (the sampler's seed
offset): the tasks claim trials from the study until its budget is spent, exactly like ``--workers``
on one machine. The storage must be a server every node reaches (PostgreSQL or MySQL): SQLite on a
network file system is refused. ``--gpus-per-trial G`` asks Slurm for ``--gres=gpu:G`` per task, and
Slurm sets each task's ``CUDA_VISIBLE_DEVICES``, so no two trials share a GPU.

A killed task (``scancel``, a pre-empted or failed node) leaves its trial RUNNING with a heartbeat
that stops; once the heartbeat is stale another task (or a resubmission of the same script) marks it
failed and Optuna's ``RetryFailedTrialCallback`` queues its parameters again
(:func:`harness.sweep.study.make_storage`), so the study still completes every configuration.

>>> print(sbatch_script(["python", "-m", "harness.sweep.runner", "a.yaml"], tasks=2, job_name="s",
...                     log_dir="runs/s/slurm", workdir="/w", cpus=4, gpus=1, time_limit="02:00:00"), end="")
#!/bin/bash
#SBATCH --job-name=s
#SBATCH --array=0-1
#SBATCH --cpus-per-task=4
#SBATCH --output=runs/s/slurm/%A_%a.log
#SBATCH --gres=gpu:1
#SBATCH --time=02:00:00
# One Optuna worker per array task (harness.sweep.slurm); resubmit this script to add workers or resume.
set -euo pipefail
cd /w
mkdir -p runs/s/slurm
exec python -m harness.sweep.runner a.yaml "${SLURM_ARRAY_TASK_ID:-0}"
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError

log = logging.getLogger(__name__)

#: The variable the array's tasks read a storage URL with a password from: the script never holds the password.
STORAGE_ENV = "HARNESS_SWEEP_STORAGE"


class Shell(str):
    """A word of the script's command written as it is (a shell expansion such as ``"$VAR"``), not quoted."""


def check_storage(url: str | None) -> str:
    """The storage URL of a multi-node study; a ConfigError for none or SQLite.

    >>> check_storage("postgresql://u@db/optuna")
    'postgresql://u@db/optuna'
    >>> check_storage("sqlite:///study.db")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    harness.core.errors.ConfigError: --print-slurm needs --storage with a database server every node reaches
    (postgresql://USER@HOST/DB); SQLite on a shared file system corrupts under concurrent writers
    """
    if not url or url.startswith("sqlite"):
        raise ConfigError("--print-slurm needs --storage with a database server every node reaches "
                          "(postgresql://USER@HOST/DB); SQLite on a shared file system corrupts under concurrent "
                          "writers")
    return url


def worker_command(ab_path: str, storage: str, study_name: str, study_dir: str, n_trials: int,
                   overrides: dict[str, Any], trial_timeout: float | None) -> list[str]:
    """``python -m harness.sweep.runner ...``: one worker, as ``run_sweep`` starts them (the index is appended by
    the script)."""
    return [sys.executable, "-m", "harness.sweep.runner", str(Path(ab_path).resolve()), storage, study_name,
            str(Path(study_dir).resolve()), str(n_trials), json.dumps(overrides, sort_keys=True),
            str(trial_timeout or "")]


def sbatch_script(command: list[str], *, tasks: int, job_name: str, log_dir: str, workdir: str, cpus: int = 2,
                  gpus: int | None = None, time_limit: str | None = None, partition: str | None = None,
                  env: dict[str, str] | None = None) -> str:
    """The job-array script: ``tasks`` array tasks, each ``exec``-ing ``command`` plus its task id."""
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name}", f"#SBATCH --array=0-{tasks - 1}",
             f"#SBATCH --cpus-per-task={cpus}", f"#SBATCH --output={log_dir}/%A_%a.log"]
    if gpus:
        lines.append(f"#SBATCH --gres=gpu:{gpus}")
    if time_limit:
        lines.append(f"#SBATCH --time={time_limit}")
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    lines += ["# One Optuna worker per array task (harness.sweep.slurm); resubmit this script to add workers or "
              "resume.",
              "set -euo pipefail", f"cd {shlex.quote(workdir)}", f"mkdir -p {shlex.quote(log_dir)}"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted((env or {}).items())]
    if any(isinstance(c, Shell) and STORAGE_ENV in c for c in command):
        lines.append(f': "${{{STORAGE_ENV}:?export {STORAGE_ENV}=the storage URL with its password before sbatch '
                     '(the password is not written in this script)}"')
    lines.append("exec " + " ".join(c if isinstance(c, Shell) else shlex.quote(c) for c in command)
                 + ' "${SLURM_ARRAY_TASK_ID:-0}"')
    return "\n".join(lines) + "\n"


def slurm_job(ab_path: str, *, storage: str | None, study_name: str | None, study_dir: str | None, workers: int,
              n_trials: int | None, overrides: dict[str, Any], trial_timeout: float | None,
              gpus_per_trial: int | None = None, cpus: int = 2, time_limit: str | None = None,
              partition: str | None = None) -> str:
    """Validate the sweep as ``harness sweep`` would, create its study in ``storage`` (so the array's tasks
    only join it, never race to create it) and the tasks' log folder, and return the job-array script."""
    import os

    from harness.sweep.ablation import load_ablation
    from harness.sweep.runner import n_trials_for
    from harness.sweep.study import open_study

    url = check_storage(storage)
    ab = load_ablation(ab_path, overrides)
    name = study_name or ab.name
    sdir = Path(study_dir) if study_dir else Path("runs") / "sweeps" / ab.name
    n = n_trials_for(ab, n_trials)
    open_study(ab, url, name)
    log_dir = (sdir / "slurm").resolve()
    log_dir.mkdir(parents=True, exist_ok=True)  # Slurm opens --output before the script runs: it must exist
    env = {k: os.environ[k] for k in ("HARNESS_DATA_DIR", "HARNESS_CACHE_DIR", "HARNESS_SWEEP_HEARTBEAT",
                                      "HARNESS_SWEEP_GRACE") if k in os.environ}
    from harness.core.storage import mask_url

    shown = url
    if mask_url(url) != url:   # a password: the tasks read the URL from the environment, the script names it masked
        shown = Shell(f'"${STORAGE_ENV}"')
        log.warning("the storage password is not written into the script: export %s='%s' (with the password) "
                    "before sbatch; Slurm passes it to the array's tasks", STORAGE_ENV, mask_url(url))
    cmd = worker_command(ab_path, shown, name, str(sdir), n, overrides, trial_timeout)
    return sbatch_script(cmd, tasks=workers, job_name=f"harness-{name}", log_dir=str(log_dir),
                         workdir=os.getcwd(), cpus=cpus, gpus=gpus_per_trial, time_limit=time_limit,
                         partition=partition, env=env)
