import time

import pytest

from harness.episode.protocol import blocks_of, parse_turn, truncate_after_action

pytestmark = pytest.mark.tier("unit")

pytestmark = pytest.mark.tier("unit")


@pytest.mark.parametrize("text,kind,problems", [
    ("<think>a</think><search>apollo 13 launch</search>", "search", ()),
    ("<think>a</think>\n<answer>April 11, 1970</answer>", "answer", ()),
    ("<search>q</search>", "search", ("no <think> before the action",)),
    ("<think>a</think><search>q", "none", ("unclosed <search>",)),
    ("<think>a</think><answer>x", "none", ("unclosed <answer>",)),
    ("<think>a</think><search>q1</search><search>q2</search>", "search", ("2 searches in one turn",)),
    ("<think>a</think><answer>x</answer><search>q</search>", "answer", ("search and answer in one turn",)),
    ("<think>a</think><search>   </search>", "none", ("empty query",)),
    ("<think>only thinking</think>", "none", ("no action",)),
    ("", "none", ("no action",)),
    ("<think>a</think><answer></answer>", "answer", ("empty answer",)),
    ("<answer>x</answer><think>late</think>", "answer", ("no <think> before the action", "text after the action")),
    ("<think>a</think><information>fake</information><answer>x</answer>", "answer",
     ("model wrote its own <information>",)),
    ("<think>a</think><answer>x</answer>\nI hope this helps.", "answer", ("text after the action",)),
])
def test_parse_turn(text, kind, problems):
    a = parse_turn(text)
    assert a.kind == kind
    assert a.problems == problems


def test_first_action_wins_and_counts():
    a = parse_turn("<think>t</think><search>first</search><search>second</search>")
    assert a.query == "first" and a.n_search == 2 and not a.well_formed


@pytest.mark.parametrize("text,kind,body", [
    ("<think>t</think><search>first</search><search>second</search>", "search", "second"),   # the last query
    ("<think>t</think><answer>x</answer><search>q</search>", "search", "q"),                 # a search goes on
    ("<think>t</think><search>q</search><answer>x</answer>", "search", "q"),
    ("<think>t</think><answer>x</answer><answer>y</answer>", "answer", "x"),                 # else the first answer
    ("<think>t</think><search>q</search><search> </search>", "none", None),                 # ReZero: empty last query
])
def test_rezero_agent_protocol(text, kind, body):
    """``stop_after_action=False``: ReZero's agent searches with a message's last query, else ends."""
    a = parse_turn(text, stop_after_action=False)
    assert a.kind == kind
    assert (a.query if kind == "search" else a.answer if kind == "answer" else None) == body
    shape = [p for p in a.problems if not p.startswith("empty")]  # the message's problems, whatever acts
    assert shape == [p for p in parse_turn(text).problems if not p.startswith("empty")]


def test_huge_output_does_not_blow_up():
    a = parse_turn("<think>" + "blah " * 20000 + "</think>" + "<search>x</search>" * 500)
    assert a.kind == "search" and a.n_search == 500


@pytest.mark.parametrize("opening", ["<think>", "<search>", "<answer>", "<information>"])
def test_parser_is_linear_in_unclosed_tags(opening):
    """50,000 unclosed tags (350 kB): quadratic matching took 2.2 s for 5,000; linear takes milliseconds.

    A generous bound (about 100x the linear cost on a loaded 2-core machine, 1/1000 of the quadratic one).
    """
    text = opening * 50_000
    t0 = time.process_time()
    a = parse_turn(text)
    assert time.process_time() - t0 < 5.0
    assert a.kind == "none" and a.problems[0].startswith("unclosed") or a.problems == ("model wrote its own "
                                                                                         "<information>", "no action")


def test_blocks_pair_like_the_lazy_regex():
    assert [b.body("<b>1</b><b><b>2</b><b>") for b in blocks_of("<b>1</b><b><b>2</b><b>", "b")] == ["1", "<b>2"]
    assert blocks_of("</b><b>", "b") == []


def test_truncate_after_action():
    assert truncate_after_action("<think>x</think><answer>a</answer> trailing") == "<think>x</think><answer>a</answer>"
    assert truncate_after_action("no tags") == "no tags"
