"""Training curves where researchers look: TensorBoard, Weights & Biases, MLflow (``--report-to``).

``harness train --report-to tensorboard,wandb,mlflow`` hands the names to TRL's ``GRPOConfig.report_to``,
so transformers' own integration callbacks log every TRL step (loss, reward, KL, completion lengths, ...)
under the run name, which is the run directory's name. At every held-out eval the harness sends its own
metrics through the same callbacks (:func:`send`), at the eval's step:

==========================  ==============================================================
key (``eval/`` in the UIs)  value
==========================  ==============================================================
``eval_accuracy``           held-out accuracy, with ``eval_accuracy_ci_low`` / ``_ci_high``
                            (the 95% Wilson interval)
``eval_<metric>``           every scalar retry-aware metric (persistence, recovery,
                            wasted_retries, premature_answer, searches_per_episode, ...)
``eval_peak_accuracy``      the best eval so far and its step (``eval_peak_step``)
``eval_new_peak``           1 at an eval that became the peak, else 0
``eval_collapse_alarm``     1 at an eval where the online collapse detector fires, else 0
==========================  ==============================================================

Where the backends write: TensorBoard event files under ``RUN_DIR/tensorboard/`` (unless
``$TENSORBOARD_LOGGING_DIR`` says otherwise); W&B's run folder under ``RUN_DIR/wandb/`` (unless
``$WANDB_DIR``; the project is ``$WANDB_PROJECT``, default ``harness``; ``WANDB_MODE=offline`` works
without an account, ``wandb sync`` uploads later); MLflow wherever ``$MLFLOW_TRACKING_URI`` points
(MLflow's own default otherwise), experiment ``$MLFLOW_EXPERIMENT_NAME``. Each backend comes with an
extra (``pip install 'retry-harness[tensorboard]'``, ``[wandb]``, ``[mlflow]``); none is required.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

#: Backends ``--report-to`` accepts (besides ``none``), with the module each needs.
REPORTERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def report_targets(values: list[str] | None) -> list[str]:
    """The validated list of backends (``none`` alone, or nothing, means none); a ValueError otherwise.

    >>> report_targets(["tensorboard", "wandb"]), report_targets(["none"]), report_targets(None)
    (['tensorboard', 'wandb'], [], [])
    >>> report_targets(["tensorbord"])
    Traceback (most recent call last):
    ...
    ValueError: unknown --report-to 'tensorbord'; valid: tensorboard, wandb, mlflow, none
    """
    out: list[str] = []
    for v in values or []:
        v = v.strip().lower()
        if v in ("", "none"):
            continue
        if v not in REPORTERS:
            raise ValueError(f"unknown --report-to {v!r}; valid: {', '.join(REPORTERS)}, none")
        if v not in out:
            out.append(v)
    return out


def check_installed(targets: list[str]) -> None:
    """A ConfigError naming the extra to install for a backend whose package is missing."""
    import importlib.util

    from harness.core.errors import ConfigError

    for t in targets:
        if importlib.util.find_spec(REPORTERS[t]) is None:
            raise ConfigError(f"--report-to {t} needs the {REPORTERS[t]} package: pip install 'retry-harness[{t}]'")


def prepare(targets: list[str], out: Path) -> None:
    """Default locations of the backends' files (only where the user set none; see the module docstring)."""
    if "wandb" in targets:
        os.environ.setdefault("WANDB_DIR", str(Path(out).resolve()))
        os.environ.setdefault("WANDB_PROJECT", "harness")


def attach(trainer, targets: list[str], out: Path) -> None:
    """Point TensorBoard's callback at ``RUN_DIR/tensorboard`` (its default is a timestamped folder under
    the checkpoints, and before the first step it would fall back to the working directory)."""
    if "tensorboard" not in targets:
        return
    from transformers.integrations import TensorBoardCallback

    for cb in trainer.callback_handler.callbacks:
        if isinstance(cb, TensorBoardCallback) and cb.logging_dir is None:
            cb.logging_dir = str(Path(out) / "tensorboard")


def eval_logs(metrics: dict[str, Any], *, peak_step: int | None = None, peak_accuracy: float | None = None,
              new_peak: bool = False, collapse_alarm: bool = False) -> dict[str, float]:
    """The eval's scalars as integration-callback logs (``eval_`` prefix: ``eval/`` in TensorBoard and W&B).

    Missing and non-finite values are left out (a conditional rate without its condition is None).

    >>> eval_logs({"n": 32, "accuracy": 0.25, "recovery": None, "searches_hist": {"1": 3}}, peak_step=10,
    ...           peak_accuracy=0.3, new_peak=False, collapse_alarm=True)  # doctest: +NORMALIZE_WHITESPACE
    {'eval_n': 32.0, 'eval_accuracy': 0.25, 'eval_peak_accuracy': 0.3, 'eval_peak_step': 10.0,
     'eval_new_peak': 0.0, 'eval_collapse_alarm': 1.0}
    """
    logs = {f"eval_{k}": float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    if peak_accuracy is not None:
        logs["eval_peak_accuracy"] = float(peak_accuracy)
    if peak_step is not None:
        logs["eval_peak_step"] = float(peak_step)
    logs["eval_new_peak"] = float(new_peak)
    logs["eval_collapse_alarm"] = float(collapse_alarm)
    return logs


def send(trainer, logs: dict[str, float]) -> None:
    """Hand ``logs`` to every callback's ``on_log`` at the trainer's current step, as ``Trainer.log`` does
    (without TRL's override, which would fold in and clear the step's own training metrics). The harness's
    callback ignores them (no ``loss``): the curve gets the eval through its own path. The handler clears
    ``control.should_log``, so it gets a copy: the step's own log, decided before the eval, still happens."""
    import copy

    trainer.callback_handler.on_log(trainer.args, trainer.state, copy.copy(trainer.control), logs)
