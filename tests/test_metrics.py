import pytest
from episodes import A, S, episode

from harness.scoring.metrics import compute_metrics

pytestmark = pytest.mark.tier("unit")


@pytest.fixture
def eps():
    return [
        episode([S("a", gold=True), A("x")], correct=True),                    # hit first, answers
        episode([S("a"), S("b", gold=True), A("x")], correct=True),            # miss, retry, recover
        episode([S("a"), A("x")], correct=False),                              # miss, answers anyway
        episode([S("a", gold=True), S("b"), A("x")], correct=False),           # wasted retry
        episode(["<think>no idea</think>"], correct=False),                    # gives up, malformed
    ]


def test_exact_metrics(eps):
    m = compute_metrics(eps)
    assert m["n"] == 5
    assert m["accuracy"] == pytest.approx(2 / 5)
    assert m["answer_rate"] == pytest.approx(4 / 5)
    assert m["searches_per_episode"] == pytest.approx(6 / 5)
    assert m["searches_hist"] == {"0": 1, "1": 2, "2": 2}
    assert m["retry_rate"] == pytest.approx(2 / 5)
    assert m["first_search_gold"] == pytest.approx(2 / 4)
    assert m["any_search_gold"] == pytest.approx(3 / 5)
    assert m["persistence"] == pytest.approx(1 / 2) and m["n_persistence"] == 2
    assert m["recovery"] == pytest.approx(1 / 2)
    assert m["wasted_retries"] == pytest.approx(1 / 3)
    assert m["premature_answer"] == pytest.approx(1 / 4)
    assert m["unsupported_wrong"] == pytest.approx(2 / 5)
    assert m["give_up_rate"] == pytest.approx(1 / 5)
    assert m["format_validity"] == pytest.approx(10 / 11)
    assert m["mean_turns"] == pytest.approx(11 / 5)
    assert m["query_diversity"] == pytest.approx(1.0)
    assert m["accuracy_ci_low"] <= m["accuracy"] <= m["accuracy_ci_high"]


def test_conditional_metrics_are_none_without_condition():
    m = compute_metrics([episode([S("a", gold=True), A("x")], correct=True)])
    assert m["persistence"] is None and m["recovery"] is None and m["n_recovery"] == 0
    assert compute_metrics([]) == {"n": 0}


def test_accuracy_interval_is_the_wilson_interval_the_reports_print():
    """One interval family: 0/32 is [0, 0.107] in results.json as in every report (not a bootstrap's [0, 0])."""
    none = compute_metrics([episode([A("x")], correct=False)] * 32)
    assert (none["accuracy_ci_low"], round(none["accuracy_ci_high"], 3)) == (0.0, 0.107)
    half = compute_metrics([episode([A("x")], correct=True)] * 15 + [episode([A("x")], correct=False)] * 17)
    assert [round(half[k], 3) for k in ("accuracy_ci_low", "accuracy_ci_high")] == [0.309, 0.636]
