"""What a ``--model`` name means: the harness's own CPU-built models by name, anything else unchanged;
and whether a model is micro-scale (one decision for ``harness run`` and ``harness train``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.data.loading import Corpus

#: Model names the harness builds itself on CPU (``--model tiny``, ``--model micro``); the one list,
#: which ``harness.policies`` offers as names and :func:`is_micro_scale` treats as micro-scale.
LOCAL_MODELS = ("tiny", "micro")
#: Model names that are micro-scale by construction: the local models (the same tuple).
MICRO_SCALE_MODELS = LOCAL_MODELS
#: Files that mark a local model folder as micro-scale: the micro build's record; a training run's
#: ``peak/`` record (``peak.json`` with ``"micro_scale": true``).
BUILD_RECORD, PEAK_RECORD = "harness_build.json", "peak.json"


#: ``micro:KEY=VALUE,...`` names a micro policy built with a non-default :class:`~harness.models.micro.BuildSpec`.
MICRO_PREFIX = "micro:"


def micro_spec(model: str):
    """The :class:`~harness.models.micro.BuildSpec` a ``micro`` or ``micro:KEY=VALUE,...`` name asks for; None
    for other names. Raises ConfigError on an unknown key or a value of the wrong type.

    >>> micro_spec("micro:p_retry=0.03").p_retry, micro_spec("micro").p_retry, micro_spec("tiny")
    (0.03, 0.3, None)
    >>> micro_spec("micro:p_rety=0.03")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    harness.core.errors.ConfigError: micro:p_rety=0.03: unknown build parameter 'p_rety'; valid: seed, vocab,
        hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, steps, batch_size,
        learning_rate, warmup_steps, weight_decay, p_retry, demo_noise, threads
    """
    if model != "micro" and not model.startswith(MICRO_PREFIX):
        return None
    from dataclasses import fields, replace

    from harness.core.errors import ConfigError
    from harness.models.micro import BuildSpec

    spec = BuildSpec()
    types = {f.name: type(getattr(spec, f.name)) for f in fields(BuildSpec) if f.name != "version"}
    items = model[len(MICRO_PREFIX):].split(",") if model != "micro" else []
    if model != "micro" and not any(i.strip() for i in items):
        raise ConfigError(f"{model}: no build parameter after 'micro:' (write micro, or micro:p_retry=0.03)")
    values: dict = {}
    for item in items:
        key, eq, raw = item.partition("=")
        key = key.strip()
        if key not in types:
            raise ConfigError(f"{model}: unknown build parameter {key!r}; valid: {', '.join(types)}")
        if key in values:
            raise ConfigError(f"{model}: {key} is given twice")
        try:
            value = types[key](raw.strip()) if eq else None
        except ValueError:
            value = None
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            raise ConfigError(f"{model}: {key} needs a finite {types[key].__name__} value, "
                              f"as in {key}={getattr(spec, key)}")
        values[key] = value
    built = replace(spec, **values)
    problems = [f"{k} must be in [0, 1]" for k in ("p_retry", "demo_noise") if not 0 <= getattr(built, k) <= 1]
    problems += [f"{k} must be > 0" for k in ("vocab", "hidden_size", "intermediate_size", "num_hidden_layers",
                                              "num_attention_heads", "steps", "batch_size", "learning_rate", "threads")
                 if getattr(built, k) <= 0]
    problems += [f"{k} must be >= 0" for k in ("warmup_steps", "weight_decay") if getattr(built, k) < 0]
    from harness.core.options import SEED_MAX

    if not 0 <= built.seed <= SEED_MAX:
        problems.append(f"seed must be in 0 .. {SEED_MAX}")
    if built.num_attention_heads > 0 and built.hidden_size % built.num_attention_heads:
        problems.append("hidden_size must be a multiple of num_attention_heads")
    if problems:
        raise ConfigError(f"{model}: " + "; ".join(problems))
    return built


def is_micro_scale(model: str | None) -> bool:
    """True for the harness's own CPU-built models: by name, by their build record, or for the peak
    checkpoint of a training run that started from one.

    >>> is_micro_scale("micro"), is_micro_scale("tiny"), is_micro_scale("Qwen/Qwen2.5-3B-Instruct")
    (True, True, False)
    """
    if not model:
        return False
    if model in LOCAL_MODELS or model.startswith(MICRO_PREFIX):
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


def resolve_model_path(model: str, corpus: "Corpus | None" = None) -> str:
    """``tiny``, ``micro`` and ``micro:KEY=VALUE`` become built local folders, a GGUF model
    (``smollm2-135m``, ``PATH.gguf``: :mod:`harness.models.gguf`) its converted folder; anything else
    (path or hub id) is returned unchanged.

    >>> resolve_model_path("Qwen/Qwen2.5-3B-Instruct")
    'Qwen/Qwen2.5-3B-Instruct'
    """
    from harness.models.gguf import is_gguf

    if is_gguf(model):
        from harness.models.gguf import resolve_gguf

        return resolve_gguf(model)
    spec = micro_spec(model)
    if spec is not None:
        from harness.models.micro import resolve_micro

        return resolve_micro(corpus_checksum=corpus.checksum if corpus is not None else None, spec=spec)
    if model == "tiny":
        if corpus is None:
            raise ValueError("building the tiny model needs the task corpus")
        from harness.models.tiny import build_tiny

        return str(build_tiny(corpus))
    return model
