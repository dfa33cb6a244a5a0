"""transformers backend: any causal LM by local path or hub id, CPU or GPU; the one Hugging Face
generation path of evaluation and training.

:class:`HFPolicy` generates a turn for a batch of live episodes in one of two ways, both stopping at
the stop strings the environment passes (:attr:`~harness.environment.env.Environment.stop_strings`,
the task's closing tags; none: only at the end of the turn or ``max_new_tokens``):

``generate``  (evaluation, the :class:`~harness.environment.env.Policy` interface) renders each
              episode's conversation with the tokenizer's chat template, left-pads them into batches
              of ``batch_size`` and generates greedily, or sampled from the policy's own seeded stream;
              the text is decoded up to the first padding or end-of-sequence token.
``sample``    (training, through :class:`harness.train.rollout.TraceSampler`) continues token contexts
              (an episode's trace, never a re-rendered chat) in one batch, sampling from the global
              torch RNG the rollout seeds per step, with the template's structural special tokens
              suppressed, and returns each turn's ids, the sampling logprob of each and whether it
              ended on end-of-turn or a stop string.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

from harness.environment.env import Generation
from harness.episode.record import Episode
from harness.models.rng import seeded


class Diverged(RuntimeError):
    """Training produced non-finite weights, logits or loss."""


@dataclass
class SamplingConfig:
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0


def render_prompts(tokenizer, conversations: list[list[dict]]) -> list[str]:
    """Chat-template each conversation with a generation prompt (plain text if no template)."""
    if getattr(tokenizer, "chat_template", None):
        return [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    return ["\n".join(f"{m['role']}: {m['content']}" for m in c) + "\nassistant:" for c in conversations]


class HFPolicy:
    def __init__(self, model_path: str, device: str | None = None, dtype: str = "auto",
                 sampling: SamplingConfig | None = None, batch_size: int = 32, model=None, tokenizer=None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = model_path
        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.sampling = sampling or SamplingConfig()
        self.batch_size = batch_size
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if model is None:
            torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16,
                           "float16": torch.float16}[dtype]
            model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype).to(self.device)
        self.model = model.eval()
        self._gen = torch.Generator(device="cpu").manual_seed(self.sampling.seed)
        eos = self.tokenizer.eos_token_id
        self.eos_ids = {eos} if isinstance(eos, int) else set(eos or [])

    def reseed(self, seed: int) -> None:
        """Restart the sampling stream from ``seed`` (each of K samples of a question draws from its own
        seed: :func:`harness.environment.samples.sample_seed`)."""
        import torch

        self.sampling = dataclasses.replace(self.sampling, seed=seed)
        self._gen = torch.Generator(device="cpu").manual_seed(seed)

    # ------------------------------------------------------------------ conversations (evaluation)
    def generate(self, episodes: list[Episode], max_new_tokens: int, stop: Sequence[str] = ()) -> list[Generation]:
        stops = list(stop or ()) or None  # none: only at the end of the turn
        out: list[Generation] = []
        for i in range(0, len(episodes), self.batch_size):
            out.extend(self._generate_batch([e.messages for e in episodes[i : i + self.batch_size]], max_new_tokens,
                                            stops))
        return out

    def _generate_batch(self, conversations: list[list[dict]], max_new_tokens: int, stops=None) -> list[Generation]:
        torch = self.torch
        prompts = render_prompts(self.tokenizer, conversations)
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        greedy = self.sampling.temperature <= 0
        # Seeded sampling (identical seeds give identical episodes on CPU): `generate` draws from the global
        # torch RNG and takes no generator, so it is seeded from our own stream for this call only.
        rng = nullcontext() if greedy else seeded(int(torch.randint(0, 2**31 - 1, (1,), generator=self._gen)))
        with rng, torch.inference_mode():
            seqs = self.model.generate(
                **enc, max_new_tokens=max_new_tokens, do_sample=not greedy,
                temperature=self.sampling.temperature if not greedy else None,
                top_p=self.sampling.top_p if not greedy else None,
                stop_strings=stops, tokenizer=self.tokenizer,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = seqs[:, enc["input_ids"].shape[1]:]
        gens = []
        special = set(self.tokenizer.all_special_ids)
        for row in new.tolist():
            ids = []
            for t in row:
                if t == self.tokenizer.pad_token_id or t == self.tokenizer.eos_token_id:
                    break
                ids.append(t)
            text = self.tokenizer.decode([t for t in ids if t not in special], skip_special_tokens=False)
            gens.append(Generation(text, len(ids)))
        return gens

    # ------------------------------------------------------------------ token contexts (training)
    def sample(self, contexts: list[list[int]], max_new_tokens: int, stop: Sequence[str] = ()) -> list[Generation]:
        """Sample one turn for each token context, with the logprob of every sampled token.

        Logprobs are ``log_softmax(logits / temperature)`` of the raw logits (no top-p/top-k), which is
        what TRL recomputes for the same tokens. The template's structural special tokens (BOS, padding,
        role headers) are suppressed so a turn is always plain text plus, at most, an end-of-turn token.
        Sampling draws from the global torch RNG (the training rollout seeds it per step).
        """
        torch = self.torch
        from transformers import GenerationConfig

        stops = list(stop or ())
        temperature = self.sampling.temperature
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)
        suppress = sorted(set(self.tokenizer.all_special_ids) - self.eos_ids)
        width = max(len(c) for c in contexts)
        ids = torch.tensor([[pad_id] * (width - len(c)) + c for c in contexts], device=self.model.device)
        mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in contexts], device=self.model.device)
        gc = GenerationConfig(do_sample=True, temperature=temperature, top_p=self.sampling.top_p, top_k=0,
                              max_new_tokens=max_new_tokens, stop_strings=stops or None, pad_token_id=pad_id,
                              eos_token_id=sorted(self.eos_ids), suppress_tokens=suppress or None,
                              output_logits=True, return_dict_in_generate=True)
        try:
            with torch.no_grad():
                out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=gc,
                                          tokenizer=self.tokenizer)
        except RuntimeError as e:
            if not all(torch.isfinite(p).all() for p in self.model.parameters()):
                raise Diverged("model weights are not finite (NaN/inf); generation impossible") from e
            raise
        new = out.sequences[:, width:]
        lps = torch.stack([torch.log_softmax(step.float() / temperature, dim=-1)
                           .gather(-1, new[:, i : i + 1]).squeeze(-1) for i, step in enumerate(out.logits)], dim=1)
        return [self._cut(row, lp, stops) for row, lp in zip(new.tolist(), lps.tolist())]

    def _cut(self, row: list[int], lps: list[float], stops: list[str]) -> Generation:
        """Keep the turn up to its first EOS or the end of its first stop string (generate pads after)."""
        decode = self.tokenizer.decode
        n = next((i + 1 for i, t in enumerate(row) if t in self.eos_ids), len(row))
        stopped = n < len(row) or (bool(row) and row[-1] in self.eos_ids)
        if any(s in decode(row[:n]) for s in stops):
            lo, hi = 1, n  # smallest prefix holding a stop string: the predicate is monotone in the length
            while lo < hi:
                mid = (lo + hi) // 2
                if any(s in decode(row[:mid]) for s in stops):
                    hi = mid
                else:
                    lo = mid + 1
            n, stopped = lo, True
        ids = row[:n]
        eos = bool(ids) and ids[-1] in self.eos_ids
        if any(not math.isfinite(x) for x in lps[:n]):
            raise Diverged("non-finite sampling logprobs")
        text = decode(ids[:-1] if eos else ids, skip_special_tokens=False)
        return Generation(text, len(ids), ids=ids, logprobs=lps[:n], eos=eos, finished=stopped)


def load(model: str, corpus=None, device: str | None = None, dtype: str = "auto", temperature: float = 0.0,
         seed: int = 0, batch_size: int = 32, **_: object) -> HFPolicy:
    from harness.models.resolve import resolve_model_path

    path = resolve_model_path(model, corpus)
    pol = HFPolicy(path, device=device, dtype=dtype, sampling=SamplingConfig(temperature=temperature, seed=seed),
                   batch_size=batch_size)
    pol.name = model
    return pol
