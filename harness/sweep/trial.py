"""One trial of a sweep: a ``harness train`` subprocess, watched, pruned or stopped early, and scored.

The trial's options (:func:`harness.sweep.ablation.trial_values`: base < overrides < sampled
parameters) are validated as a :class:`~harness.train.config.TrainConfig` and written to
``trial_config.yaml`` in the trial's run directory; the subprocess is ``harness train --config
trial_config.yaml``, so the file is the trial's whole configuration. While it runs, new rows of its
``curve.csv`` are reported to Optuna as intermediate values (so the pruner can stop a poor trial), and
a trial stops itself with the online detector of ``harness train`` (``--stop-on-collapse``,
``--patience``: the ablation's ``collapse_stop``), so a sweep and a single run stop on the same rule
(its value is then its peak). Peak step, collapse step
and run directory become trial attributes; a failed trial records a one-line ``fail_reason``.

A trial whose whole configuration (:func:`config_fingerprint`) an earlier trial already ran (or is
running) is not run again: a training run is deterministic given its config (the same seed gives the
same curve), so it is pruned with ``stopped: duplicate`` and ``duplicate_of: N``, and the study's
budget does not count it. To repeat a configuration on purpose, make ``seed`` a parameter.

    trials/trial_0007/
      trial_config.yaml    the trial's harness train options
      train.log            its output
      curve.csv, results.json, checkpoints/ ...   the harness train run directory
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from harness.core.io import atomic_write_text
from harness.core.rundir import CURVE, read_curve
from harness.sweep.ablation import Ablation, trial_values
from harness.sweep.child import command as child_command
from harness.sweep.study import DUPLICATE, is_duplicate
from harness.train.config import TrainConfig

log = logging.getLogger(__name__)

POLL_S = 0.5
#: A running trial prints a progress line at each new eval, and at least this often between evals.
PROGRESS_S = 60.0
TRIAL_CONFIG = "trial_config.yaml"
#: The trial's sampled parameters as the ablation names them (an ``arm`` among them), beside its config.
TRIAL_PARAMS = "trial_params.yaml"
#: Trial attribute holding :func:`config_fingerprint`.
FINGERPRINT = "config_fingerprint"
#: Trial attribute holding the sweep's command-line overrides (``--max-steps``, ``--set ...``) the trial ran under.
OVERRIDES = "overrides"
#: Attributes a trial sets for itself; a retried trial (a killed worker's) starts without its original's.
OWN_ATTRS = ("stopped", "duplicate_of", "run_dir", "log", "command", FINGERPRINT, "fail_reason", OVERRIDES)


def progress_line(number: int, params: dict[str, Any], step: int | None, max_steps: int | None,
                  last_eval: tuple[int, float] | None, elapsed: float) -> str:
    """One line on a running trial: its parameters, training step, latest eval and time so far.

    >>> progress_line(3, {"seed": 0, "learning_rate": 0.001}, 12, 30, (10, 0.84), 125.4)
    'trial 3 (seed=0, learning_rate=0.001): step 12/30, latest eval 0.840 at step 10, 2m05s'
    >>> progress_line(0, {}, None, None, None, 4.0)
    'trial 0: step 0, no eval yet, 0m04s'
    """
    what = f"trial {number}" + (f" ({', '.join(f'{k}={v}' for k, v in params.items())})" if params else "")
    at = f"step {step or 0}" + (f"/{max_steps}" if max_steps else "")
    latest = f"latest eval {last_eval[1]:.3f} at step {last_eval[0]}" if last_eval else "no eval yet"
    minutes, seconds = divmod(int(round(elapsed)), 60)
    return f"{what}: {at}, {latest}, {minutes}m{seconds:02d}s"


def last_step(run_dir: Path) -> int | None:
    """The last training step in a running trial's ``curve.csv`` (None before its first row)."""
    try:
        lines = (run_dir / "curve.csv").read_text().strip().splitlines()
    except OSError:
        return None
    try:
        return int(float(lines[-1].split(",", 1)[0])) if len(lines) > 1 else None
    except ValueError:
        return None


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


