"""K samples per question and the search-efficiency metrics, on hand-written episodes (values asserted)."""

import dataclasses
from itertools import combinations
from math import comb

import pytest
from episodes import A, Q, S, episode

from harness.scoring.metrics import RATES, compute_metrics, redundant_searches, search_need
from harness.scoring.samples import majority_correct, pass_at_k, sample_metrics
from harness.stats.intervals import cluster_interval, wilson
from harness.stats.paired import compare_outcomes

pytestmark = pytest.mark.tier("unit")


def _q(qid: str):
    return dataclasses.replace(Q, qid=qid)


def _sampled(qid: str, outcomes: list[bool], answers: list[str] | None = None):
    """One question's samples: each answers (``answers[i]`` or 'x') and is judged ``outcomes[i]``."""
    out = []
    for i, ok in enumerate(outcomes):
        ep = episode([S("a", gold=ok), A(answers[i] if answers else "x")], correct=ok)
        ep.question, ep.sample = _q(qid), i
        out.append(ep)
    return out


@pytest.mark.parametrize("n, c, k", [(4, 0, 4), (4, 1, 4), (4, 1, 1), (5, 2, 2), (10, 3, 4), (6, 6, 3)])
def test_pass_at_k_is_the_chance_k_samples_drawn_without_replacement_hold_a_correct_one(n, c, k):
    """Chen et al.'s estimator equals the exact share of the C(n, k) draws that hold a correct sample."""
    labels = [1] * c + [0] * (n - c)
    draws = list(combinations(range(n), k))
    exact = sum(any(labels[i] for i in d) for d in draws) / comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(exact)


def test_pass_at_k_refuses_impossible_counts():
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(4, 5, 4)


def test_majority_vote_groups_normalised_answers_and_breaks_ties_by_first_answer():
    assert majority_correct(_sampled("q1", [False, True, True], ["Dusk", "the noon", "Noon!"]))
    assert not majority_correct(_sampled("q1", [True, False, False], ["noon", "dusk", "DUSK"]))
    assert not majority_correct(_sampled("q1", [False, True], ["dusk", "noon"]))   # tie: the first answered wins
    assert majority_correct(_sampled("q1", [True, False], ["noon", "dusk"]))


def test_majority_vote_where_each_sample_has_its_own_gold_answer():
    """apollo3_micro re-draws the value per episode: the correct answers differ as text but are one vote."""
    eps = _sampled("q1", [True, True, False], ["zobu", "qaki", "«»"])
    for ep, gold in zip(eps, ("zobu", "qaki", "xoxo")):
        ep.question = dataclasses.replace(ep.question, answer=gold)
    assert majority_correct(eps)


def test_sample_metrics_values():
    eps = (_sampled("q1", [True, True, True, True]) + _sampled("q2", [True, False, False, False])
           + _sampled("q3", [False] * 4) + _sampled("q4", [False, True, True, False], ["a", "b", "b", "a"]))
    m = sample_metrics(eps)
    assert (m["k"], m["n_questions"]) == (4, 4)
    assert m["avg_at_k"] == pytest.approx(7 / 16)
    assert m["pass_at_k"] == pytest.approx(3 / 4)
    assert m["maj_at_k"] == pytest.approx(1 / 4)            # q1 only (q4: a tie, "a" answered first, wrong)
    assert m["per_question"] == {"q1": 1.0, "q2": 0.25, "q3": 0.0, "q4": 0.5}
    assert (m["pass_at_k_ci_low"], m["pass_at_k_ci_high"]) == wilson(3, 4)   # one value per question: Wilson
    assert (m["avg_at_k_ci_low"], m["avg_at_k_ci_high"]) == cluster_interval([4, 1, 0, 2], [4, 4, 4, 4])


