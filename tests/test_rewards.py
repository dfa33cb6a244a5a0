"""The reward registry, both semantics on environment-shaped episodes, weights as a validated mapping."""

import math

import pytest
from episodes import A, S, episode

from harness.core.config import RewardWeights, load_task, make_weights, parse_weight_overrides
from harness.core.errors import ConfigError
from harness.scoring.rewards import REWARDS, check_weights, reward_fn, score_episode, trl_reward

pytestmark = pytest.mark.tier("unit")


def R(name, semantics="strict"):
    return reward_fn(name, semantics)


def test_registry_has_the_six_and_the_extension_in_both_semantics():
    assert set(REWARDS) == {"correctness", "format", "retry", "em_chunk", "search_strategy", "search_diversity",
                            "retry_after_miss"}
    assert all(set(by_sem) == {"rezero", "strict"} for by_sem in REWARDS.values())
    with pytest.raises(ConfigError, match="semantics"):
        reward_fn("retry", "loose")
    with pytest.raises(ConfigError, match="unknown reward 'retri'"):
        reward_fn("retri")


# ----------------------------------------------------------------------------- strict (the project's rules)
def test_correctness_needs_final_answer_and_judge():
    for sem in ("strict", "rezero"):
        assert R("correctness", sem)(episode([S("tank"), A("55:54:53")], correct=True)) == 1.0
        assert R("correctness", sem)(episode([S("tank"), A("noon")], correct=False)) == 0.0
        # judged correct but the last turn is not an answer (cannot happen via the env; guard anyway)
        assert R("correctness", sem)(episode([S("tank")], correct=True)) == 0.0


def test_format():
    assert R("format")(episode([S("a"), A("x")])) == 1.0
    assert R("format")(episode([("<search>a</search>", False), A("x")])) == 0.5   # 1 of 2 turns valid
    assert R("format")(episode([S("a"), "<think>hmm</think>"])) == 0.25           # no action + no answer
    assert R("format")(episode([])) == 0.0


def test_retry_rezero_rule():
    assert R("retry")(episode([A("x")])) == 0.0                                # no search
    assert R("retry")(episode([S("a"), A("x")])) == pytest.approx(0.35)         # ReZero: one search earns 0.35
    assert R("retry")(episode([S("a"), S("b"), A("x")])) == pytest.approx(0.5)
    assert R("retry")(episode([S("a")] * 9 + [A("x")])) == pytest.approx(0.95)  # capped at 5 searches
    assert R("retry")(episode([S("a"), S("b")], end="max_turns")) == 0.0        # no final answer: nothing
    double = ("<think>t</think><search>a</search><search>b</search>", False)
    assert R("retry")(episode([double, S("c"), A("x")])) == pytest.approx(0.25)  # halved


def test_em_chunk():
    for sem in ("strict", "rezero"):
        assert R("em_chunk", sem)(episode([S("a"), S("b", gold=True), A("x")])) == 1.0
        assert R("em_chunk", sem)(episode([S("a"), A("x")])) == 0.0


def test_search_strategy():
    assert R("search_strategy")(episode([A("x")])) == 0.0
    plain = episode([S("tank pressure"), A("x", think="I know it")])
    assert R("search_strategy")(plain) == pytest.approx(0.2)
    full = episode([S("tank pressure"), S("oxygen tank drop", think="the results show tank 1"),
                    S("tank 2 time", think="based on that"), S("more", think="according to it"),
                    A("x", think="found in the information")])
    assert R("search_strategy")(full) == pytest.approx(0.2 + 0.4 + 0.4)       # analysis turns capped at 0.4
    one = episode([S("tank pressure"), S("drop", think="from the results"), A("x", think="guess")])
    assert R("search_strategy")(one) == pytest.approx(0.4)


