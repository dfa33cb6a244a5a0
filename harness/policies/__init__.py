"""Generation backends behind one interface (:class:`harness.environment.env.Policy`), loaded lazily by name.

``harness --help`` imports none of them; a backend's heavy dependencies (torch, transformers,
vLLM, lm-eval) are imported only when it is chosen.

==========  =========================================================================
backend     what ``--model`` names
==========  =========================================================================
scripted    a reference policy: ``closed-book``, ``one-search``, ``oracle-retry``
hf          a local path or hub id of a causal LM, or ``tiny`` (built from a config)
vllm        a local path or hub id (GPU; ``pip install '.[vllm]'``)
lm-eval     an lm-eval model type (``hf``, ``local-chat-completions``, ...) + ``--model-args``
==========  =========================================================================
"""

from __future__ import annotations

import importlib
from typing import Any

from harness.core.errors import ConfigError

BACKENDS: dict[str, str] = {
    "scripted": "harness.policies.scripted:load",
    "hf": "harness.policies.hf:load",
    "vllm": "harness.policies.vllm:load",
    "lm-eval": "harness.policies.lmeval:load",
}


def infer_backend(model: str) -> str:
    """Pick a backend when the user named only a model."""
    from harness.policies.scripted import SCRIPTED

    return "scripted" if model in SCRIPTED else "hf"


def load_policy(backend: str, model: str, **kwargs: Any):
    """Import the backend module only now, then build its policy."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    module, fn = BACKENDS[backend].split(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        extra = {"vllm": " (install the extra: pip install '.[vllm]')"}.get(backend, "")
        raise ConfigError(f"backend {backend!r} is not available: {e}{extra}") from None
    return getattr(mod, fn)(model, **kwargs)