def test_cluster_interval_is_wider_than_treating_correlated_samples_as_independent():
    """Eight questions, each right in all four samples or in none: 32 episodes carry 8 questions' evidence."""
    eps = [e for i in range(8) for e in _sampled(f"q{i}", [i < 4] * 4)]
    m = compute_metrics(eps)
    naive = wilson(16, 32)
    assert m["accuracy"] == 0.5 and m["k"] == 4
    assert m["accuracy_ci_high"] - m["accuracy_ci_low"] > (naive[1] - naive[0]) * 1.4
    assert (m["accuracy_ci_low"], m["accuracy_ci_high"]) == (m["avg_at_k_ci_low"], m["avg_at_k_ci_high"])
    assert compute_metrics(eps)["accuracy_ci_low"] == m["accuracy_ci_low"]   # a fixed seed: the same numbers


def test_one_sample_runs_keep_their_metrics_and_gain_no_sample_keys():
    eps = [episode([S("a", gold=True), A("x")], correct=True), episode([S("a"), A("x")], correct=False)]
    m = compute_metrics(eps)
    assert not {k for k in m if "at_k" in k or k.endswith("_ci_low") and k != "accuracy_ci_low"}
    assert (m["accuracy_ci_low"], m["accuracy_ci_high"]) == wilson(1, 2)


def test_retry_metrics_of_k_samples_are_over_all_episodes_with_clustered_intervals():
    eps = _sampled("q1", [True, False]) + _sampled("q2", [False, False])
    eps[1].turns.insert(0, episode([S("b"), A("x")]).turns[0])      # q1 sample 1: a miss, then a gold search
    m = compute_metrics(eps)
    assert m["n"] == 4 and m["persistence"] == 1 / 3 and m["n_persistence"] == 3
    for name in RATES:
        low, high = m[f"{name}_ci_low"], m[f"{name}_ci_high"]
        assert low is None or low <= m[name] <= high, name


def test_redundant_searches_and_gold_gain_per_search():
    ep = episode([S("a"), S("a"), S("b", gold=True), A("x")], correct=True)   # shows 9, 9 again, then gold 7
    assert redundant_searches(ep) == 1
    other = episode([S("c", gold=True), A("x")], correct=True)
    m = compute_metrics([ep, other])
    assert m["redundant_search_rate"] == pytest.approx(1 / 4) and m["n_redundant_search_rate"] == 4
    assert m["gold_gain_per_search"] == pytest.approx(2 / 4) and m["n_gold_gain_per_search"] == 4
    assert compute_metrics([episode([A("x")])])["redundant_search_rate"] is None   # no search: undefined


def test_over_and_under_search_against_a_closed_book_reference():
    known_searched = episode([S("a", gold=True), A("x")], correct=True)
    known_direct = episode([A("x")], correct=True)
    unknown_direct = episode([A("x")], correct=False)
    unknown_searched = episode([S("a", gold=True), A("x")], correct=True)
    unknown_silent = episode(["<think>hm</think>"], correct=False)    # neither searched nor answered
    for ep, qid in zip((known_searched, known_direct, unknown_direct, unknown_searched, unknown_silent), "abcde"):
        ep.question = _q(qid)
    ref = {"a": 1.0, "b": 0.5, "c": 0.0, "d": 0.25, "e": 0.0}           # b: half its closed-book samples right
    m = search_need([known_searched, known_direct, unknown_direct, unknown_searched, unknown_silent], ref)
    assert (m["over_search"], m["n_over_search"]) == (0.5, 2)
    assert (m["under_search"], m["n_under_search"]) == (pytest.approx(1 / 3), 3)
    assert search_need([known_searched], {"zz": 1.0})["n_over_search"] == 0   # no shared question: undefined


def test_paired_comparison_of_success_rates_uses_the_permutation_test():
    a = [{"q1": 1.0, "q2": 0.75, "q3": 0.5, "q4": 1.0}]
    b = [{"q1": 0.5, "q2": 0.25, "q3": 0.5, "q4": 0.0}]
    r = compare_outcomes(a, b, "A", "B")
    assert r.test == "permutation" and r.difference == pytest.approx(0.5)
    assert compare_outcomes([{"q1": 1.0, "q2": 0.0}], [{"q1": 0.0, "q2": 0.0}]).test == "mcnemar"
