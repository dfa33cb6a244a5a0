"""``--on-collapse rollback``: go back to the peak instead of stopping, at most ``--max-rollbacks`` times.

When the online detector (:class:`harness.stats.detect.OnlineDetector`) finds a collapse at eval step
``t`` and rollbacks are left, the run

1. restores the weights and the optimiser state (Adam moments and step counts) of its peak eval ``p``
   (kept by :class:`SnapshotStore` at every new best eval: ``RUN_DIR/rollback/step-NNNNNN/``);
2. resets the reference model to those weights (the KL term then anchors on the peak, not on the
   collapsed policy nor the initial one; with LoRA the reference is the base model with the adapters
   off and stays so);
3. multiplies the learning rate by ``--rollback-lr-factor`` (the optimiser's and the scheduler's base,
   so a schedule goes on from the current step at the lower scale);
4. tells the detector to forget the evals after ``p`` (:meth:`OnlineDetector.restart`): the abandoned
   stretch says nothing about the model that goes on;
5. marks the eval row of ``t`` in ``curve.csv``: ``intervention = rollback``, ``rollback_to = p``,
   ``lr_scale`` (the product of the factors so far); ``results.json`` lists it under
   ``stopping.interventions``; the report draws it.

Training continues from step ``t`` (the step counter does not go back: the curve shows the collapse,
then the rolled-back run). After ``--max-rollbacks`` rollbacks the next collapse stops the run as
``--on-collapse stop`` would.

Resume replays the same decisions: the marks are in the curve, so replaying it through the detector
restarts it at the same evals and counts the same rollbacks; the lowered learning rate is in the
optimiser and scheduler state of every later checkpoint, and the reset reference model is saved with
each checkpoint (``ref_model.pt``) once it differs from the initial one. A checkpoint is saved at every
rollback step. Snapshots newer than the checkpoint a run resumes from are dropped, and after each
checkpoint only the newest snapshot at or before it (and any newer) is kept, so a resumed run always
finds the snapshot of its best eval.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from harness.core.io import atomic_build_dir, atomic_write_text

log = logging.getLogger(__name__)

ROLLBACK_DIR = "rollback"
#: The reference model's weights in a checkpoint folder, once a rollback or a sync has moved it.
REF_MODEL = "ref_model.pt"


def step_dir(root: Path, step: int) -> Path:
    return Path(root) / f"step-{int(step):06d}"


class SnapshotStore:
    """Weights and optimiser state of the best evals, for rollbacks (see the module docstring)."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.dir = Path(run_dir) / ROLLBACK_DIR
        self.enabled = enabled

    def steps(self) -> list[int]:
        """Steps with a complete snapshot, oldest first.

        >>> import tempfile
        >>> SnapshotStore(Path(tempfile.mkdtemp()), True).steps()
        []
        """
        if not self.dir.is_dir():
            return []
        return sorted(int(p.name[5:]) for p in self.dir.glob("step-*") if (p / "snapshot.json").is_file())

    def save(self, step: int, accuracy: float, model, optimizer=None) -> None:
        """Keep the model's weights and the optimiser's state (None: a fresh optimiser, as before step 1)."""
        if not self.enabled:
            return
        import torch

        def build(tmp: Path) -> None:
            torch.save(model.state_dict(), tmp / "model.pt")
            if optimizer is not None:
                torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            atomic_write_text(tmp / "snapshot.json", json.dumps(
                {"step": int(step), "accuracy": accuracy, "optimizer": optimizer is not None}) + "\n")

        atomic_build_dir(step_dir(self.dir, step), build)

    def load(self, step: int) -> tuple[dict, dict | None, dict]:
        """(model state, optimiser state or None, snapshot.json) of ``step``."""
        import torch

        folder = step_dir(self.dir, step)
        info = json.loads((folder / "snapshot.json").read_text())
        optim = folder / "optimizer.pt"
        return (torch.load(folder / "model.pt", weights_only=True),
                torch.load(optim, weights_only=False) if optim.is_file() else None, info)

    def prune(self, checkpoint_step: int) -> None:
        """After a checkpoint at ``checkpoint_step``: keep the newest snapshot at or before it and any newer."""
        older = [s for s in self.steps() if s <= checkpoint_step]
        for s in older[:-1]:
            shutil.rmtree(step_dir(self.dir, s), ignore_errors=True)

    def reconcile(self, start: int) -> None:
        """On resume from ``start``: drop snapshots of steps the resumed run has not reached."""
        for s in self.steps():
            if s > start:
                log.warning("resume: dropping the rollback snapshot of step %d (after the resumed step %d)", s, start)
                shutil.rmtree(step_dir(self.dir, s), ignore_errors=True)


def restore_optimizer(optimizer, state: dict | None) -> None:
    """The optimiser state of a snapshot (None: cleared, as a fresh optimiser), learning rates kept as they are."""
    lrs = [g["lr"] for g in optimizer.param_groups]
    if state is None:
        optimizer.state.clear()
    else:
        optimizer.load_state_dict(state)
    for g, lr in zip(optimizer.param_groups, lrs):
        g["lr"] = lr


def scale_learning_rate(optimizer, scheduler, factor: float) -> None:
    """Multiply the current learning rates, and the scheduler's base rates, by ``factor``.

    >>> import torch
    >>> p = torch.nn.Parameter(torch.zeros(1))
    >>> opt = torch.optim.SGD([p], lr=0.1)
    >>> sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    >>> scale_learning_rate(opt, sched, 0.5)
    >>> sched.get_last_lr()
    [0.05]
    >>> opt.step(); sched.step()
    >>> opt.param_groups[0]["lr"], sched.base_lrs
    (0.05, [0.05])
    """
    for g in optimizer.param_groups:
        g["lr"] *= factor
        if "initial_lr" in g:
            g["initial_lr"] *= factor
    inner = getattr(scheduler, "scheduler", scheduler)  # accelerate wraps it as .scheduler
    if inner is not None and hasattr(inner, "base_lrs"):
        inner.base_lrs = [b * factor for b in inner.base_lrs]
        inner._last_lr = [g["lr"] for g in optimizer.param_groups]  # what the trainer logs for this step


def intervention_marks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rollbacks recorded in curve rows: ``{step, action, to_step, lr_scale}`` in step order.

    >>> intervention_marks([{"step": 10, "accuracy": 0.2, "intervention": "rollback", "rollback_to": 5,
    ...                      "lr_scale": 0.5}, {"step": 15, "accuracy": 0.9}])
    [{'step': 10, 'action': 'rollback', 'to_step': 5, 'lr_scale': 0.5}]
    """
    return [{"step": int(r["step"]), "action": r["intervention"], "to_step": int(r["rollback_to"]),
             "lr_scale": float(r.get("lr_scale") or 1.0)}
            for r in rows if r.get("intervention") == "rollback" and r.get("rollback_to") is not None]
