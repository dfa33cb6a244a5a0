"""Scoped RNG/determinism state, the SFT loop and the demonstrations generator, and the backends' seeding.

Unit: the context managers and the lm-eval / vLLM backends with stand-in models (no weights).
Integration: a tiny Llama built from a config for the HF backend and the SFT loop; the real
environment for demonstrations.
"""

from __future__ import annotations

import random
import sys
import types
from itertools import islice, pairwise

import numpy as np
import pytest
import torch

from harness.models.rng import deterministic, preserved_rng, seeded
from harness.models.sft import IGNORE, SFTConfig, demonstrations, train_sft


def _global_state():
    return torch.get_rng_state().clone(), random.getstate(), np.random.get_state()[1].copy()


def _same(a, b) -> bool:
    return torch.equal(a[0], b[0]) and a[1] == b[1] and bool((a[2] == b[2]).all())


# ----------------------------------------------------------------------------- context managers


@pytest.mark.unit
def test_preserved_rng_restores_every_global_stream_even_on_error():
    torch.manual_seed(7)
    random.seed(7)
    np.random.seed(7)
    before = _global_state()
    with pytest.raises(RuntimeError), preserved_rng():
        torch.manual_seed(1), random.seed(1), np.random.seed(1)
        torch.rand(3), random.random(), np.random.rand()
        raise RuntimeError("boom")
    assert _same(_global_state(), before)
    expected = torch.rand(2)  # the stream goes on where it was
    torch.set_rng_state(before[0])
    assert torch.equal(torch.rand(2), expected)


@pytest.mark.unit
def test_seeded_gives_the_same_draws_and_leaves_the_stream_alone():
    torch.manual_seed(3)
    before = _global_state()
    with seeded(11):
        a = torch.rand(4)
    with seeded(11):
        b = torch.rand(4)
    with seeded(12):
        c = torch.rand(4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert _same(_global_state(), before)


@pytest.mark.unit
def test_deterministic_scopes_threads_and_algorithms():
    threads = torch.get_num_threads()
    other = 1 if threads != 1 else 2
    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic(seed=0, threads=other):
        assert torch.get_num_threads() == other and torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)  # a caller's own setting comes back as it was
    try:
        with deterministic(seed=0, threads=other):
            assert not torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


# ----------------------------------------------------------------------------- backends


class _SamplingLM:
    """An lm-eval model stand-in whose replies are draws from the global torch RNG (as HFLM's sampling is)."""

    def generate_until(self, requests, disable_tqdm=False):
        return [f"<answer>{torch.randint(0, 10**6, (1,)).item()}" for _ in requests]


def _episodes(n):
    return [types.SimpleNamespace(messages=[{"role": "user", "content": f"q{i}"}]) for i in range(n)]


@pytest.mark.unit
def test_lmeval_backend_sampling_is_seeded_and_scoped():
    from harness.policies.lmeval import LMEvalPolicy

    def texts(seed, temperature=1.0):
        pol = LMEvalPolicy("stand-in", lm=_SamplingLM(), temperature=temperature, seed=seed)
        return [g.text for g in pol.generate(_episodes(3), 8)]

    torch.manual_seed(99)
    before = _global_state()
    first = texts(0)
    assert _same(_global_state(), before)  # the caller's stream is untouched
    assert texts(0) == first and texts(1) != first  # the policy's own seed decides
    greedy = texts(0, temperature=0.0)  # greedy decoding takes no seed: the global stream is used as is
    assert greedy != first and not _same(_global_state(), before)


@pytest.mark.unit
def test_vllm_engine_start_does_not_reseed_the_process(monkeypatch):
    """vLLM seeds the global RNGs when its engine starts; the backend puts them back (a stand-in engine)."""
    calls = []

    class LLM:
        def __init__(self, model, seed, **kw):
            calls.append((model, seed))
            random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)

    fake = types.ModuleType("vllm")
    fake.LLM, fake.SamplingParams = LLM, dict
    monkeypatch.setitem(sys.modules, "vllm", fake)
    from harness.policies.vllm import VLLMPolicy

    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    before = _global_state()
    VLLMPolicy("some/model", seed=3)
    assert calls == [("some/model", 3)] and _same(_global_state(), before)