def test_search_diversity():
    assert R("search_diversity")(episode([A("x")])) == 0.0
    assert R("search_diversity")(episode([S("a b"), A("x")])) == 0.2
    assert R("search_diversity")(episode([S("oxygen tank"), S("Oxygen  tank"), A("x")])) == pytest.approx(0.0)
    different = R("search_diversity")(episode([S("oxygen tank pressure"), S("crew launch date"), A("x")]))
    similar = R("search_diversity")(episode([S("oxygen tank pressure"), S("oxygen tank pressures"), A("x")]))
    assert 0.6 < different <= 1.0 and similar < 0.45 and similar < different


# ----------------------------------------------------------------------------- where the semantics differ
def test_rezero_correctness_refuses_a_self_written_information_block():
    ep = episode([S("tank"), "<think>t</think><information>made up</information><answer>55:54:53</answer>"],
                 correct=True)
    assert ep.answer == "55:54:53"
    assert R("correctness", "strict")(ep) == 1.0 and R("correctness", "rezero")(ep) == 0.0


def test_rezero_format_reads_the_last_message_only():
    ep = episode([("<search>no think</search>", False), A("x")])
    assert R("format", "rezero")(ep) == 1.0 and R("format", "strict")(ep) == 0.5
    trailing = episode([S("a"), "<think>t</think><answer>x</answer> and some more words"])
    assert R("format", "rezero")(trailing) == 0.0 and R("format", "strict")(trailing) == 0.5


def test_rezero_strategy_credits_the_answer_turn_and_synthesis_without_search():
    no_search = episode([A("x", think="based on what I know")])
    assert R("search_strategy", "rezero")(no_search) == pytest.approx(0.4)
    assert R("search_strategy", "strict")(no_search) == 0.0
    analysed_answer = episode([S("tank"), S("tank 2"), A("x", think="found in the results")])
    # rezero: min(1 search after results, 1 analysing think after results: the answer's) -> + 0.2;
    # strict: the one search after results did not analyse them -> + 0
    assert R("search_strategy", "rezero")(analysed_answer) == pytest.approx(0.2 + 0.2 + 0.4)
    assert R("search_strategy", "strict")(analysed_answer) == pytest.approx(0.2 + 0.4)


def test_rezero_diversity_strips_punctuation_and_counts_repeats_not_pairs():
    punct = episode([S("oxygen tank?"), S("oxygen tank"), S("oxygen tank!"), A("x")])
    assert R("search_diversity", "rezero")(punct) == 0.0          # three exact repeats after stripping "?" "!"
    assert R("search_diversity", "strict")(punct) == pytest.approx(0.123)  # near duplicates, not repeats
    repeats = episode([S("oxygen tank")] * 3 + [S("crew launch date escape tower"), S("lunar module power"), A("x")])
    assert R("search_diversity", "rezero")(repeats) == pytest.approx(0.2107, abs=1e-4)  # 2 repeats x 0.2
    assert R("search_diversity", "strict")(repeats) == pytest.approx(0.011)             # 3 pairs x 0.2


def test_em_chunk_without_a_gold_passage_is_an_error_not_a_zero():
    from dataclasses import replace

    ep = episode([S("a"), A("x")])
    ep.question = replace(ep.question, supporting_paragraphs=())
    for sem in ("strict", "rezero"):
        with pytest.raises(ValueError, match="chunk_content"):
            R("em_chunk", sem)(ep)
    scores = score_episode(ep, RewardWeights({"correctness": 1.0, "em_chunk": 1.0}))
    assert scores["em_chunk"] is None and scores["total"] is None and "chunk_content" in ep.error


# ----------------------------------------------------------------------------- scoring and weights
def test_score_episode_total_and_malformed():
    w = RewardWeights({"correctness": 4, "format": 2, "retry": 1, "em_chunk": 1, "search_strategy": 1,
                       "search_diversity": 1})
    for sem in ("rezero", "strict"):
        ep = episode(["<think>x</think><search>unclosed"], correct=False)
        s = score_episode(ep, w, sem)
        assert s["correctness"] == 0.0 and s["retry"] == 0.0 and s["format"] == 0.0
        assert set(s) == set(REWARDS) | {"total"}
        good = score_episode(episode([S("a"), S("b", gold=True), A("x")], correct=True), w, sem)
        assert good["total"] == pytest.approx(sum(w[k] * good[k] for k in REWARDS))


