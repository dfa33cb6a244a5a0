"""transformers backend: any causal LM by local path or hub id, CPU or GPU, chat template applied.

Each turn, all live episodes' conversations are rendered with the tokenizer's chat template,
left-padded into one batch and generated together; generation stops at ``</search>`` or
``</answer>`` (``stop_strings``) or at ``max_new_tokens``.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

from harness.environment.env import Generation
from harness.episode.record import Episode
from harness.models.rng import seeded

STOP_STRINGS = ["</search>", "</answer>"]


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

    def generate(self, episodes: list[Episode], max_new_tokens: int, stop=None) -> list[Generation]:
        stops = list(STOP_STRINGS if stop is None else stop) or None  # [] = only at the end of the turn
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


def load(model: str, corpus=None, device: str | None = None, dtype: str = "auto", temperature: float = 0.0,
         seed: int = 0, batch_size: int = 32, **_: object) -> HFPolicy:
    from harness.models.resolve import resolve_model_path

    path = resolve_model_path(model, corpus)
    pol = HFPolicy(path, device=device, dtype=dtype, sampling=SamplingConfig(temperature=temperature, seed=seed),
                   batch_size=batch_size)
    pol.name = model
    return pol
