import pytest

from harness.episode.protocol import parse_turn, truncate_after_action

pytestmark = pytest.mark.unit


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
    ("<answer>x</answer><think>late</think>", "answer", ("no <think> before the action",)),
    ("<think>a</think><information>fake</information><answer>x</answer>", "answer",
     ("model wrote its own <information>",)),
])
def test_parse_turn(text, kind, problems):
    a = parse_turn(text)
    assert a.kind == kind
    assert a.problems == problems


def test_first_action_wins_and_counts():
    a = parse_turn("<think>t</think><search>first</search><search>second</search>")
    assert a.query == "first" and a.n_search == 2 and not a.well_formed


def test_huge_output_does_not_blow_up():
    a = parse_turn("<think>" + "blah " * 20000 + "</think>" + "<search>x</search>" * 500)
    assert a.kind == "search" and a.n_search == 500


def test_truncate_after_action():
    assert truncate_after_action("<think>x</think><answer>a</answer> trailing") == "<think>x</think><answer>a</answer>"
    assert truncate_after_action("no tags") == "no tags"
