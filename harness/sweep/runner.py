"""``harness sweep``: Optuna studies whose trials are short ``harness train`` runs (the glue).

    study.py   storage, sampler, pruner, baseline, summary (the Optuna side)
    trial.py   one trial: its config file, the train subprocess, pruning, early stop, its value
    child.py   how a trial's process is started so it dies with its worker
    runner.py  workers and the sweep as a whole (this module; also a worker's entry point)

The ablation and the sweep's overrides are checked before any trial runs
(:func:`harness.sweep.ablation.load_ablation`). Failed trials are logged in one line each (no
traceback); a worker stops early when the study's first trials all failed (:data:`FAIL_FAST`), and a
sweep in which no trial completed raises :class:`NoTrialCompleted` naming the first failure's cause,
after writing its summary.

    study dir/
      study.db             (SQLite default)
      trials/trial_0007/   one harness train run directory per trial (+ trial_config.yaml, train.log)
      summary.json         states, best trials, steps run, first failure
      report.html          the study report
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from harness.core.errors import HarnessError
from harness.core.io import check_name
from harness.core.outputs import check_output
from harness.core.results import write_json
from harness.core.storage import mask_url
from harness.sweep.ablation import Ablation, ablation_path, load_ablation
from harness.sweep.study import (
    GRACE_S,
    HEARTBEAT_S,
    claimed,
    default_storage,
    enqueue_baseline,
    is_duplicate,
    known_experimental,
    make_storage,
    open_study,
    silent_trials,
    summarize,
)
from harness.sweep.trial import TrialRunner, covered_configurations

log = logging.getLogger(__name__)
#: A worker stops once this many trials (or n_trials, if fewer) have all failed with none completed.
FAIL_FAST = 3
#: A worker stops after this many proposals in a row of parameters an earlier trial already ran.
MAX_DUPLICATES_IN_A_ROW = 50


class SweepIncomplete(HarnessError):
    """A sweep that ran but did not finish what it was asked: its summary is written and kept here."""

    def __init__(self, message: str, summary: dict[str, Any]):
        super().__init__(message)
        self.summary = summary


class NoTrialCompleted(SweepIncomplete):
    """A sweep ended without one completed trial; the message names the first failure's cause."""


#: The logger Optuna reports failed trials on (with a traceback each).
OPTUNA_TRIAL_LOGGER = "optuna.study._optimize"


