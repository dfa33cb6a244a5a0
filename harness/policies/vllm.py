"""vLLM backend (GPU; optional extra ``pip install '.[vllm]'``).

All live episodes' conversations go to ``LLM.chat`` in one call per turn; generation stops at the
environment's stop strings (the task's closing tags, kept in the output). Extra sampling parameters
pass through.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.environment.env import Generation
from harness.episode.record import Episode
from harness.models.rng import preserved_rng


def _parse_args(spec: str) -> dict[str, Any]:
    """``"a=1,b=0.5,c=x"`` -> ``{"a": 1, "b": 0.5, "c": "x"}`` (numbers and booleans typed).

    >>> _parse_args("top_k=20,top_p=0.9,skip_special_tokens=false")
    {'top_k': 20, 'top_p': 0.9, 'skip_special_tokens': False}
    """
    out: dict[str, Any] = {}
    for item in filter(None, (x.strip() for x in (spec or "").split(","))):
        k, _, v = item.partition("=")
        low = v.lower()
        if low in ("true", "false"):
            out[k] = low == "true"
            continue
        for cast in (int, float):
            try:
                out[k] = cast(v)
                break
            except ValueError:
                continue
        else:
            out[k] = v
    return out


class VLLMPolicy:
    def __init__(self, model: str, temperature: float = 0.0, top_p: float = 1.0, seed: int = 0,
                 gpu_memory_utilization: float = 0.85, max_model_len: int | None = None,
                 sampling_kwargs: dict[str, Any] | None = None, llm=None):
        from vllm import LLM, SamplingParams

        self.name = model
        if llm is None:
            # vLLM seeds Python's, NumPy's and torch's global RNGs with `seed` when its engine starts; sampling
            # is seeded per request (SamplingParams.seed), so the process's RNG state is put back afterwards.
            with preserved_rng():
                llm = LLM(model=model, seed=seed, gpu_memory_utilization=gpu_memory_utilization,
                          max_model_len=max_model_len)
        self.llm = llm
        self._params = dict(temperature=temperature, top_p=top_p, seed=seed, include_stop_str_in_output=True,
                            **(sampling_kwargs or {}))
        self._SamplingParams = SamplingParams

    def generate(self, episodes: list[Episode], max_new_tokens: int, stop: Sequence[str] = ()) -> list[Generation]:
        params = self._SamplingParams(max_tokens=max_new_tokens, **{**self._params, "stop": list(stop or ())})
        outs = self.llm.chat([e.messages for e in episodes], params, use_tqdm=False)
        return [Generation(o.outputs[0].text, len(o.outputs[0].token_ids)) for o in outs]


#: ``--model-args`` keys that configure the engine; every other key is a SamplingParams field.
ENGINE_ARGS = ("gpu_memory_utilization", "max_model_len", "top_p")


def load(model: str, corpus=None, temperature: float = 0.0, seed: int = 0, model_args: str = "",
         **kwargs: Any) -> VLLMPolicy:
    """``--model-args "gpu_memory_utilization=0.5,top_k=20,repetition_penalty=1.1"`` passes through."""
    from harness.models.resolve import resolve_model_path

    args = _parse_args(model_args)
    known = {k: args.pop(k) for k in ENGINE_ARGS if k in args}
    pol = VLLMPolicy(resolve_model_path(model, corpus), temperature=temperature, seed=seed, sampling_kwargs=args,
                     **known)
    pol.name = model
    return pol
