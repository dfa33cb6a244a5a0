"""The micro task (apollo3_micro) and the micro policy build: fast checks plus one real reduced build."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace

import pytest

from harness.core.config import NoiseConfig, load_task

pytestmark = pytest.mark.tier("integration")


@pytest.fixture(scope="module")
def micro_task():
    return load_task("apollo3_micro")


@pytest.fixture(scope="module")
def micro_data(data, micro_task):  # `data` skips the module when the Apollo files are absent
    from harness.data.loading import load_task_data

    return load_task_data(micro_task)


@pytest.fixture(scope="module")
def micro_tokenizer(micro_data):
    from harness.models.micro import BuildSpec, task_tokenizer

    return task_tokenizer(micro_data, BuildSpec().vocab)


def _hook(name: str):
    """A function or class of tasks/apollo3_micro/hooks.py, reached as the harness reaches it (by path)."""
    from harness.core.config import import_hook

    return import_hook(f"hooks:{name}", load_task("apollo3_micro").source)


def _env(micro_data, level=0.0, seed=0):
    from harness.environment.env import Environment

    return Environment.from_task(micro_data.task, micro_data, noise=NoiseConfig(level=level, modes=("drop_gold",)),
                                 seed=seed)


@pytest.mark.unit
def test_task_config_hooks(micro_task, task):
    assert (micro_task.hooks.process_data, micro_task.hooks.environment) == ("hooks:process_data",
                                                                              "hooks:MicroEnvironment")
    assert (micro_task.hooks.demonstrator, micro_task.hooks.added_tokens) == ("hooks:Demonstrator",
                                                                              "hooks:added_tokens")
    assert task.hooks == type(task.hooks)()  # apollo3 has none
    assert micro_task.data.files.chunks == task.data.files.chunks and micro_task.data.files.report is None
    assert set(micro_task.presets) == {"rezero", "baseline", "retry_after_miss"}
    assert micro_task.presets["rezero"].train_noise.level == 0.5
    assert micro_task.presets["rezero"].reward_weights == task.presets["rezero"].reward_weights
    assert (micro_task.scale, task.scale) == ("micro", "paper")
    assert micro_task.reference_policies[-1] == "micro" and "micro" not in task.reference_policies
    # the task's code is reached through its hooks, from its own folder
    env_cls = micro_task.hook("environment")
    assert env_cls.__name__ == "MicroEnvironment" and env_cls.__module__.startswith("harness_task_hooks_")
    assert len(micro_task.hook("added_tokens")()) == 256


@pytest.mark.unit
def test_bad_hook_is_a_clear_error():
    from harness.core.config import HooksConfig, import_hook
    from harness.core.errors import ConfigError

    with pytest.raises(ValueError, match="must look like 'hooks:<name>'"):
        HooksConfig(process_data="not a hook")
    with pytest.raises(ConfigError, match="is not allowed"):
        import_hook("harness.nowhere:fn")


def test_code_pool_is_fixed_and_never_real_text(data, micro_task):
    CODE_POOL = micro_task.hook("added_tokens")()
    assert len(CODE_POOL) == len(set(CODE_POOL)) == 256
    text = " ".join(data.corpus.texts).lower()
    assert not [c for c in CODE_POOL if re.search(rf"\b{c}\b", text)]


#: sha256 of the first 497 micro questions as JSON rows [qid, question, answer, gold chunk ids].
FIRST_497_SHA256 = "623da875eb2b2db1cbe012e29a49e24545d63d74b93e0d30396b5bfe6492029c"


def test_micro_questions_and_split(micro_data, bm25):
    reformulations, keywords_of = _hook("reformulations"), _hook("keywords_of")
    test, dev, train = (micro_data.split(s) for s in ("test", "dev", "train"))
    # 497 facts where the suite last passed in CI (2026-12-07); a fresh install on 2026-12-08 derives a 498th, the
    # last one (chunk 341: "Apollo7 CSM 101 emergency detection system First manned flight;", gold at BM25 rank 2
    # of 2), from the same data (sha256 checked) and code; older bm25s, numpy, scipy and pandas releases gave 498
    # too, so the cause is not found yet (tasks/apollo3_micro/README.md). Only that one fact may be extra, and the
    # first 497 (qid, question, answer, gold chunks) are pinned by their checksum (taken on the 498-fact install).
    qs = micro_data.questions
    n = len(qs)
    assert n in (497, 498) and (len(test), len(dev), len(train)) == (100, 107, n - 207)
    first = json.dumps([[q.qid, q.question, q.answer, list(q.gold_chunk_ids)] for q in qs[:497]])
    assert hashlib.sha256(first.encode()).hexdigest() == FIRST_497_SHA256
    if n == 498:
        extra = qs[497]
        assert (extra.question, extra.answer, extra.gold_chunk_ids) == (
            "What value goes with: emergency detection first manned?", "101", ("341",))
    facts = micro_data.micro_facts
    chunks = [{facts[q.qid].chunk_id for q in split} for split in (test, dev, train)]
    assert not chunks[0] & chunks[1] and not chunks[0] & chunks[2] and not chunks[1] & chunks[2]  # whole chunks
    # dev is marked among the training facts, none moved: train+dev is the list the shipped policy was built on
    assert [q.qid for q in micro_data.split("train+dev")] == [f"m{i:04d}" for i in range(100, n)]
    assert len({q.question for q in micro_data.questions}) == len(micro_data.questions)
    # every query a demonstration may use retrieves the gold chunk in the top k at noise 0
    for q in test[:30]:
        for query in reformulations(keywords_of(q.question)):
            assert {h.chunk_id for h in bm25.search([query], micro_data.task.retrieval.k)[0]} & set(q.gold_chunk_ids)


def test_value_redrawn_per_episode_shown_only_with_gold(micro_data):
    Demonstrator = micro_data.task.hook("demonstrator")

    q = micro_data.split("test")[0]
    env = _env(micro_data)
    eps = env.rollout(Demonstrator(p_retry=0.0), [q, q, q])
    codes = [ep.question.answer for ep in eps]
    assert len(set(codes)) > 1 and all(ep.correct for ep in eps)
    assert all(f"«{ep.question.answer}»" in ep.messages[3]["content"] for ep in eps)
    # the same run seed replays the same values; gold dropped every time means no value is ever shown
    assert [ep.question.answer for ep in _env(micro_data).rollout(Demonstrator(p_retry=0.0), [q, q, q])] == codes
    dropped = _env(micro_data, level=1.0).rollout(Demonstrator(p_retry=1.0), [q])[0]
    assert dropped.n_searches == 4 and not dropped.gold_seen and not dropped.correct
    assert not any("«" in m["content"] for m in dropped.messages if m["role"] == "user")


def test_retrying_recovers_and_answering_anyway_does_not(micro_data):
    Demonstrator = micro_data.task.hook("demonstrator")
    from harness.scoring.metrics import compute_metrics

    qs = micro_data.split("test")
    m_once = compute_metrics(_env(micro_data, 0.5).rollout(Demonstrator(p_retry=0.0), qs))
    m_retry = compute_metrics(_env(micro_data, 0.5).rollout(Demonstrator(p_retry=1.0), qs))
    m_clean = compute_metrics(_env(micro_data, 0.0).rollout(Demonstrator(p_retry=0.0), qs))
    assert m_clean["accuracy"] == 1.0
    assert 0.3 < m_once["accuracy"] < 0.7 and m_once["persistence"] == 0.0
    assert m_retry["accuracy"] > 0.85 and m_retry["persistence"] == 1.0 and m_retry["recovery"] > 0.7


def test_encoding_matches_the_chat_template(micro_data, micro_tokenizer):
    from harness.models.micro import BuildSpec, demonstrations, encode_conversation

    spec = BuildSpec()
    tok = micro_tokenizer
    for conv in demonstrations(micro_data, replace(spec, p_retry=0.5), 20):
        ids, mask = encode_conversation(tok, conv)
        assert ids == tok(tok.apply_chat_template(conv, tokenize=False), add_special_tokens=False)["input_ids"]
        learned = tok.decode([t for t, m in zip(ids, mask) if m])
        assert learned.count("<|end|>") == sum(m["role"] == "assistant" for m in conv)
        assert "<information>" not in learned
    code = micro_data.task.hook("added_tokens")()[0]
    assert tok.tokenize(f"«{code}»").count(code) == 1  # a code word is one token


def test_reduced_build_is_deterministic_and_runs_end_to_end(micro_data, tmp_path):
    """The real path at toy size: build twice (same bytes), then `harness run --model <folder>`."""
    from typer.testing import CliRunner

    from harness.cli.app import app
    from harness.models.micro import BuildSpec, build_micro, weights_digest

    spec = BuildSpec(steps=4, batch_size=4, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                     num_attention_heads=2, vocab=600, warmup_steps=1)
    a = build_micro(tmp_path / "a", spec=spec, data=micro_data)
    b = build_micro(tmp_path / "b", spec=spec, data=micro_data)
    assert weights_digest(a) == weights_digest(b)
    info = json.loads((a / "harness_build.json").read_text())
    assert info["spec"]["steps"] == 4 and info["log"][0]["loss"] > 0
    res = CliRunner().invoke(app, ["run", "--task", "apollo3_micro", "--model", str(a), "--limit", "3",
                                   "--noise", "0", "--max-turns", "2", "--max-new-tokens", "8", "-o",
                                   str(tmp_path / "run"), "--no-report"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "run" / "results.json").read_text())
    assert out["results"][str(a)]["noise=0"]["n"] == 3


def test_build_leaves_the_processes_torch_state_as_it_was(micro_data, tmp_path):
    """A build (it can happen inside `harness run --model micro`) is seeded, single-threaded and
    deterministic inside, and leaves the caller's RNG, thread count and algorithm mode unchanged."""
    import random

    import numpy as np
    import torch

    from harness.models.micro import BuildSpec, build_micro

    spec = BuildSpec(steps=2, batch_size=2, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                     num_attention_heads=2, vocab=400, warmup_steps=1, threads=1)
    threads = torch.get_num_threads()
    assert not torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(1234)
    random.seed(5)
    np.random.seed(6)
    state = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    build_micro(tmp_path / "m", spec=spec, data=micro_data)
    assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()
    assert torch.equal(torch.get_rng_state(), state[0]) and random.getstate() == state[1]
    assert (np.random.get_state()[1] == state[2]).all()