@pytest.fixture(scope="module")
def tiny_lm():
    """A 1-layer Llama built from a config, with a byte-level tokenizer trained on a few sentences."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness.models.tiny import train_tokenizer

    texts = ["the oxygen tank pressure was normal", "the crew searched again and found the value"] * 20
    tok = train_tokenizer(texts, vocab_size=300)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    with seeded(0):
        model = LlamaForCausalLM(cfg)
    return model, tok


@pytest.mark.integration
def test_hf_backend_sampling_is_seeded_and_scoped(tiny_lm):
    from harness.policies.hf import HFPolicy, SamplingConfig

    model, tok = tiny_lm

    def texts(seed):
        pol = HFPolicy("tiny-from-config", device="cpu", sampling=SamplingConfig(temperature=1.0, seed=seed),
                       model=model, tokenizer=tok)
        return [g.text for g in pol.generate(_episodes(4), 12)]

    torch.manual_seed(42)
    before = _global_state()
    first = texts(0)
    assert _same(_global_state(), before)
    assert texts(0) == first and texts(1) != first


# ----------------------------------------------------------------------------- SFT loop and demonstrations


@pytest.mark.integration
def test_sft_learns_the_labelled_tokens_only(tiny_lm):
    import copy

    model, tok = tiny_lm
    model = copy.deepcopy(model)
    ids = tok("the crew searched again", add_special_tokens=False)["input_ids"]
    labels = [IGNORE] * 2 + ids[2:]
    start = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = SFTConfig(steps=30, batch_size=2, learning_rate=1e-2, schedule="cosine", warmup_steps=3, max_grad_norm=1.0)
    rows = []
    with deterministic(seed=0, threads=1):
        log = train_sft(model, [(ids, labels)], tok.pad_token_id, cfg, progress=lambda n, row: rows.append(row))
    assert len(rows) == 30 and [r["step"] for r in log] == [1, 25]
    assert rows[-1]["loss"] < rows[0]["loss"] / 4  # it memorises the one example
    assert any(not torch.equal(v, start[k]) for k, v in model.state_dict().items())
    assert not model.training
    with pytest.raises(ValueError, match="no examples"):
        train_sft(model, [], tok.pad_token_id, cfg)


@pytest.mark.unit
def test_sft_config_schedules_and_orders():
    cos = SFTConfig(steps=100, batch_size=4, learning_rate=1.0, schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    f = [float(cos.lr_factor(s)) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == 1.0 and f[10] == 1.0 and f[99] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in pairwise(f[10:]))  # monotone decay after warm-up
    shuffled = list(SFTConfig(steps=2, batch_size=4, learning_rate=1.0, order="shuffle", seed=0).batches(8))
    flat = [i for batch in shuffled for i in batch]
    assert sorted(flat) == list(range(8)) and flat != list(range(8))
    assert shuffled == list(SFTConfig(steps=2, batch_size=4, learning_rate=1.0, order="shuffle", seed=0).batches(8))
    with pytest.raises(ValueError, match="schedule"):
        SFTConfig(steps=1, batch_size=1, learning_rate=1.0, schedule="linear").lr_factor(0)


@pytest.mark.integration
def test_demonstrations_play_the_policy_through_the_real_environment(task, data, bm25):
    from harness.core.config import make_noise
    from harness.environment.env import Environment
    from harness.policies.scripted import ScriptedPolicy

    seeds = []

    def make_env(rnd):
        seeds.append(rnd)
        return Environment.from_task(task, data, noise=make_noise(1.0, ["drop_gold"]), seed=rnd, retriever=bm25,
                                     max_turns=2)

    qs = data.split("train")[:4]
    policy = ScriptedPolicy("oracle-retry", max_turns=10)  # it would go on searching; the environment stops it
    convs = list(demonstrations(policy, make_env, qs, rounds=2))
    assert len(convs) == 8 and seeds == [0, 1]
    assert [c[1]["content"] for c in convs[:4]] == [c[1]["content"] for c in convs[4:]]  # one pass per round
    # gold always dropped: oracle-retry searches until the environment's max_turns, so <information> comes last
    assert all(c[-1]["role"] == "user" and "<information>" in c[-1]["content"] for c in convs)
    trimmed = list(demonstrations(policy, make_env, qs, rounds=1, through_last_assistant=True))
    assert all(t[-1]["role"] == "assistant" and t == c[:len(t)] for t, c in zip(trimmed, convs))
    # unbounded rounds: the caller takes what it needs
    assert len(list(islice(demonstrations(policy, make_env, qs), 10))) == 10
