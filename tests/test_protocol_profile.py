"""The ``rezero`` protocol profile renders exactly what ReZero's own code renders (tests/rezero_prompts.py,
transcribed at its pinned commit), and the ``rezero_paper`` preset resolves to ReZero's training values."""

from __future__ import annotations

import datetime as dt

import pytest

import tests.rezero_prompts as rz
from harness.core.config import load_task
from harness.core.errors import ConfigError
from harness.data.loading import Question
from harness.data.search import SearchResult, SearchTool, ShownResult

pytestmark = pytest.mark.tier("unit")

QUESTION = "On what date did the mission PA-1 experience a first pad abort?"


class _Fixed(dt.datetime):
    """ReZero writes ``datetime.now()`` into its system prompt; the profile fixes the date to its commit's."""

    @classmethod
    def now(cls, tz=None):
        return cls(2025, 4, 17, 12, 0)


def test_the_profile_messages_equal_rezeros_strings(monkeypatch):
    monkeypatch.setattr(rz, "datetime", _Fixed)
    task = load_task("apollo3", profile="rezero")
    from harness.environment.env import Environment

    env = Environment(task, search_tool=SearchTool(retriever=None, corpus=None), judge_fn=lambda p, g: {})
    messages = env.new_episode(Question("q0", 0, QUESTION, "x", (), ())).messages
    assert messages == [{"role": "system", "content": rz.get_system_prompt()},
                        {"role": "user", "content": rz.build_user_prompt(QUESTION)}]
    assert task.profile == "rezero" and task.protocol.stop_after_action is False and task.protocol.max_turns == 32


def test_the_profile_formats_results_as_rezeros_search_and_agent_do():
    task = load_task("apollo3", profile="rezero")
    pr = task.prompt
    tool = SearchTool(retriever=None, corpus=None, k=task.retrieval.k, result_template=pr.result,
                      result_separator=pr.result_separator, no_results=pr.no_results)
    texts = ["First chunk text.", "Second chunk,\nwith a newline.", "Third."]
    result = SearchResult("q", tuple(ShownResult(str(i), t, i, float(-i)) for i, t in enumerate(texts)))
    body = tool.format(result)
    assert body == rz.search_string(texts)
    assert {"role": "user", "content": pr.information.format(results=body)} == rz.information_message(body)
    assert tool.format(SearchResult("q", ())) == rz.search_string([])  # nothing found: an empty string
    r = task.retrieval
    assert (r.retriever, r.k, r.dense_model) == ("dense", 5, "intfloat/e5-base-v2")
    assert r.dense_fallback == "all-MiniLM-L6-v2"


def test_the_default_protocol_is_unchanged_and_an_unknown_profile_is_one_line():
    plain = load_task("apollo3")
    assert plain.profile is None and plain.prompt.result == "[{rank}] {text}" and plain.retrieval.k == 3
    with pytest.raises(ConfigError, match="no protocol profile 'rezro'; available: rezero"):
        load_task("apollo3", profile="rezro")
    with pytest.raises(ConfigError, match="no protocol profile 'rezero'; available: none"):
        load_task("apollo3_micro", profile="rezero")


def test_rezero_paper_resolves_to_rezeros_training_values():
    """Each value as ReZero's config.py / train_grpo.py / its trainer's defaults set it (docs/reproduce.md)."""
    from harness.train.config import TrainConfig, resolve, with_task_defaults

    cfg = with_task_defaults(TrainConfig(preset="rezero_paper"))
    got = {k: getattr(cfg, k) for k in ("model", "protocol", "lora_rank", "lora_alpha", "learning_rate", "adam_beta1",
                                        "adam_beta2", "weight_decay", "warmup_ratio", "lr_scheduler", "optim",
                                        "max_grad_norm", "num_generations", "prompts_per_step", "max_steps",
                                        "save_every", "beta", "temperature", "top_p", "seed")}
    assert got == {"model": "meta-llama/Llama-3.2-3B-Instruct", "protocol": "rezero", "lora_rank": 64,
                   "lora_alpha": 64, "learning_rate": 5e-6, "adam_beta1": 0.9, "adam_beta2": 0.99,
                   "weight_decay": 0.1, "warmup_ratio": 0.1, "lr_scheduler": "cosine", "optim": "paged_adamw_8bit",
                   "max_grad_norm": 0.1, "num_generations": 6, "prompts_per_step": 1, "max_steps": 1000,
                   "save_every": 50, "beta": 0.04, "temperature": 0.9, "top_p": 1.0, "seed": 3407}
    r = resolve(cfg)
    assert r.task.profile == "rezero" and (r.max_turns, r.max_new_tokens) == (32, 2048)
    assert r.weights.model_dump() == {"correctness": 4.0, "format": 2.0, "retry": 1.0, "em_chunk": 1.0,
                                      "retry_after_miss": 0.0, "search_strategy": 1.0, "search_diversity": 1.0}
    assert r.semantics == "rezero" and r.stop_after_action is False
    ours = with_task_defaults(TrainConfig(preset="rezero_paper", model="smollm2-135m", max_steps=2))
    assert (ours.model, ours.max_steps, ours.learning_rate) == ("smollm2-135m", 2, 5e-6)  # the run's own win
