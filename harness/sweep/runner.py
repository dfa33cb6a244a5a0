"""``harness sweep``: Optuna studies whose trials are short ``harness train`` runs.

Each trial runs ``harness train`` in its own subprocess and run directory. While it runs, new rows
of its ``curve.csv`` are reported to Optuna as intermediate values (so the pruner can stop a poor
trial), and a trial whose curve has collapsed is stopped early (its value is its peak). Peak step,
collapse step and run directory become trial attributes.

Storage is Optuna's RDB storage (the distributed engine; no scheduler of our own): a SQLite file in
the study directory by default, any SQLAlchemy URL (e.g. ``postgresql://...``) for workers on many
machines. Heartbeats mark a killed worker's trial failed and ``RetryHeartbeatStaleTrialCallback`` re-queues
its parameters; ``load_if_exists`` makes a rerun resume the study without repeating finished trials.

    study dir/
      study.db             (SQLite default)
      trials/trial_0007/   one harness train run directory per trial (+ train.log)
      report.html          the study report
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness.sweep.ablation import Ablation, load_ablation

log = logging.getLogger(__name__)

POLL_S = 0.5
#: Heartbeat period and the silence after which a trial counts as dead (its worker was killed).
HEARTBEAT_S = int(os.environ.get("HARNESS_SWEEP_HEARTBEAT", "10"))
GRACE_S = int(os.environ.get("HARNESS_SWEEP_GRACE", "30"))


def default_storage(study_dir: Path) -> str:
    return f"sqlite:///{(study_dir / 'study.db').resolve()}"


def make_storage(url: str):
    import warnings

    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    warnings.filterwarnings("ignore", message=".*RetryHeartbeatStaleTrialCallback is experimental.*")
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    return RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                      heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2), **kwargs)


def make_sampler(ab: Ablation):
    import optuna

    s = ab.sampler
    if s.name == "grid":
        return optuna.samplers.GridSampler({k: v.grid_values() for k, v in ab.search_space.items()}, seed=s.seed)
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=s.seed)
    return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=s.n_startup_trials,
                                      multivariate=True)


def make_pruner(ab: Ablation):
    import optuna

    p = ab.pruner
    if p.name == "none" or len(ab.directions) > 1:   # Optuna prunes single-objective studies only
        return optuna.pruners.NopPruner()
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps)


def open_study(ab: Ablation, storage_url: str, study_name: str):
    import optuna

    study = optuna.create_study(study_name=study_name, storage=make_storage(storage_url), sampler=make_sampler(ab),
                                pruner=make_pruner(ab), directions=ab.directions, load_if_exists=True)
    if "objectives" not in study.user_attrs:
        study.set_user_attr("objectives", ["peak", "collapse_step"] if ab.objective == "peak_and_collapse"
                            else [ab.objective])
    return study


# ----------------------------------------------------------------------------- one trial


def suggest(trial, ab: Ablation) -> dict[str, Any]:
    out = {}
    for name, spec in ab.search_space.items():
        if spec.type == "categorical":
            out[name] = trial.suggest_categorical(name, spec.choices)
        elif spec.type == "int":
            out[name] = trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log,
                                          step=int(spec.step or 1))
        else:
            out[name] = trial.suggest_float(name, spec.low, spec.high, log=spec.log, step=spec.step)
    return out


def train_command(ab: Ablation, params: dict[str, Any], overrides: dict[str, Any], run_dir: Path) -> list[str]:
    """The ``harness train`` command line for one trial: base < overrides < sampled params."""
    opts: dict[str, Any] = {"preset": ab.preset, **ab.base, **overrides}
    weights = [w for w in str(opts.pop("reward_weights", "") or "").split(",") if w]
    for k, v in params.items():
        k = k.replace("-", "_")
        if k.startswith("reward."):
            weights.append(f"{k[len('reward.'):]}={float(v):g}")
        else:
            opts[k] = v
    cmd = [sys.executable, "-m", "harness", "train", "--task", ab.task]
    for k, v in opts.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            cmd.append(flag if v else "--no-" + k.replace("_", "-"))
        elif v is not None:
            cmd += [flag, str(v)]
    if weights:
        cmd += ["--reward-weights", ",".join(weights)]
    return cmd + ["--output-dir", str(run_dir), "--no-report"]


def _die_with_parent() -> None:  # the train subprocess must not outlive a killed worker
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _read_curve(path: Path):
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return None
    except pd.errors.ParserError:  # caught mid-write; next poll reads it whole
        return None
    if not {"step", "accuracy"} <= set(df.columns):
        return None
    df = df.dropna(subset=["accuracy"]).reset_index(drop=True)  # training-only rows carry no accuracy
    return df if len(df) else None


def objective_value(ab: Ablation, curve, analysis: dict) -> float | tuple[float, float]:
    acc = curve["accuracy"].astype(float)
    if ab.objective == "final":
        return float(acc.iloc[-1])
    if ab.objective == "auc":  # mean accuracy over the evaluated steps (trapezoid, normalised)
        steps = curve["step"].astype(float)
        if len(curve) < 2 or steps.iloc[-1] == steps.iloc[0]:
            return float(acc.mean())
        y, x = acc.to_numpy(), steps.to_numpy()
        return float(((y[1:] + y[:-1]) / 2 * (x[1:] - x[:-1])).sum() / (x[-1] - x[0]))
    peak = float(analysis["peak"])
    if ab.objective == "peak_and_collapse":  # later collapse is better; none = past the last step
        c = analysis["collapse_step"]
        return peak, float(c if c is not None else curve["step"].max() + 1)
    return peak


class TrialRunner:
    """The Optuna objective: run, watch, prune or stop early, and record attributes."""

    def __init__(self, ab: Ablation, study_dir: Path, overrides: dict[str, Any], trial_timeout: float | None = None):
        self.ab, self.study_dir, self.overrides, self.timeout = ab, study_dir, overrides, trial_timeout

    def __call__(self, trial):
        import optuna

        from harness.analysis.curves import analyze

        params = suggest(trial, self.ab)
        if self.ab.sampler.name == "grid" and self._duplicate(trial, params):
            trial.set_user_attr("stopped", "duplicate")
            trial.study.stop()
            raise optuna.TrialPruned("grid cell already taken by another worker; the grid is exhausted")
        run_dir = self.study_dir / "trials" / f"trial_{trial.number:04d}"
        if run_dir.exists():  # a retried trial gets a fresh directory; the failed one is kept
            run_dir = run_dir.with_name(run_dir.name + f"_{int(time.time())}")
        run_dir.mkdir(parents=True)
        trial.set_user_attr("run_dir", str(run_dir))
        cmd = train_command(self.ab, params, self.overrides, run_dir)
        trial.set_user_attr("command", " ".join(cmd))
        logf = open(run_dir / "train.log", "w")
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        reported, stop_reason, t0 = 0, None, time.time()
        curve = None
        try:
            while True:
                done = proc.poll() is not None
                df = _read_curve(run_dir / "curve.csv")
                if df is not None and len(df) > reported:
                    curve = df
                    for _, row in df.iloc[reported:].iterrows():
                        if len(self.ab.directions) == 1:
                            trial.report(float(row["accuracy"]), int(row["step"]))
                    reported = len(df)
                    res = analyze(df, delta=self.ab.collapse_stop.delta, m=self.ab.collapse_stop.m)
                    self._record(trial, res)
                    if len(self.ab.directions) == 1 and trial.should_prune():
                        stop_reason = "pruned"
                    elif self.ab.collapse_stop.enabled and res["collapse_step"] is not None and not done:
                        stop_reason = "collapse"
                if stop_reason or done:
                    break
                if self.timeout and time.time() - t0 > self.timeout:
                    stop_reason = "timeout"
                    break
                time.sleep(POLL_S)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            logf.close()
        trial.set_user_attr("stopped", stop_reason or "finished")
        if stop_reason == "pruned":
            raise optuna.TrialPruned(f"pruned at step {int(curve['step'].iloc[-1])}")
        if stop_reason == "timeout":
            raise RuntimeError(f"trial exceeded {self.timeout} s; log: {run_dir / 'train.log'}")
        status = self._status(run_dir)
        if stop_reason is None and (proc.returncode != 0 or status in ("diverged", "failed")):
            tail = (run_dir / "train.log").read_text(errors="replace")[-1500:]
            reason = f"train exited {proc.returncode} (status {status})"
            trial.set_user_attr("fail_reason", reason)
            raise RuntimeError(f"{reason}; log tail:\n{tail}")
        if curve is None:
            curve = _read_curve(run_dir / "curve.csv")
            if curve is None:
                raise RuntimeError(f"trial produced no curve.csv in {run_dir}")
        res = analyze(curve, delta=self.ab.collapse_stop.delta, m=self.ab.collapse_stop.m)
        self._record(trial, res)
        return objective_value(self.ab, curve, res)

    @staticmethod
    def _duplicate(trial, params: dict[str, Any]) -> bool:
        from optuna.trial import TrialState

        taken = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.PRUNED)
        return any(t.number != trial.number and t.state in taken and t.params == params
                   and t.user_attrs.get("stopped") != "duplicate" for t in trial.study.get_trials(deepcopy=False))

    @staticmethod
    def _status(run_dir: Path) -> str | None:
        import json

        try:
            return json.loads((run_dir / "results.json").read_text()).get("status")
        except (OSError, ValueError):
            return None

    @staticmethod
    def _record(trial, res: dict) -> None:
        for k in ("peak", "peak_step", "collapse_step", "zero_step"):
            v = res.get(k)
            trial.set_user_attr(k, None if isinstance(v, float) and math.isnan(v) else v)


# ----------------------------------------------------------------------------- workers


def n_trials_for(ab: Ablation, n_trials: int | None) -> int:
    if n_trials:
        return n_trials
    if ab.n_trials:
        return ab.n_trials
    if ab.sampler.name == "grid":
        return ab.grid_size()
    raise ValueError("give --n-trials (or n_trials in the ablation file) for a non-grid sampler")


def enqueue_baseline(study, ab: Ablation) -> None:
    """Enqueue the preset's own configuration first (Optuna's enqueue_trial idiom) on a fresh study."""
    if study.trials or ab.sampler.name == "grid":
        return
    from harness.core.config import load_task

    weights = load_task(ab.task).presets[ab.preset].reward_weights.model_dump()
    params = {}
    for name, spec in ab.search_space.items():
        if name.startswith("reward."):
            v = weights[name[len("reward."):]]
            if spec.type == "categorical" and v in spec.choices or spec.type != "categorical" and spec.low <= v <= spec.high:
                params[name] = v
    if params:
        study.enqueue_trial(params, skip_if_exists=True)


def _claimed(study) -> int:
    """Trials finished, running or queued: what counts towards the study's trial budget."""
    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    return sum(t.state in live for t in study.get_trials(deepcopy=False))


