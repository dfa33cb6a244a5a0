"""Generation backends behind one interface (:class:`harness.environment.env.Policy`), loaded lazily by name.

``harness --help`` imports none of them; a backend's heavy dependencies (torch, transformers,
vLLM, lm-eval) are imported only when it is chosen.

==========  =========================================================================
backend     what ``--model`` names
==========  =========================================================================
scripted    a reference policy: ``closed-book``, ``one-search``, ``oracle-retry``
hf          a local path or hub id of a causal LM, or ``tiny`` / ``micro`` (built by the harness)
vllm        a local path or hub id (GPU; ``pip install '.[vllm]'``)
lm-eval     an lm-eval model type (``hf``, ``local-chat-completions``, ...) + ``--model-args``
openai      the name a server serves at ``--base-url`` (OpenAI chat completions; ``[openai]`` extra)
==========  =========================================================================

A name that is none of these and looks like a misspelt harness name (``orcale-retry``) is refused at
once with a suggestion (:func:`check_model_name`); a hub id that cannot be loaded (offline, not on the
hub, not cached) is one line saying why (:func:`hub_error_message`), not a transformers traceback.
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError
from harness.models.resolve import LOCAL_MODELS  # the names the harness builds itself on CPU

BACKENDS: dict[str, str] = {
    "scripted": "harness.policies.scripted:load",
    "hf": "harness.policies.hf:load",
    "vllm": "harness.policies.vllm:load",
    "lm-eval": "harness.policies.lmeval:load",
    "openai": "harness.policies.openai_api:load",
}


def infer_backend(model: str) -> str:
    """Pick a backend when the user named only a model."""
    from harness.policies.scripted import SCRIPTED

    return "scripted" if model in SCRIPTED else "hf"


def known_model_names() -> tuple[str, ...]:
    """Names ``--model`` understands without a path or hub id."""
    from harness.models.gguf import GGUF_MODELS
    from harness.policies.scripted import SCRIPTED

    return (*SCRIPTED, *LOCAL_MODELS, *GGUF_MODELS)


def suggest_model(model: str) -> str | None:
    """The known name ``model`` most likely misspells, if any.

    >>> suggest_model("orcale-retry"), suggest_model("Qwen/Qwen2.5-3B-Instruct")
    ('oracle-retry', None)
    """
    close = difflib.get_close_matches(model, known_model_names(), n=1, cutoff=0.75)
    return close[0] if close else None


def check_model_name(model: str, backend: str) -> None:
    """Refuse, before anything is loaded, a name that is not a known one, a path, nor plausibly a hub id.

    A name without ``org/`` that is close to a scripted policy or a local model is taken as a typo;
    ``--backend lm-eval`` names an lm-eval model type and ``--backend openai`` a served model: neither is
    checked here (the server is asked when the backend loads).

    >>> check_model_name("oracle-retry", "scripted"); check_model_name("gpt2", "hf")
    >>> check_model_name("orcale-retry", "hf")
    Traceback (most recent call last):
    ...
    harness.core.errors.ConfigError: unknown model 'orcale-retry': did you mean 'oracle-retry'? ...
    """
    from harness.models.gguf import GGUF_MODELS, gguf_file, is_gguf
    from harness.policies.scripted import SCRIPTED

    if backend not in ("lm-eval", "openai") and is_gguf(model):
        gguf_file(model)  # not installed (or no such file): one line saying how to install it
        return
    if backend in ("lm-eval", "openai") or model in known_model_names() or "/" in model or Path(model).exists():
        return
    if model.startswith("micro:"):
        from harness.models.resolve import micro_spec

        micro_spec(model)  # an unknown build parameter fails here
        return
    guess = suggest_model(model)
    if guess:
        raise ConfigError(f"unknown model {model!r}: did you mean {guess!r}? (--model takes a scripted policy: "
                          f"{', '.join(SCRIPTED)}; a local model: {', '.join(LOCAL_MODELS)}; a real model "
                          f"shipped as GGUF: {', '.join(GGUF_MODELS)}; a path; or a hub id such as org/name)")


def check_hub_model(model: str, backend: str) -> None:
    """For a hub id loaded by the hf or vllm backend: when the hub cannot be reached (checked in a second or
    two: :func:`harness.models.hub.offline_if_unreachable`, which then switches this process to offline mode)
    or ``HF_HUB_OFFLINE`` is set, and the model is not in the local hub cache, a ConfigError now, before data,
    models or a run directory, not after huggingface_hub's retries. ``harness run`` and ``harness train`` call
    it after :func:`check_model_name` (which stays a check of the name alone)."""
    from harness.models.hub import in_hub_cache, looks_like_hub_id, offline_env, offline_if_unreachable

    if backend not in ("hf", "vllm") or not looks_like_hub_id(model):
        return
    offline_if_unreachable(model)
    if offline_env() and not in_hub_cache(model):
        raise ConfigError(_offline_message(model))


def _offline_message(model: str) -> str:
    from harness.models.hub import offline_env, went_offline

    what = (f"cannot load model {model!r}: it is not a scripted policy, a local model "
            f"({', '.join(LOCAL_MODELS)}) or an existing path")
    guess = suggest_model(model)
    hint = f"; did you mean {guess!r}?" if guess else ""
    why = "HF_HUB_OFFLINE is set" if offline_env() and not went_offline() else "the Hugging Face hub cannot be reached"
    return (f"{what}, and it is not in the local hub cache while {why}{hint}; download it when online "
            f"(hf download {model}) or pass a local path")


def hub_error_message(model: str, error: BaseException) -> str | None:
    """One line for a model that could not be fetched from the Hugging Face hub; None for other errors."""
    chain: list[BaseException] = []
    e: BaseException | None = error
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    names = {type(x).__name__ for x in chain}
    hub = {"LocalEntryNotFoundError", "RepositoryNotFoundError", "GatedRepoError", "RevisionNotFoundError",
           "HFValidationError", "OfflineModeIsEnabled"}
    if not names & hub:
        return None
    what = (f"cannot load model {model!r}: it is not a scripted policy, a local model "
            f"({', '.join(LOCAL_MODELS)}) or an existing path")
    guess = suggest_model(model)
    hint = f"; did you mean {guess!r}?" if guess else ""
    if "HFValidationError" in names:
        return f"{what}, nor a valid hub id (org/name){hint}"
    if "GatedRepoError" in names:
        return f"{what}; {model!r} is gated on the Hugging Face hub: accept its licence and log in (hf auth login)"
    if "RepositoryNotFoundError" in names or "RevisionNotFoundError" in names:
        return (f"{what}, and the Hugging Face hub has no such model (or it is private: log in with "
                f"hf auth login){hint}")
    return _offline_message(model)


#: lm-eval model arguments that name the model a model type loads, in the order they are looked for.
LMEVAL_MODEL_KEYS = ("pretrained", "model", "path", "model_name", "engine")


def policy_label(backend: str, model: str, model_args: str = "") -> str:
    """The name a policy's results are recorded under: the model it loads. For ``--backend lm-eval``,
    ``--model`` is an lm-eval model *type* (``hf``, ``local-completions``) and the model it loads is named in
    ``--model-args`` (``pretrained=``, ``model=``, ...); the type alone would make two models collide.

    >>> policy_label("lm-eval", "hf", "pretrained=Qwen/Qwen2.5-0.5B,device=cpu")
    'Qwen/Qwen2.5-0.5B'
    >>> policy_label("lm-eval", "local-completions", "base_url=http://h/v1,model=smollm2")
    'smollm2'
    >>> policy_label("lm-eval", "dummy", ""), policy_label("hf", "micro", "x=1")
    ('dummy', 'micro')
    """
    if backend != "lm-eval":
        return model
    args = dict(part.split("=", 1) for part in (model_args or "").split(",") if "=" in part)
    return next((args[k].strip() for k in LMEVAL_MODEL_KEYS if args.get(k, "").strip()), model)


def load_policy(backend: str, model: str, **kwargs: Any):
    """Import the backend module only now, then build its policy."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    module, fn = BACKENDS[backend].split(":")
    if backend in ("hf", "vllm", "lm-eval"):
        from harness.models.hub import offline_if_unreachable

        # no network: fail (or load from the cache) now, not after huggingface_hub's retries
        offline_if_unreachable(policy_label(backend, model, str(kwargs.get("model_args") or "")))
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        extra = {"vllm": " (install the extra: pip install '.[vllm]')"}.get(backend, "")
        raise ConfigError(f"backend {backend!r} is not available: {e}{extra}") from None
    try:
        return getattr(mod, fn)(model, **kwargs)
    except (OSError, ValueError) as e:   # transformers wraps hub errors in OSError; invalid ids are ValueErrors
        msg = hub_error_message(model, e)
        if msg is None:
            raise
        raise ConfigError(msg) from None