def test_shipped_tokenizer_keeps_the_protocol_tags_when_special_tokens_are_skipped(micro_tokenizer):
    """Issue 15: lm-eval decodes with skip_special_tokens=True; the tags are plain tokens with their old ids."""
    from transformers import AutoTokenizer

    from harness.models.micro import SHIPPED
    from harness.models.tiny import PROTOCOL_TOKENS

    shipped = AutoTokenizer.from_pretrained(SHIPPED)
    text = "<think>the value is marked</think>\n<answer>«»</answer>"
    ids = shipped(text, add_special_tokens=False)["input_ids"]
    assert shipped.decode(ids, skip_special_tokens=True) == text
    assert [shipped.convert_tokens_to_ids(t) for t in PROTOCOL_TOKENS] == list(range(7, 15))  # as trained
    assert shipped.decode([shipped.eos_token_id, shipped.convert_tokens_to_ids("<|user|>")],
                          skip_special_tokens=True) == ""  # the chat-template tokens stay special
    assert micro_tokenizer.get_vocab() == shipped.get_vocab()  # the build recipe gives the shipped ids


@pytest.mark.slow
def test_micro_policy_learned_the_task(micro_data):
    """The whole eval split: accurate at noise 0, clearly hurt by drop_gold 0.5 (it does not retry)."""
    from harness.policies.hf import load
    from harness.scoring.metrics import compute_metrics

    policy = load("micro")
    qs = micro_data.split("test")
    clean = compute_metrics(_env(micro_data, 0.0).rollout(policy, qs))
    noisy = compute_metrics(_env(micro_data, 0.5).rollout(policy, qs))
    assert clean["accuracy"] >= 0.8
    assert noisy["accuracy"] <= clean["accuracy"] - 0.2


