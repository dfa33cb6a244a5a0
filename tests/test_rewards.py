import pytest
from episodes import A, S, episode

from harness.core.config import RewardWeights
from harness.scoring.rewards import REWARDS, score_episode, trl_reward

pytestmark = pytest.mark.unit

R = REWARDS


def test_registry_has_the_six():
    assert set(R) == {"correctness", "format", "retry", "em_chunk", "search_strategy", "search_diversity"}


def test_correctness_needs_final_answer_and_judge():
    assert R["correctness"](episode([S("tank"), A("55:54:53")], correct=True)) == 1.0
    assert R["correctness"](episode([S("tank"), A("noon")], correct=False)) == 0.0
    # judged correct but the last turn is not an answer (cannot happen via the env; guard anyway)
    assert R["correctness"](episode([S("tank")], correct=True)) == 0.0


def test_format():
    assert R["format"](episode([S("a"), A("x")])) == 1.0
    assert R["format"](episode([("<search>a</search>", False), A("x")])) == 0.5   # 1 of 2 turns valid
    assert R["format"](episode([S("a"), "<think>hmm</think>"])) == 0.25           # no action + no answer
    assert R["format"](episode([])) == 0.0


def test_retry_rezero_rule():
    assert R["retry"](episode([A("x")])) == 0.0                                # no search
    assert R["retry"](episode([S("a"), A("x")])) == pytest.approx(0.35)         # ReZero: one search earns 0.35
    assert R["retry"](episode([S("a"), S("b"), A("x")])) == pytest.approx(0.5)
    assert R["retry"](episode([S("a")] * 9 + [A("x")])) == pytest.approx(0.95)  # capped at 5 searches
    assert R["retry"](episode([S("a"), S("b")], end="max_turns")) == 0.0        # no final answer: nothing
    double = ("<think>t</think><search>a</search><search>b</search>", False)
    assert R["retry"](episode([double, S("c"), A("x")])) == pytest.approx(0.25)  # halved


def test_em_chunk():
    assert R["em_chunk"](episode([S("a"), S("b", gold=True), A("x")])) == 1.0
    assert R["em_chunk"](episode([S("a"), A("x")])) == 0.0


def test_search_strategy():
    assert R["search_strategy"](episode([A("x")])) == 0.0
    plain = episode([S("tank pressure"), A("x", think="I know it")])
    assert R["search_strategy"](plain) == pytest.approx(0.2)
    full = episode([S("tank pressure"), S("oxygen tank drop", think="the results show tank 1"),
                    S("tank 2 time", think="based on that"), S("more", think="according to it"),
                    A("x", think="found in the information")])
    assert R["search_strategy"](full) == pytest.approx(0.2 + 0.4 + 0.4)       # analysis turns capped at 0.4
    one = episode([S("tank pressure"), S("drop", think="from the results"), A("x", think="guess")])
    assert R["search_strategy"](one) == pytest.approx(0.4)


def test_search_diversity():
    assert R["search_diversity"](episode([A("x")])) == 0.0
    assert R["search_diversity"](episode([S("a b"), A("x")])) == 0.2
    assert R["search_diversity"](episode([S("oxygen tank"), S("Oxygen  tank"), A("x")])) == pytest.approx(0.0)
    different = R["search_diversity"](episode([S("oxygen tank pressure"), S("crew launch date"), A("x")]))
    similar = R["search_diversity"](episode([S("oxygen tank pressure"), S("oxygen tank pressures"), A("x")]))
    assert 0.6 < different <= 1.0 and similar < 0.45 and similar < different


def test_score_episode_total_and_malformed():
    w = RewardWeights(correctness=4, format=2, retry=1, em_chunk=1, search_strategy=1, search_diversity=1)
    ep = episode(["<think>x</think><search>unclosed"], correct=False)
    s = score_episode(ep, w)
    assert s["correctness"] == 0.0 and s["retry"] == 0.0 and s["format"] == 0.0
    assert set(s) == set(REWARDS) | {"total"}
    good = score_episode(episode([S("a"), S("b", gold=True), A("x")], correct=True), w)
    assert good["total"] == pytest.approx(sum(w.model_dump()[k] * good[k] for k in REWARDS))


def test_trl_signature():
    eps = [episode([S("a"), A("x")], correct=True), episode([A("y")], correct=False)]
    f = trl_reward("correctness")
    assert f.__name__ == "correctness"
    assert f(prompts=["p", "p"], completions=["c", "c"], episode=eps) == [1.0, 0.0]
    with pytest.raises(ValueError, match="episode"):
        f(prompts=["p"], completions=["c"])


def test_a_raising_reward_is_recorded_not_scored_zero(monkeypatch):
    from harness.scoring.metrics import compute_metrics

    def broken(ep):
        raise RuntimeError("boom")

    monkeypatch.setitem(R, "search_diversity", broken)
    w = RewardWeights(correctness=4, format=2, search_diversity=1)
    ep = episode([S("a"), A("x")], correct=True)
    s = score_episode(ep, w)
    assert s["search_diversity"] is None and s["total"] is None and "boom" in ep.error
    assert score_episode(episode([S("a"), A("x")], correct=True), RewardWeights(correctness=4))["total"] == 4.0
    ok = episode([S("a"), A("x")], correct=True)
    ok.rewards = {"correctness": 1.0, "search_diversity": 0.2}
    ep.rewards = s
    m = compute_metrics([ep, ok])
    assert m["n_reward_errors"] == 1 and m["reward_search_diversity"] == 0.2   # mean over the scorable one
    assert trl_reward("search_diversity")(episode=[ep]) == [None]
