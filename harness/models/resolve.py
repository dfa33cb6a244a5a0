"""What a ``--model`` name means: the harness's own CPU-built models by name, anything else unchanged;
and whether a model is micro-scale (one decision for ``harness run`` and ``harness train``)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.data.loading import Corpus

#: Model names that are micro-scale by construction (built by the harness on CPU).
MICRO_SCALE_MODELS = ("micro", "tiny")
#: Files that mark a local model folder as micro-scale: the micro build's record; a training run's
#: ``peak/`` record (``peak.json`` with ``"micro_scale": true``).
BUILD_RECORD, PEAK_RECORD = "harness_build.json", "peak.json"


def is_micro_scale(model: str | None) -> bool:
    """True for the harness's own CPU-built models: by name, by their build record, or for the peak
    checkpoint of a training run that started from one.

    >>> is_micro_scale("micro"), is_micro_scale("tiny"), is_micro_scale("Qwen/Qwen2.5-3B-Instruct")
    (True, True, False)
    """
    if not model:
        return False
    if model in MICRO_SCALE_MODELS:
        return True
    folder = Path(model)
    if (folder / BUILD_RECORD).is_file():
        return True
    record = folder / PEAK_RECORD
    if record.is_file():
        try:
            return bool(json.loads(record.read_text()).get("micro_scale"))
        except (OSError, ValueError):
            return False
    return False


def resolve_model_path(model: str, corpus: Corpus | None = None) -> str:
    """``tiny`` and ``micro`` become built local folders; anything else (path or hub id) is returned unchanged.

    >>> resolve_model_path("Qwen/Qwen2.5-3B-Instruct")
    'Qwen/Qwen2.5-3B-Instruct'
    """
    if model == "micro":
        from harness.models.micro import resolve_micro

        return resolve_micro(corpus_checksum=corpus.checksum if corpus is not None else None)
    if model == "tiny":
        if corpus is None:
            raise ValueError("building the tiny model needs the task corpus")
        from harness.models.tiny import build_tiny

        return str(build_tiny(corpus))
    return model
