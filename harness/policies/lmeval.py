"""lm-eval backend: drive any model type registered in lm-evaluation-harness through the agentic loop.

The model is built with ``lm_eval.api.registry.get_model(TYPE).create_from_arg_string(ARGS)``
(e.g. ``--model hf --model-args pretrained=PATH`` or ``--model local-chat-completions
--model-args base_url=...``) and called through ``generate_until`` with the environment's stop
strings (the task's closing tags) as stop sequences. lm-eval strips the stop sequence, so the
closing tag is put back (:func:`~harness.episode.protocol.restore_stop`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np

from harness.environment.env import Generation
from harness.episode.protocol import restore_stop
from harness.episode.record import Episode
from harness.models.rng import seeded
from harness.policies.hf import render_prompts


class LMEvalPolicy:
    def __init__(self, model_type: str, model_args: str = "", lm=None, temperature: float = 0.0, seed: int = 0):
        from lm_eval.api.registry import get_model
        from lm_eval.utils import simple_parse_args_string

        self.name = f"lm-eval:{model_type}"
        extra = {}
        if lm is None and "device" not in simple_parse_args_string(model_args or ""):
            import torch  # lm-eval's HFLM defaults to cuda; pick what this machine has, as simple_evaluate does

            extra["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        self.lm = lm or get_model(model_type).create_from_arg_string(model_args or "", extra)
        self.tokenizer = getattr(self.lm, "tokenizer", None)
        self.gen_kwargs = {"do_sample": temperature > 0, **({"temperature": temperature} if temperature > 0 else {})}
        self.sampling = temperature > 0
        self._seeds = np.random.default_rng(seed)

    def _contexts(self, episodes: list[Episode]) -> list[str]:
        chats = [e.messages for e in episodes]
        if hasattr(self.lm, "apply_chat_template") and getattr(self.tokenizer, "chat_template", None):
            return [self.lm.apply_chat_template(c, add_generation_prompt=True) for c in chats]
        if self.tokenizer is not None:
            return render_prompts(self.tokenizer, chats)
        return render_prompts(None, chats)

    def _count(self, text: str) -> int:
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return len(text.split())

    def generate(self, episodes: list[Episode], max_new_tokens: int, stop: Sequence[str] = ()) -> list[Generation]:
        from lm_eval.api.instance import Instance

        until = list(stop or ())
        reqs = [
            Instance(request_type="generate_until", doc={}, idx=i,
                     arguments=(ctx, {"until": until, "max_gen_toks": max_new_tokens, **self.gen_kwargs}))
            for i, ctx in enumerate(self._contexts(episodes))
        ]
        import inspect

        quiet = "disable_tqdm" in inspect.signature(self.lm.generate_until).parameters
        # lm-eval's local models sample from the global torch RNG: seed it from our own stream, for this call
        # only (identical seeds give identical episodes; the caller's RNG state is left as it was).
        rng = seeded(int(self._seeds.integers(2**31 - 1))) if self.sampling else nullcontext()
        with rng:
            texts = self.lm.generate_until(reqs, disable_tqdm=True) if quiet else self.lm.generate_until(reqs)
        out = []
        for t in texts:
            n = self._count(t)
            if until and n < max_new_tokens:  # stopped by a closing tag (which lm-eval strips), not by the token limit
                t = restore_stop(t, until)
            out.append(Generation(t, min(n, max_new_tokens)))  # re-tokenising decoded text can overcount
        return out


def load(model: str, model_args: str = "", temperature: float = 0.0, seed: int = 0, **_: object) -> LMEvalPolicy:
    return LMEvalPolicy(model, model_args, temperature=temperature, seed=seed)
