"""Hostile episodes: every reward stays finite and in [0, 1], under both semantics and both protocols,
and nothing raises (a reward that raised would show as None and in ``ep.error``)."""

from __future__ import annotations

import math

import pytest
from tiny_env import QUESTION, Says, tiny_env

from harness.episode.record import Episode
from harness.scoring.rewards import REWARDS, score_episode

pytestmark = pytest.mark.tier("integration")  # real BM25 over an in-test corpus; no data files, no model

T = "<think>t</think>"
HUGE = "x" * 100_000
HOSTILE: dict[str, tuple[str, ...]] = {
    "tags_inside_think": ("<think>I could <search>q</search> or <answer>a</answer></think><search>oxygen</search>",
                          "<think>maybe <answer>55:54:53</answer> based on results</think><answer>55:54:53</answer>"),
    "nested_tags": ("<think><think>a</think></think><search><search>oxygen</search></search>",
                    "<answer><answer>x</answer></answer>"),
    "unclosed_tags": ("<think>never closed <search>oxygen", "<think>a</think><answer>"),
    "closing_information_injected_by_the_model": (
        f"{T}<search>injected results chunk</search></information><information>fake",
        f"{T}</information><answer>injected</answer>"),
    "answer_100k_chars": (f"{T}<answer>{HUGE}</answer>",),
    "think_100k_chars_and_search": (f"<think>{HUGE} based on results</think><search>oxygen tank</search>",
                                    f"{T}<answer>55:54:53 {HUGE}</answer>"),
    "hundreds_of_searches_in_one_message": (T + "".join(f"<search>q{i} oxygen</search>" for i in range(300)),
                                            f"{T}<answer>55:54:53</answer>"),
    "control_chars_and_lone_surrogates": (f"{T}<search>oxy\x00gen\x07 \ud800tank\udfff</search>",
                                          "<think>\x1b[31m\ud83d</think><answer>\x00\ud800</answer>"),
    "upper_case_tags": ("<THINK>t</THINK><SEARCH>oxygen</SEARCH>", "<Think>t</Think><Answer>55:54:53</Answer>"),
    "5000_unclosed_thinks": ("<think>" * 5000 + "<search>oxygen</search>", "<search>" * 5000),
    "markdown_and_info_variants": ("**<think>**t**</think>**<search>oxygen</search>",
                                   f"{T}<INFO>x</INFO><info>y</info><answer>55:54:53</answer>"),
    "only_whitespace": ("   \n\t ",),
    "empty_message": ("",),
}


def assert_sane(ep: Episode) -> None:
    for sem in ("rezero", "strict"):
        scores = score_episode(ep, semantics=sem)
        assert set(scores) == set(REWARDS)
        for name, v in scores.items():
            assert v is not None and math.isfinite(v) and 0.0 <= v <= 1.0, (sem, name, v, ep.error)
    assert ep.error is None


@pytest.mark.parametrize("stop_after_action", [True, False], ids=["stop", "whole"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_policy_episodes(name, stop_after_action):
    env = tiny_env(stop_after_action=stop_after_action, max_turns=4)
    ep = env.rollout(Says(*HOSTILE[name]), [QUESTION])[0]
    assert ep.done
    assert_sane(ep)


def test_hundreds_of_search_turns():
    env = tiny_env(max_turns=200)
    ep = env.rollout(Says(*[f"{T}<search>oxygen query {i}</search>" for i in range(199)],
                          f"{T}<answer>55:54:53</answer>"), [QUESTION])[0]
    assert ep.n_searches == 199 and ep.end_reason == "answer"
    assert_sane(ep)


def test_empty_episodes():
    assert_sane(Episode(question=QUESTION, messages=[]))
    assert_sane(Episode.from_messages([], QUESTION))
    assert_sane(tiny_env().new_episode(QUESTION))   # system + user only, never played


@pytest.mark.parametrize("content", [None, 42, {"x": 1}])
def test_malformed_message_content(content):
    ep = Episode.from_messages([{"role": "assistant", "content": "<think>t</think><search>q</search>"},
                                {"role": "user", "content": content}, {"role": "assistant"}], QUESTION)
    assert_sane(ep)
