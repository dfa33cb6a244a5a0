"""The best eval's model, kept as a ready Hugging Face folder: ``RUN_DIR/peak/`` with ``peak.json``.

Checkpoints keep the last two steps, so the model at the peak is usually gone by the end of a run
that collapsed. :class:`PeakKeeper` writes the model of every new best eval of the selection split
(strictly better accuracy than all earlier evals, so the earliest step on ties) into ``peak/``:

    peak/config.json, model.safetensors, generation_config.json   the weights (LoRA merged into the base)
    peak/tokenizer.json, tokenizer_config.json, chat_template.jinja
    peak/peak.json   step, accuracy (of the selection split), n, Wilson 95% interval, selection_split,
                     reported (the reported split, test, at this step: the number to quote), optimistic
                     (selected on the reported questions), eval noise, seed, source model, micro_scale

The folder is built beside ``peak/`` and swapped in (:func:`harness.core.io.atomic_build_dir`), so a
killed run leaves the previous peak or the new one, never a mix. ``harness run --model RUN_DIR/peak``
evaluates it like any model.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from harness.core.io import atomic_build_dir, atomic_write_text
from harness.core.results import now
from harness.stats.intervals import wilson

log = logging.getLogger(__name__)

PEAK_DIR = "peak"
PEAK_JSON = "peak.json"


def _is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, PeftModel)


def merged_copy(model, base_path: str):
    """A plain ``transformers`` model equal to the PEFT ``model`` with its adapters merged.

    The training model is left untouched: the adapter is saved, loaded onto a fresh CPU copy of the
    base weights (``base_path``) and merged there.
    """
    import tempfile

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    dtype = next(model.parameters()).dtype
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
        return PeftModel.from_pretrained(base, tmp).merge_and_unload()


def export_model(model, tokenizer, out: Path, base_path: str | None) -> bool:
    """Save ``model`` (merged when it is a PEFT model) and ``tokenizer`` as a HF folder; True if merged."""
    merged = _is_peft(model)
    if merged:
        if base_path is None:
            raise ValueError("merging LoRA adapters needs the base model path")
        model = merged_copy(model, base_path)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return merged


def load_for_export(checkpoint: Path, base_path: str | None):
    """The model of a trainer checkpoint folder (full weights, or an adapter merged onto ``base_path``)."""
    from transformers import AutoModelForCausalLM

    if (checkpoint / "adapter_config.json").is_file():
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(base_path)
        return PeftModel.from_pretrained(base, str(checkpoint)).merge_and_unload()
    return AutoModelForCausalLM.from_pretrained(str(checkpoint))


class PeakKeeper:
    """Tracks the best eval so far and keeps its model in ``RUN_DIR/peak/`` (see the module docstring)."""

    def __init__(self, run_dir: Path, enabled: bool, record: dict[str, Any]):
        self.dir = Path(run_dir) / PEAK_DIR
        self.enabled = enabled
        #: Fixed fields of peak.json: eval noise, seed, source model, task, micro_scale.
        self.record = dict(record)
        self.best_step: int | None = None
        self.best_accuracy: float | None = None

    def is_new_best(self, accuracy: float) -> bool:
        return self.best_accuracy is None or accuracy > self.best_accuracy

    def seed_from_curve(self, rows: list[dict]) -> None:
        """The best eval of the curve rows already written (a resumed run)."""
        for r in rows:
            acc = r.get("accuracy")
            if isinstance(acc, (int, float)) and self.is_new_best(acc):
                self.best_step, self.best_accuracy = int(r["step"]), float(acc)

    def consider(self, model, tokenizer, step: int, accuracy: float, n: int, base_path: str | None,
                 reported: Any = None) -> bool:
        """Keep ``model`` as the peak when ``accuracy`` beats every earlier eval; True when it did. ``reported``
        (a :class:`harness.core.record.SplitEval`) is the reported split at this step, for peak.json."""
        if not self.is_new_best(accuracy):
            return False
        self.best_step, self.best_accuracy = step, accuracy
        if self.enabled:
            self._write(lambda out: export_model(model, tokenizer, out, base_path), step, accuracy, n, reported)
        return True

    def _write(self, export, step: int, accuracy: float, n: int, reported: Any = None) -> None:
        def build(tmp: Path) -> None:
            merged = export(tmp)
            lo, hi = wilson(round(accuracy * n), n) if n else (None, None)
            info = {"step": step, "accuracy": accuracy, "n": n, "interval": [lo, hi], "interval_method": "wilson 95%",
                    **self.record, "reported": reported.model_dump(mode="json") if reported is not None else None,
                    "lora_merged": merged, "saved_at": now()}
            atomic_write_text(tmp / PEAK_JSON, json.dumps(info, indent=2) + "\n")

        atomic_build_dir(self.dir, build)
        log.info("peak: step %d, accuracy %.4f -> %s", step, accuracy, self.dir)

    def info(self) -> dict | None:
        """peak.json of the kept model, or None."""
        path = self.dir / PEAK_JSON
        return json.loads(path.read_text()) if path.is_file() else None

    def reconcile(self, start: int, checkpoints: Path, base_path: str | None, tokenizer, n: int,
                  reported: Any = None) -> None:
        """On resume: make ``peak/`` hold the best eval of the curve up to ``start``.

        A peak written after the resumed checkpoint (the run was killed between the two) is of a
        step the resumed run has not reached: it is rebuilt from the checkpoint of the best step when
        one is left, else removed (the next best eval writes it again).
        """
        if not self.enabled or self.best_step is None:
            return
        kept = self.info()
        if kept is not None and kept.get("step") == self.best_step:
            return
        source = checkpoints / f"checkpoint-{self.best_step}"
        if source.is_dir():
            log.warning("resume: rebuilding %s from %s (it held step %s)", self.dir, source,
                        kept.get("step") if kept else None)
            self._write(lambda out: _export_checkpoint(source, base_path, tokenizer, out), self.best_step,
                        self.best_accuracy, n, reported)
        elif kept is not None:
            log.warning("resume: %s held step %s, after the resumed step %d, and the model of the best step %d "
                        "is in no checkpoint; removed (the next best eval writes it again)", self.dir,
                        kept.get("step"), start, self.best_step)
            shutil.rmtree(self.dir)


def _export_checkpoint(source: Path, base_path: str | None, tokenizer, out: Path) -> bool:
    model = load_for_export(source, base_path)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return (source / "adapter_config.json").is_file()
