"""``harness bench generation``: does a harness rollout generate as fast as the model can?

One side-by-side run on the same model: the harness plays whole episodes (``Environment.run_episodes``
with the Hugging Face backend), and every batch it generated is replayed through a bare
``model.generate`` with the same prompts, batch and settings. Generated tokens per second of generation
time, harness over bare, is the ratio (the goal is >= 0.9). The harness's time counts what it adds around
``generate``: rendering each conversation with the chat template, tokenising, cutting at stop strings,
decoding; the environment (search, parsing, judging) is timed apart. Each turn re-renders and re-prefills
the whole conversation (no KV cache kept between turns); ``prefill_tokens`` says how many prompt tokens
that costs per generated token. Nothing here asserts a speed.
"""

from __future__ import annotations

import time

from harness.core.results import machine_info, package_versions


def bench_generation(task: str = "apollo3", data_dir=None, model: str = "smollm2-135m", limit: int = 16,
                     batch_size: int = 16, max_new_tokens: int = 100, max_turns: int = 3, threads: int | None = None,
                     repeats: int = 1) -> dict:
    """Tokens per second of the harness's rollout and of a bare ``generate`` on the same batches."""
    import torch

    from harness.core.config import load_task
    from harness.data.loading import load_task_data
    from harness.environment.env import Environment
    from harness.policies.hf import load as load_hf
    from harness.policies.hf import render_prompts

    if threads:
        torch.set_num_threads(threads)
    t = load_task(task)
    d = load_task_data(t, data_dir)
    env = Environment.from_task(t, d, max_turns=max_turns)
    env.max_new_tokens = max_new_tokens
    policy = load_hf(model, corpus=d.corpus, batch_size=batch_size)
    batches: list[tuple[list[list[dict]], list[str]]] = []
    inner = policy._generate_batch

    def recording(conversations, n, stops=None):
        batches.append(([list(c) for c in conversations], stops))
        return inner(conversations, n, stops)

    policy._generate_batch = recording
    questions = d.split("test")[:limit]
    harness_s, harness_tokens = [], 0
    for _ in range(repeats):
        batches.clear()
        env.timers.generate_s = env.timers.env_s = 0.0
        t0 = time.perf_counter()
        episodes = env.rollout(policy, questions)
        harness_s.append(env.timers.generate_s)
        wall = time.perf_counter() - t0
        harness_tokens = sum(ep.n_generated_tokens for ep in episodes)
    tok, net = policy.tokenizer, policy.model
    bare_s, bare_tokens, prefill = [], 0, 0
    for _ in range(repeats):
        elapsed, bare_tokens, prefill = 0.0, 0, 0
        for conversations, stops in batches:
            enc = tok(render_prompts(tok, conversations), return_tensors="pt", padding=True, add_special_tokens=False)
            t0 = time.perf_counter()
            with torch.inference_mode():
                seqs = net.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, stop_strings=stops,
                                    tokenizer=tok, pad_token_id=tok.pad_token_id)
            elapsed += time.perf_counter() - t0
            new = seqs[:, enc["input_ids"].shape[1]:]
            bare_tokens += int(((new != tok.pad_token_id) & (new != tok.eos_token_id)).sum())
            prefill += int(enc["attention_mask"].sum())
        bare_s.append(elapsed)
    h, b = min(harness_s), min(bare_s)
    turns = sum(len(ep.turns) for ep in episodes)
    return {
        "machine": machine_info(), "versions": package_versions(), "model": model, "task": task,
        "episodes": len(episodes), "turns": turns, "batches": len(batches), "batch_size": batch_size,
        "max_new_tokens": max_new_tokens, "threads": torch.get_num_threads(), "repeats": repeats,
        "harness": {"generate_s": h, "generated_tokens": harness_tokens, "tokens_per_s": harness_tokens / h,
                    "env_s": env.timers.env_s, "wall_s": wall},
        "bare": {"generate_s": b, "generated_tokens": bare_tokens, "tokens_per_s": bare_tokens / b},
        "ratio": (harness_tokens / h) / (bare_tokens / b) if bare_tokens and harness_tokens else None,
        "prefill_tokens_per_generated_token": prefill / max(bare_tokens, 1),
    }