def run_worker(ab_path: str, storage_url: str, study_name: str, study_dir: Path, n_trials: int,
               overrides: dict[str, Any], trial_timeout: float | None = None) -> None:
    """One worker process: run trials one at a time until the study's budget of ``n_trials`` is claimed.

    Before each trial the worker marks stale trials (a killed worker's) failed, which re-queues their
    parameters, then counts finished + running + queued trials, so workers sharing a study neither
    overshoot the budget nor stop while a retry is pending.
    """
    import optuna

    ab = load_ablation(ab_path)
    study = open_study(ab, storage_url, study_name)
    enqueue_baseline(study, ab)
    runner = TrialRunner(ab, study_dir, overrides, trial_timeout)
    for _ in range(n_trials * 3):  # a hard stop if trials keep failing
        optuna.storages.fail_stale_trials(study)
        waiting = any(t.state.name == "WAITING" for t in study.get_trials(deepcopy=False))
        if _claimed(study) >= n_trials and not waiting:
            return
        study.optimize(runner, n_trials=1, catch=(RuntimeError, OSError, ValueError))


def run_sweep(ab_path: str, *, n_trials: int | None = None, storage: str | None = None, study_name: str | None = None,
              workers: int = 1, output_dir: str | None = None, overrides: dict[str, Any] | None = None,
              trial_timeout: float | None = None, report: bool = True) -> dict[str, Any]:
    ab = load_ablation(ab_path)
    study_dir = Path(output_dir) if output_dir else Path("runs") / "sweeps" / ab.name
    study_dir.mkdir(parents=True, exist_ok=True)
    url = storage or default_storage(study_dir)
    name = study_name or ab.name
    n = n_trials_for(ab, n_trials)
    overrides = overrides or {}
    if workers <= 1:
        run_worker(ab_path, url, name, study_dir, n, overrides, trial_timeout)
    else:
        import json

        open_study(ab, url, name)  # create tables/study once, before workers race to
        procs = [subprocess.Popen([sys.executable, "-m", "harness.sweep.runner", ab_path, url, name, str(study_dir), str(n),
                                   json.dumps(overrides), str(trial_timeout or "")]) for _ in range(workers)]
        codes = [p.wait() for p in procs]
        if any(codes):
            log.error("worker exit codes: %s (the study keeps every finished trial)", codes)
    summary = summarize(ab, url, name)
    summary["study_dir"] = str(study_dir)
    summary["storage"] = url
    from harness.core.results import write_json

    write_json(study_dir / "summary.json", summary)
    if report:
        try:
            from harness.analysis.study_report import write_study_report

            summary["report"] = str(write_study_report(study_dir, storage=url, study_name=name))
        except Exception as e:  # trials are safe in the storage; a report bug must not hide that
            log.error("study report failed: %r", e)
    return summary


