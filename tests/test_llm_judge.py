import pytest
from episodes import A, S, episode

from harness.environment.env import Generation
from harness.scoring.llm_judge import agreement_metrics, llm_judge, parse_verdict

pytestmark = pytest.mark.tier("unit")


class FixedReplies:
    name = "fixed"

    def __init__(self, replies):
        self.replies = replies
        self.prompts = []

    def generate(self, episodes, max_new_tokens, stop=None):
        self.prompts += [e.messages[0]["content"] for e in episodes]
        return [Generation(r, 1) for r in self.replies[: len(episodes)]]


def test_verdicts_stored_and_agreement():
    eps = [episode([S("a"), A("55:54:53")], correct=True), episode([S("a"), A("noon")], correct=False),
           episode([S("a"), A("x")], correct=False), episode(["<think>x</think>"], correct=False)]
    pol = FixedReplies(["Yes.", "Yes", "hmm"])
    llm_judge(pol, eps)
    assert len(pol.prompts) == 3 and "Reference answer: 55:54:53" in pol.prompts[0]
    assert [e.judge["llm"]["verdict"] for e in eps] == [True, True, None, False]
    m = agreement_metrics(eps)
    assert m["llm_unparsed"] == 1
    assert m["judge_agreement"] == 2 / 3        # (T,T) agree, (F,T) disagree, (F,F) agree
    assert m["llm_accuracy"] == 2 / 4


def test_parse_verdict():
    assert parse_verdict("YES") is True and parse_verdict("No, wrong") is False
    assert parse_verdict("") is None and parse_verdict("Yesterday") is None
