"""The TrainerCallback that turns a TRL run into a harness run: evals, curve rows, faults, clean stops.

Order within one optimisation step (transformers' Trainer): ``on_step_end`` (here: stop requests,
divergence check, held-out evaluation at eval steps, the peak model and the stopping rules) ->
``on_log`` (here: the curve row, with the evaluation merged in, and fault detection) -> checkpoint
save -> ``on_save`` (here: the harness state a resume needs, into the checkpoint folder). A row is
therefore on disk before the checkpoint of its step, and a resumed run keeps exactly the rows up to
its checkpoint.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Any, Protocol

from transformers import TrainerCallback

from harness.core.io import atomic_write_text
from harness.train.config import ResolvedTrain, TrainConfig
from harness.train.curve import CurveWriter, FaultMonitor, train_columns

log = logging.getLogger(__name__)


class RunHooks(Protocol):
    """What the callback needs from the run driving it (:class:`harness.train.runner.TrainRun`, not
    imported here: the runner imports this module)."""

    cfg: TrainConfig
    resolved: ResolvedTrain
    status: str
    stop_requested: bool
    monitor: FaultMonitor
    curve: CurveWriter
    rollout: Any

    def evaluate(self, model, step: int) -> dict: ...

    def after_eval(self, model, step: int, metrics: dict, optimizer=None, scheduler=None) -> str | None: ...

    def save_state(self, checkpoint: Path, step: int) -> None: ...

    def add_fault(self, fault: dict) -> None: ...

    def add_timing(self, stats: dict) -> None: ...

    def report_eval(self, step: int) -> None: ...

    def elapsed(self) -> float: ...


def checkpoints_readme(cfg: TrainConfig, resolved: ResolvedTrain, step: int) -> str:
    """The ``checkpoints/README.md`` of a training run: what the folders hold and what they were trained from.

    >>> from harness.train.config import resolve
    >>> cfg = TrainConfig(task="apollo3", model="tiny", max_steps=10)
    >>> print(checkpoints_readme(cfg, resolve(cfg), 5).splitlines()[2])
    GRPO checkpoints of a `harness train` run: base model `tiny`, task apollo3 v1, preset rezero, seed 0.
    """
    weights = ", ".join(f"{k}={v:g}" for k, v in resolved.weights.active().items())
    return (f"# Checkpoints\n\n"
            f"GRPO checkpoints of a `harness train` run: base model `{cfg.model}`, task {resolved.task.name} "
            f"v{resolved.task.version}, preset {cfg.preset}, seed {cfg.seed}.\n\n"
            f"- `checkpoint-N/`: the model, optimiser, scheduler and RNG state at step N (the newest here: step {step} "
            f"of {cfg.max_steps}) and `harness_state.json`; `harness train ... --resume -o RUN_DIR` continues from "
            "the newest complete one.\n"
            f"- Rewards: {weights} ({resolved.semantics} semantics); learning rate {cfg.learning_rate:g}, "
            f"group {cfg.num_generations}, {cfg.prompts_per_step} prompts per step.\n"
            "- The run's record, curve and report are in the folder above: `results.json`, `curve.csv`, "
            "`report.html`; the best eval's model is `peak/`.\n")


def weights_finite(model) -> bool:
    import torch

    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


class HarnessCallback(TrainerCallback):
    def __init__(self, run: RunHooks, start_step: int = 0):
        from tqdm.auto import tqdm

        self.run = run
        self.pending_eval: dict | None = None
        self.bar = tqdm(total=run.cfg.max_steps, initial=start_step, desc="train", unit="step", file=sys.stderr,
                        dynamic_ncols=True)

    def _is_eval_step(self, step: int) -> bool:
        return step % self.run.cfg.eval_every == 0 or step == self.run.cfg.max_steps

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        self.bar.update(1)
        cfg = self.run.cfg
        stop_after = cfg.stop_after is not None and cfg.stop_after <= step < cfg.max_steps
        if self.run.stop_requested or stop_after:
            self.run.status = "partial"
            control.should_save = True
            control.should_training_stop = True
        if self._is_eval_step(step):
            if not weights_finite(model):
                self.run.add_fault({"step": step, "kind": "non_finite", "detail": "model weights are NaN/inf"})
                self.run.status = "diverged"
                control.should_training_stop = True
                control.should_save = False
            else:
                self.pending_eval = self.run.evaluate(model, step)
                stop = self.run.after_eval(model, step, self.pending_eval, kwargs.get("optimizer"),
                                           kwargs.get("lr_scheduler"))
                self.run.report_eval(step)   # --report-to: TensorBoard, W&B, MLflow
                if stop == "rollback":  # back at the peak: checkpoint it, so a resume starts from the rolled-back run
                    control.should_save = True
                elif stop is not None and step < cfg.max_steps:
                    self.run.status = stop
                    control.should_save = True  # a resumed run replays the curve to the same decision
                    control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        step = state.global_step
        logs = logs or {}
        if "loss" not in logs:  # the end-of-training summary (train_runtime, train_loss), not a step
            return control
        for fault in self.run.monitor.check(step, logs):
            self.run.add_fault(fault)
            if fault["kind"] == "non_finite":
                self.run.status = "diverged"
                control.should_training_stop = True
                control.should_save = False  # never checkpoint NaN weights
        stats = self.run.rollout.stats.pop(step, {})
        self.run.add_timing(stats)
        row = train_columns(logs, list(self.run.resolved.weights.active()), stats)
        if self.pending_eval is not None:
            row.update(self.pending_eval)
            self.pending_eval = None
        row["wall_time"] = self.run.elapsed()
        self.run.curve.upsert(step, row)
        self._postfix(row)
        return control

    def on_save(self, args, state, control, **kwargs):
        self.run.save_state(Path(args.output_dir) / f"checkpoint-{state.global_step}", state.global_step)
        # TRL writes its model card to the checkpoints folder before each save, naming the base model only when it
        # is a hub id ("a fine-tuned version of [None]" for a local one): ours replaces it, saying what is there
        atomic_write_text(Path(args.output_dir) / "README.md", checkpoints_readme(self.run.cfg, self.run.resolved,
                                                                                  state.global_step))
        return control

    def _postfix(self, row: dict) -> None:
        def f(v):
            return f"{v:.3g}" if isinstance(v, (int, float)) and math.isfinite(v) else "-"

        acc = self.run.curve.last_eval()
        self.bar.set_postfix(reward=f(row.get("reward")), loss=f(row.get("loss")),
                             acc=f(acc["accuracy"]) if acc else "-", refresh=False)

    def on_train_end(self, args, state, control, **kwargs):
        self.bar.close()
        return control