def trial_config(ab: Ablation, params: dict[str, Any], overrides: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The validated ``harness train`` options of one trial, as they go into its config file.

    Only the options the ablation (or the sweep's overrides) set are written, typed by TrainConfig;
    everything else stays TrainConfig's default. The trial writes to ``run_dir`` and no report.
    """
    values = trial_values(ab, params, overrides)
    stops = {"stop_on_collapse": ab.collapse_stop.enabled, "patience": ab.collapse_stop.patience}
    values = {**{k: v for k, v in stops.items() if v}, **values, "output_dir": str(run_dir), "report": False}
    return TrainConfig.build(**values).model_dump(mode="json", exclude_unset=True)


def config_fingerprint(ab: Ablation, params: dict[str, Any], overrides: dict[str, Any]) -> str:
    """A short hash of the trial's whole ``harness train`` configuration (:func:`trial_config` without its
    output directory): two trials run the same training exactly when their fingerprints agree, so a study
    resumed after its ablation's ``base`` or the sweep's overrides changed repeats no old trial's result.

    >>> ab = Ablation(name="x", base={"max_steps": 5},
    ...               search_space={"reward.retry": {"type": "categorical", "choices": [0, 1]}})
    >>> a = config_fingerprint(ab, {"reward.retry": 1}, {})
    >>> b = config_fingerprint(ab, {"reward.retry": 1}, {"max_steps": 6})
    >>> a == config_fingerprint(ab, {"reward.retry": 1}, {}), a == b
    (True, False)

    Without noise the noise modes do not count (noise 0 under any mode is one configuration):

    >>> quiet = [config_fingerprint(ab, {"train_noise": 0.0, "train_noise_mode": m}, {})
    ...          for m in ("drop_gold", "random")]
    >>> noisy = config_fingerprint(ab, {"train_noise": 0.2, "train_noise_modes": "random"}, {})
    >>> quiet[0] == quiet[1], noisy == quiet[0]
    (True, False)
    """
    import hashlib
    import json

    cfg = trial_config(ab, params, overrides, Path("."))
    cfg.pop("output_dir", None)
    for level, modes in (("train_noise", "train_noise_modes"), ("eval_noise", "eval_noise_modes")):
        if level in cfg and cfg[level] == 0:  # no noise: which modes would apply changes nothing (measured:
            cfg.pop(modes, None)               # noise 0 with drop_gold and with paraphrase, identical runs)
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


def covered_configurations(study, ab: Ablation, overrides: dict[str, Any]) -> int:
    """Distinct parameter sets of the search space already covered under the ablation and overrides as they
    are now: run, running, or pruned as a duplicate of one that was (an equivalent set, such as noise 0
    under another mode, is covered by its twin's run). Failures and trials run under another ``base`` do
    not count, nor parameters outside the space (an enqueued baseline off the step grid). When this
    reaches :meth:`~harness.sweep.ablation.Ablation.space_size`, nothing is left to run."""
    from optuna.trial import TrialState

    alive = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    seen = set()
    for t in study.get_trials(deepcopy=False):
        if t.state not in alive or not ab.in_space(t.params):
            continue
        try:
            fingerprint = config_fingerprint(ab, t.params, overrides)
        except Exception:  # noqa: BLE001 -- parameters the current ablation refuses: not one of its configurations
            continue
        if t.user_attrs.get(FINGERPRINT) == fingerprint:
            seen.add(tuple(sorted((k, repr(v)) for k, v in t.params.items())))
    return len(seen)


def write_trial_config(ab: Ablation, params: dict[str, Any], overrides: dict[str, Any], run_dir: Path) -> Path:
    path = run_dir / TRIAL_CONFIG
    atomic_write_text(path, yaml.safe_dump(trial_config(ab, params, overrides, run_dir), sort_keys=False))
    atomic_write_text(run_dir / TRIAL_PARAMS, yaml.safe_dump(dict(params), sort_keys=True))
    return path


def train_command(config_path: Path) -> list[str]:
    """``harness train --config FILE``, started so that it dies with this worker (harness.sweep.child)."""
    return child_command(os.getpid(), ["train", "--config", str(config_path)])


def objective_value(ab: Ablation, curve, analysis: dict) -> float | tuple[float, float]:
    """The trial's value(s) from its eval curve (``step``, ``accuracy``) and its :func:`analyze` result.

    ``peak``: the peak accuracy; ``final``: the last; ``auc``: the trapezoid area under accuracy over
    steps, divided by the span of steps (a mean accuracy that weighs each interval by its length);
    ``peak_and_collapse``: (peak, collapse step), the latter one past the last step when none.
    """
    acc = curve["accuracy"].astype(float)
    if ab.objective == "final":
        return float(acc.iloc[-1])
    if ab.objective == "auc":
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


def last_error_line(log_path: Path) -> str:
    """The last line of a trial's log that says what went wrong (an ``error:`` line, else the last line)."""
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    errors = [ln for ln in lines if ln.startswith(("error:", "Error", "RuntimeError", "ValueError"))
              or ln.split(":", 1)[0].endswith(("Error", "Exception"))]
    return (errors or lines or ["(empty log)"])[-1][:300]


class TrialFailed(RuntimeError):
    """A trial that ran and failed; the message is one line (the log holds the rest)."""


def _file_signature(path: Path) -> tuple[int, int] | None:
    """(mtime in ns, size) of a file, None when it is absent: what tells the watcher the run wrote a row.
    Reading and validating the whole curve every poll cost a sixth of a core per worker (measured: 15% CPU
    per `harness.sweep.runner` on the 2-core machine, beside the trainings it was watching)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class TrialRunner:
    """The Optuna objective: run, watch, prune or stop early, and record attributes."""

    def __init__(self, ab: Ablation, study_dir: Path, overrides: dict[str, Any], trial_timeout: float | None = None):
        self.ab, self.study_dir, self.overrides, self.timeout = ab, study_dir, overrides, trial_timeout

    def __call__(self, trial):
        import optuna

        for key in OWN_ATTRS:  # a retry (a killed worker's trial) arrives with its attributes: not its outcome
            if trial.user_attrs.get(key) is not None:
                trial.set_user_attr(key, None)
        params = suggest(trial, self.ab)
        # what the sweep's command line changed from the ablation file (--max-steps 2 makes a smoke study): shown
        # on the study page
        trial.set_user_attr(OVERRIDES, {k: v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
                                        for k, v in self.overrides.items()})
        try:
            fingerprint = config_fingerprint(self.ab, params, self.overrides)
        except Exception:  # refused config: run() fails the trial with the reason
            fingerprint = None
        trial.set_user_attr(FINGERPRINT, fingerprint)
        earlier = self._duplicate(trial, fingerprint) if fingerprint else None
        if earlier is not None:
            trial.set_user_attr("stopped", DUPLICATE)
            trial.set_user_attr("duplicate_of", earlier.number)
            # a training run is deterministic given its config: running it again costs a trial's compute and
            # would count one configuration twice in every comparison; the budget does not count it (a grid
            # worker that lost a race for a cell goes on to the next cell)
            raise optuna.TrialPruned(f"same configuration as trial {earlier.number}"
                                     + ("" if earlier.params == params else " (equivalent parameters)")
                                     + ": not run again")
        return self.run(trial, params)

    def run(self, trial, params: dict[str, Any]) -> float | tuple[float, float]:
        """Run the trial's training to its end (or a prune, a stop, the timeout) and return its value(s)."""
        import optuna

        run_dir = self.study_dir / "trials" / f"trial_{trial.number:04d}"
        if run_dir.exists():  # a retried trial gets a fresh directory; the failed one is kept
            run_dir = run_dir.with_name(run_dir.name + f"_{int(time.time())}")
        run_dir.mkdir(parents=True)
        trial.set_user_attr("run_dir", str(run_dir))
        log_path = run_dir / "train.log"
        trial.set_user_attr("log", str(log_path))
        try:
            config = write_trial_config(self.ab, params, self.overrides, run_dir)
        except Exception as e:  # validated before any trial; a failure here is a bug worth one clear line
            raise self._fail(trial, f"trial config refused: {e}") from None
        cmd = train_command(config)
        trial.set_user_attr("command", "harness " + " ".join(cmd[4:]))
        stop_reason, curve, returncode = self._watch(trial, cmd, run_dir, log_path, params)
        status = self._status(run_dir)
        # the trial's own online detector (--stop-on-collapse / --patience) ends it with this status
        trial.set_user_attr("stopped", stop_reason or {"stopped_collapse": "collapse",
                                                       "stopped_patience": "patience"}.get(status, "finished"))
        if stop_reason == "pruned":
            raise optuna.TrialPruned(f"pruned at step {int(curve['step'].iloc[-1])}")
        if stop_reason == "timeout":
            raise self._fail(trial, f"trial exceeded {self.timeout} s (log: {log_path})")
        status = self._status(run_dir)
        if stop_reason is None and (returncode != 0 or status in ("diverged", "failed")):
            state = f", status {status}" if status else ""
            raise self._fail(trial, f"harness train exited {returncode}{state}: {last_error_line(log_path)} "
                                    f"(log: {log_path})")
        if curve is None:
            curve = read_curve(run_dir, live=True)
            if curve is None:
                raise self._fail(trial, f"trial produced no curve.csv in {run_dir} (log: {log_path})")
        from harness.stats.curves import analyze

        res = analyze(curve, delta=self.ab.collapse_stop.delta, m=self.ab.collapse_stop.m)
        self._record(trial, res)
        return objective_value(self.ab, curve, res)

    def _watch(self, trial, cmd: list[str], run_dir: Path, log_path: Path, params: dict[str, Any] | None = None):
        """Run ``cmd`` to its end, a prune, a collapse or the timeout; returns (stop reason, curve, exit code).
        A progress line (:func:`progress_line`) is logged at each new eval and every :data:`PROGRESS_S` seconds."""
        from harness.stats.curves import analyze

        reported, stop_reason, curve, t0 = 0, None, None, time.time()
        single = len(self.ab.directions) == 1
        said = t0
        max_steps = yaml.safe_load((run_dir / TRIAL_CONFIG).read_text()).get("max_steps") \
            if (run_dir / TRIAL_CONFIG).is_file() else None
        params = params or {}
        with open(log_path, "w") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                seen = None   # curve.csv's (mtime, size) when last read: re-read (and re-validate) only on a change
                while True:
                    done = proc.poll() is not None
                    now = _file_signature(run_dir / CURVE)
                    df = read_curve(run_dir, live=True) if now != seen or done else None
                    seen = now
                    if df is not None and len(df) > reported:
                        curve = df
                        for _, row in df.iloc[reported:].iterrows():
                            if single:
                                trial.report(float(row["accuracy"]), int(row["step"]))
                        reported = len(df)
                        res = analyze(df, delta=self.ab.collapse_stop.delta, m=self.ab.collapse_stop.m)
                        self._record(trial, res)
                        if single and trial.should_prune():
                            stop_reason = "pruned"
                        said = 0.0   # a new eval: say so now
                    if not done and time.time() - said >= PROGRESS_S:
                        last = (int(curve["step"].iloc[-1]), float(curve["accuracy"].iloc[-1])) \
                            if curve is not None else None
                        log.info(progress_line(trial.number, params, last_step(run_dir), max_steps, last,
                                               time.time() - t0))
                        said = time.time()
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
        return stop_reason, curve, proc.returncode

    @staticmethod
    def _fail(trial, reason: str) -> TrialFailed:
        trial.set_user_attr("fail_reason", reason)
        return TrialFailed(reason)

    @staticmethod
    def _duplicate(trial, fingerprint: str):
        """The earliest *earlier* trial that ran (or runs) this configuration, or None.

        Only lower-numbered trials count, so two workers that start the same configuration at once never
        both stand down (at worst both run it). Failed trials do not count: their configuration may be
        tried again."""
        from optuna.trial import TrialState

        taken = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.PRUNED)
        return next((t for t in trial.study.get_trials(deepcopy=False)   # in trial-number order
                     if t.number < trial.number and t.state in taken and not is_duplicate(t)
                     and t.user_attrs.get(FINGERPRINT) == fingerprint), None)

    @staticmethod
    def _status(run_dir: Path) -> str | None:
        from harness.core.errors import DataError
        from harness.core.record import read_record

        try:
            return read_record(run_dir).status
        except DataError:
            return None

    @staticmethod
    def _record(trial, res: dict) -> None:
        for k in ("peak", "peak_step", "collapse_step", "zero_step"):
            v = res.get(k)
            trial.set_user_attr(k, None if isinstance(v, float) and math.isnan(v) else v)