def summarize(ab: Ablation, storage_url: str, study_name: str) -> dict[str, Any]:
    import optuna

    study = optuna.load_study(study_name=study_name, storage=make_storage(storage_url))
    counts: dict[str, int] = {}
    for t in study.trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    best = []
    if len(ab.directions) == 1:
        done = [t for t in study.trials if t.state.name == "COMPLETE"]
        best = sorted(done, key=lambda t: -t.value)[:5]
    else:
        best = study.best_trials
    return {
        "study": study_name, "objective": ab.objective, "states": counts,
        "best": [{"number": t.number, "values": t.values, "params": t.params,
                  **{k: t.user_attrs.get(k) for k in ("peak", "peak_step", "collapse_step", "run_dir")}}
                 for t in best],
        "steps_run": steps_run(study),
    }


def steps_run(study) -> int:
    """Training steps actually run over all trials (the last step in each trial's curve, train rows included)."""
    import pandas as pd

    total = 0
    for t in study.trials:
        path = Path(t.user_attrs.get("run_dir", "")) / "curve.csv"
        try:
            total += int(pd.read_csv(path, usecols=["step"])["step"].max())
        except (OSError, ValueError, KeyError, pd.errors.EmptyDataError):
            continue
    return total


if __name__ == "__main__":  # a worker process started by run_sweep(workers=K)
    import json

    logging.basicConfig(level=logging.INFO)
    a, url, name, sdir, n, ov, to = sys.argv[1:8]
    run_worker(a, url, name, Path(sdir), int(n), json.loads(ov), float(to) if to else None)