def test_shipped_micro_policy_reads_and_does_not_retry(micro_data):
    """The committed warm-start weights: right whenever the value is shown, never retries greedily."""
    from harness.models.micro import SHIPPED, BuildSpec, _shipped_matches, resolve_micro
    from harness.models.resolve import resolve_model_path
    from harness.policies.hf import load
    from harness.scoring.metrics import compute_metrics

    assert _shipped_matches(BuildSpec()) and resolve_micro() == str(SHIPPED)
    assert resolve_model_path("micro", micro_data.corpus) == str(SHIPPED)
    assert (SHIPPED / "model.safetensors").stat().st_size < 20 * 2**20
    policy = load("micro")
    qs = micro_data.split("test")[:16]
    clean = compute_metrics(_env(micro_data, 0.0).rollout(policy, qs))
    dropped = compute_metrics(_env(micro_data, 1.0).rollout(policy, qs))
    assert clean["accuracy"] == 1.0 and clean["format_validity"] == 1.0
    assert dropped["accuracy"] == 0.0 and dropped["persistence"] == 0.0 and dropped["answer_rate"] == 1.0


def test_default_run_flags_micro_scale():
    from harness.core.config import DEFAULT_REFERENCE_POLICIES
    from harness.evaluation.run import EvalRun, RunConfig, is_micro_scale

    assert "micro" not in DEFAULT_REFERENCE_POLICIES and is_micro_scale("micro") and not is_micro_scale("one-search")
    micro_task = EvalRun(RunConfig(task="apollo3_micro", output_dir="/nonexistent/x"))
    assert micro_task.micro_scale and [m for _, m in micro_task.policies][-1] == "micro"
    assert not EvalRun(RunConfig(output_dir="/nonexistent/x")).micro_scale  # apollo3: reference policies only
    assert not EvalRun(RunConfig(model="one-search", output_dir="/nonexistent/x")).micro_scale