class _OneLineTrialFailures(logging.Filter):
    """Keep Optuna's "Trial N failed ... because of: REASON" line (our reasons are one line), drop its traceback
    and the "failed with value None" line that follows it."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        if msg.startswith("Trial ") and msg.endswith("failed with value None."):
            return False
        if record.exc_info and " failed " in msg:
            record.exc_info, record.exc_text = None, None
        return True


@contextmanager
def one_line_failures() -> Iterator[None]:
    """Within the block, Optuna reports a failed trial in one log line instead of a traceback."""
    logger, f = logging.getLogger(OPTUNA_TRIAL_LOGGER), _OneLineTrialFailures()
    logger.addFilter(f)
    try:
        yield
    finally:
        logger.removeFilter(f)


def n_trials_for(ab: Ablation, n_trials: int | None) -> int:
    if n_trials:
        return n_trials
    if ab.n_trials:
        return ab.n_trials
    if ab.sampler.name == "grid":
        return ab.grid_size()
    raise ValueError("give --n-trials (or n_trials in the ablation file) for a non-grid sampler")


def run_worker(ab_path: str, storage_url: str, study_name: str, study_dir: Path, n_trials: int,
               overrides: dict[str, Any], trial_timeout: float | None = None, worker: int = 0) -> None:
    """One worker process: run trials one at a time until the study's budget of ``n_trials`` is claimed.

    Before each trial the worker marks stale trials (a killed worker's) failed, which re-queues their
    parameters, then counts finished + running + queued trials, so workers sharing a study neither
    overshoot the budget nor stop while a retry is pending. Trials not run because an earlier trial
    has their configuration do not count (:func:`harness.sweep.study.claimed`); the worker stops when the
    search space holds no configuration left to run (:func:`harness.sweep.trial.covered_configurations`:
    a grid ends there), or after :data:`MAX_DUPLICATES_IN_A_ROW` such proposals in a row. ``worker``
    offsets the sampler's seed (:func:`harness.sweep.study.worker_seed`).
    """
    import optuna

    ab = load_ablation(ab_path, overrides)
    study = open_study(ab, storage_url, study_name, worker=worker)
    enqueue_baseline(study, ab)
    runner = TrialRunner(ab, study_dir, overrides, trial_timeout)
    size = ab.space_size()
    runs, in_a_row = 0, 0
    watched = False   # whether this worker has watched the other RUNNING trials' heartbeats once
    with known_experimental(), one_line_failures():
        while runs < n_trials * 3:  # a hard stop if trials keep failing
            optuna.storages.fail_stale_trials(study)
            waiting = any(t.state.name == "WAITING" for t in study.get_trials(deepcopy=False))
            done = claimed(study) >= n_trials and not waiting
            covered = (not done and size is not None and not waiting
                       and covered_configurations(study, ab, overrides) >= size)
            if done or covered:
                # a RUNNING trial counts as claimed; one whose worker died must be retried, not counted
                if settle_running(study, watched):
                    watched = True
                    continue
                if covered and (n_trials < size or ab.sampler.name != "grid"):   # a grid's budget is its size
                    log.warning("%s: all %d configurations of the search space are covered; stopping this worker "
                                "before n_trials (%d)", study_name, size, n_trials)
                return
            if failing_from_the_start(study, min(n_trials, FAIL_FAST)):
                log.error("the first %d trials of the study all failed and none completed: stopping this worker "
                          "(fix the cause and rerun the same command; the study resumes)", min(n_trials, FAIL_FAST))
                return
            mine: list[Any] = []   # the trial this worker just finished (not another worker's)
            study.optimize(runner, n_trials=1, catch=(RuntimeError, OSError, ValueError),
                           callbacks=[lambda _study, t, mine=mine: mine.append(t)])
            if mine and is_duplicate(mine[-1]):
                in_a_row += 1
                if in_a_row >= MAX_DUPLICATES_IN_A_ROW:
                    log.warning("%s: the sampler proposed %d configurations in a row that had already run; stopping "
                                "this worker (%d of the space's configurations covered)", study_name, in_a_row,
                                covered_configurations(study, ab, overrides))
                    return
                continue
            runs, in_a_row = runs + 1, 0


def settle_running(study, watched: bool) -> bool:
    """Before a worker stops with RUNNING trials counted as claimed: True when it should look again.

    A trial whose heartbeat has gone silent (its worker was killed within the grace period, before the
    heartbeat machinery failed it) is waited for until the grace period fails it and
    ``RetryHeartbeatStaleTrialCallback`` queues it again, which this worker then runs. A RUNNING trial
    with a recent heartbeat is watched once, for two heartbeat periods: a live worker beats in that time,
    a dead one does not. False when every RUNNING trial has a live worker (or there are none).
    """
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    if not silent_trials(study, -1):   # no RUNNING trial with a heartbeat: nothing to judge a worker by
        return False
    silent = silent_trials(study, 2 * HEARTBEAT_S)
    if not silent:
        if watched:
            return False
        time.sleep(2 * HEARTBEAT_S + 1)         # long enough for a live worker to beat
        silent = silent_trials(study, 2 * HEARTBEAT_S)
        if not silent:
            return False
    log.warning("trial(s) %s RUNNING without a live heartbeat (a worker was killed?); waiting up to %ds for the "
                "heartbeat grace period to fail them, then running them again", ", ".join(map(str, silent)), GRACE_S)
    deadline = time.monotonic() + GRACE_S + 2 * HEARTBEAT_S + 5
    while time.monotonic() < deadline:
        fail_stale_trials(study)
        states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
        if all(states.get(n) != TrialState.RUNNING for n in silent):
            break
        time.sleep(min(1.0, HEARTBEAT_S))
    return True


def failing_from_the_start(study, k: int) -> bool:
    """True when the study has finished at least ``k`` trials and every one of them failed.

    A cause that fails every trial (a missing data folder, a broken model path) is not retried
    ``3 x n_trials`` times; a study that has completed or pruned anything carries on past failures.
    """
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and not is_duplicate(t)]
    return len(finished) >= k and all(t.state.name == "FAIL" for t in finished)


def run_sweep(ab_path: str, *, n_trials: int | None = None, storage: str | None = None, study_name: str | None = None,
              workers: int = 1, output_dir: str | None = None, overrides: dict[str, Any] | None = None,
              trial_timeout: float | None = None, gpus_per_trial: int | None = None) -> dict[str, Any]:
    """Run (or resume) the study of ``ab_path``; returns its summary (also written to summary.json).

    Raises ConfigError before any trial when the ablation or the overrides would be refused, and
    :class:`NoTrialCompleted` (after the summary is written) when no trial completed. The study report is
    the command line's to write (:mod:`harness.report.study_report`).
    """
    from harness.sweep.placement import worker_env, worker_gpus

    overrides = overrides or {}
    ab_path = str(ablation_path(ab_path))   # a shipped ablation's name becomes its file, for the workers too
    gpus = worker_gpus(workers, gpus_per_trial)  # each worker's own GPUs; refused on a machine without any
    ab = load_ablation(ab_path, overrides)
    study_dir = Path(output_dir) if output_dir else Path("runs") / "sweeps" / check_name(ab.name, "ablation name")
    check_output(study_dir, "harness sweep", folder=True)   # never inside a run directory or a model folder
    name = study_name or ab.name
    n = n_trials_for(ab, n_trials)
    if storage:   # a storage that cannot be opened is refused before any folder is made
        make_storage(storage)
    top = next((p for p in reversed([study_dir, *study_dir.parents]) if not p.exists()), None)  # created here
    study_dir.mkdir(parents=True, exist_ok=True)
    url = storage or default_storage(study_dir)
    try:
        open_study(ab, url, name)      # create the tables and the study once, before any worker races to
    except BaseException:
        if top is not None:            # a failed start leaves no empty study folder behind
            _remove_empty(study_dir, top)
        raise
    warn_scale(ab, overrides)
    if workers <= 1 and gpus is None:
        run_worker(ab_path, url, name, study_dir, n, overrides, trial_timeout)
    else:
        procs = [subprocess.Popen([sys.executable, "-m", "harness.sweep.runner", ab_path, url, name, str(study_dir),
                                   str(n), json.dumps(overrides), str(trial_timeout or ""), str(w)],
                                  env=worker_env(gpus[w] if gpus else None))
                 for w in range(workers)]
        codes = [p.wait() for p in procs]
        if any(codes):
            log.error("worker exit codes: %s (the study keeps every finished trial)", codes)
    summary = summarize(ab, url, name)
    summary["study_dir"] = str(study_dir)
    summary["storage"] = mask_url(url)      # the summary is a file anyone may read: no password in it
    write_json(study_dir / "summary.json", summary)
    if not summary["states"].get("COMPLETE"):
        raise NoTrialCompleted(no_trial_message(summary), summary)
    if summary["running_without_heartbeat"]:
        raise SweepIncomplete(f"study {name} is not finished: trial(s) "
                              f"{', '.join(map(str, summary['running_without_heartbeat']))} are RUNNING without a "
                              f"live heartbeat (their worker died); rerun the same command after {GRACE_S}s to run "
                              f"them again; summary: {study_dir}", summary)
    return summary


def _remove_empty(folder: Path, top: Path) -> None:
    """Remove ``folder`` and its parents up to ``top`` (the highest folder this process created), while empty."""
    d = folder
    while True:
        try:
            d.rmdir()
        except OSError:
            return
        if d == top or d.parent == d:
            return
        d = d.parent


def warn_scale(ab, overrides: dict[str, Any] | None = None) -> str | None:
    """A warning (logged and returned) for an ablation of a paper-scale task (``scale: paper`` in its
    task.yaml) run with micro-scale models only (:func:`~harness.models.resolve.is_micro_scale`): the
    apollo3 ablations with ``tiny`` give all-zero curves (a plumbing check, nothing to rank)."""
    from harness.core.config import available_tasks, load_task
    from harness.models.resolve import is_micro_scale

    models = {str((overrides or {}).get("model") or ab.base.get("model") or "tiny")}
    space = ab.search_space.get("model")
    if space is not None and getattr(space, "choices", None):
        models = {str(c) for c in space.choices}
    task = load_task(ab.task)
    if task.scale == "paper" and all(is_micro_scale(m) for m in models):
        micro = [t for t in available_tasks() if t != task.name and load_task(t).scale == "micro"]
        msg = (f"{ab.name}: {task.name} is a paper-scale task (GPU-scale ablations); with "
               f"{', '.join(sorted(models))} every curve stays at 0 (a plumbing check). For curves that move on a "
               f"CPU use the micro ablations (ablations/micro_*.yaml, task {' or '.join(micro) or 'of scale micro'}, "
               "--model micro).")
        log.warning(msg)
        return msg
    return None


def no_trial_message(summary: dict[str, Any]) -> str:
    """One paragraph for a sweep without a completed trial: the states and the first failure's cause."""
    states = ", ".join(f"{v} {k.lower()}" for k, v in sorted(summary["states"].items())) or "no trials"
    msg = f"no trial of study {summary['study']} completed ({states}); summary: {summary.get('study_dir')}"
    first = summary.get("first_failure")
    if first:
        msg += f"\nfirst failure (trial {first['number']}): {first['reason']}"
    return msg


if __name__ == "__main__":  # a worker process started by run_sweep(workers=K)
    logging.basicConfig(level=logging.INFO)
    a, url, name, sdir, n, ov, to = sys.argv[1:8]
    w = sys.argv[8] if len(sys.argv) > 8 else "0"   # the worker's index (its sampler seed offset)
    run_worker(a, url, name, Path(sdir), int(n), json.loads(ov), float(to) if to else None, worker=int(w))