def test_weights_are_a_mapping_checked_against_the_registry():
    w = RewardWeights({"correctness": 4.0})
    assert w["retry"] == 0.0 and w.active() == {"correctness": 4.0}
    assert score_episode(episode([S("a"), A("x")], correct=True), w)["total"] == 4.0
    with pytest.raises(ConfigError, match="unknown reward 'bogus'; valid: correctness"):
        check_weights(parse_weight_overrides("bogus=1", w))
    with pytest.raises(ConfigError, match="unknown reward"):
        score_episode(episode([A("x")]), RewardWeights({"bogus": 1.0}))


@pytest.mark.parametrize("spec", ["retry=nan", "retry=inf", "retry=-inf", "format=NaN"])
def test_non_finite_weights_are_refused_with_one_line(spec):
    with pytest.raises(ConfigError) as e:
        parse_weight_overrides(spec, RewardWeights({"retry": 1.0}))
    assert "not a finite number" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="not a finite number"):
        make_weights({"retry": math.nan})


def test_task_weights_are_checked(tmp_path):
    from harness.cli.validate import validate_file

    task = load_task("apollo3")
    assert set(task.rewards.weights.names()) == set(REWARDS)
    src = (task.source and open(task.source).read())
    bad = tmp_path / "task.yaml"
    bad.write_text(src.replace("search_diversity: 1.0}\n\njudge", "serch_diversity: 1.0}\n\njudge"))
    with pytest.raises(ConfigError, match="unknown reward 'serch_diversity'"):
        validate_file(bad)
    bad.write_text(src.replace("retry: 1.0, em_chunk", "retry: .nan, em_chunk", 1))
    with pytest.raises(ConfigError, match="not a finite number"):
        load_task(bad)


def test_trl_signature():
    eps = [episode([S("a"), A("x")], correct=True), episode([A("y")], correct=False)]
    for sem in ("rezero", "strict"):
        f = trl_reward("correctness", sem)
        assert f.__name__ == "correctness"
        assert f(prompts=["p", "p"], completions=["c", "c"], episode=eps) == [1.0, 0.0]
        with pytest.raises(ValueError, match="episode"):
            f(prompts=["p"], completions=["c"])


def test_a_raising_reward_is_recorded_not_scored_zero(monkeypatch):
    from harness.scoring.metrics import compute_metrics

    def broken(ep):
        raise RuntimeError("boom")

    monkeypatch.setitem(REWARDS, "search_diversity", {"rezero": broken, "strict": broken})
    w = RewardWeights({"correctness": 4, "format": 2, "search_diversity": 1})
    ep = episode([S("a"), A("x")], correct=True)
    s = score_episode(ep, w)
    assert s["search_diversity"] is None and s["total"] is None and "boom" in ep.error
    assert score_episode(episode([S("a"), A("x")], correct=True), RewardWeights({"correctness": 4}))["total"] == 4.0
    ok = episode([S("a"), A("x")], correct=True)
    ok.rewards = {"correctness": 1.0, "search_diversity": 0.2}
    ep.rewards = s
    m = compute_metrics([ep, ok])
    assert m["n_reward_errors"] == 1 and m["reward_search_diversity"] == 0.2   # mean over the scorable one
    assert trl_reward("search_diversity")(episode=[ep]) == [None]


def test_retry_after_miss_is_zero_in_every_preset_but_its_own():
    for name in ("apollo3", "apollo3_micro"):
        task = load_task(name)
        assert task.rewards.weights["retry_after_miss"] == 0.0
        for preset, p in task.presets.items():
            assert (p.reward_weights["retry_after_miss"] > 0) == (preset == "retry_after_miss"), (name, preset)