@pytest.mark.slow
def test_shipped_weights_rebuild_bit_for_bit(micro_data, tmp_path):
    """`harness micro build` reproduces the committed weights exactly (about 8 minutes on 2 busy cores)."""
    from harness.models.micro import SHIPPED, BuildSpec, build_micro, weights_digest

    built = build_micro(tmp_path / "micro", spec=BuildSpec(), data=micro_data)
    assert weights_digest(built) == weights_digest(SHIPPED)
    assert (built / "tokenizer.json").read_bytes() == (SHIPPED / "tokenizer.json").read_bytes()


@pytest.mark.parametrize("stop_after_action", [True, False], ids=["stop", "whole"])
@pytest.mark.parametrize("semantics", ["rezero", "strict"])
def test_micro_rewards_under_both_semantics(micro_data, semantics, stop_after_action):
    """Demonstrations score as they should under both semantics: right answers pay, the gold window
    counts for em_chunk (it is the episode's gold passage), a retry pays more than none."""
    from harness.environment.env import Environment
    Demonstrator = micro_data.task.hook("demonstrator")
    from harness.scoring.rewards import score_episode

    qs = micro_data.split("test")[:12]
    env = Environment.from_task(micro_data.task, micro_data, noise=NoiseConfig(level=0.5, modes=("drop_gold",)),
                                seed=0, stop_after_action=stop_after_action)
    for ep in env.rollout(Demonstrator(p_retry=1.0), qs):
        s = score_episode(ep, micro_data.task.rewards.weights, semantics)
        assert all(v is not None and 0.0 <= v <= 1.0 for k, v in s.items() if k != "total"), s
        assert s["correctness"] == float(ep.correct) and s["em_chunk"] == float(ep.gold_seen)
        assert s["format"] == 1.0 and ep.answer is not None
        assert s["retry"] == pytest.approx(min(1.0, 0.2 + 0.15 * min(ep.n_searches, 5)))  # one search a turn


@pytest.mark.parametrize("semantics", ["rezero", "strict"])
def test_micro_policy_run_under_each_semantics(micro_data, tmp_path, semantics):
    from typer.testing import CliRunner

    from harness.cli.app import app

    out = tmp_path / semantics
    res = CliRunner().invoke(app, ["run", "--task", "apollo3_micro", "--model", "micro", "--limit", "6",
                                   "--noise", "0", "--reward-semantics", semantics, "-o", str(out), "--no-report"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "results.json").read_text())
    m = saved["results"]["micro"]["noise=0"]
    assert saved["reward_semantics"] == semantics and m["accuracy"] == 1.0
    assert m["reward_correctness"] == 1.0 and m["reward_em_chunk"] == 1.0 and m["reward_format"] == 1.0
