"""Tests for harness.scoring.judge: normalisation, F1, containment, number matching, rules, real data."""

from __future__ import annotations

import dataclasses
import doctest
import json

import pytest

import harness.scoring.judge as judge_module
from harness.scoring.judge import (
    JUDGE_RULES,
    JudgeResult,
    contains_answer,
    exact_match,
    extract_quantities,
    judge,
    normalize_answer,
    number_match,
    token_f1,
)


@pytest.fixture(scope="module")
def golds(data) -> list[str]:
    """The 318 gold answers, read from the data folder the conftest fixture found (or skipped without)."""
    with (data.root / "questions.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line)["answer"] for line in fh if line.strip()]


def test_doctests_pass() -> None:
    import harness.scoring.normalize as normalize_module
    import harness.scoring.quantities as quantities_module

    results = [doctest.testmod(m) for m in (judge_module, normalize_module, quantities_module)]
    assert sum(r.attempted for r in results) >= 15
    assert sum(r.failed for r in results) == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The Pacific Ocean.", "pacific ocean"),
        ("an   APOLLO 13 mission report", "apollo 13 mission report"),
        ("1,200 ft", "1200 ft"),
        ("55:54:53", "55:54:53"),
        ("S-band", "s band"),
        ("\u22123.5\u00b0", "-3.5"),
        ("man's capability", "mans capability"),
        ("", ""),
    ],
)
def test_normalize_answer(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


def test_exact_match_and_f1() -> None:
    assert exact_match("The Indian Ocean", "indian ocean!")
    assert not exact_match("0.6", "-0.6")  # the sign survives normalisation
    assert not exact_match("", "")
    assert token_f1("lunar module", "lunar module") == 1.0
    assert token_f1("lunar module power", "Lunar module") == pytest.approx(0.8)
    assert token_f1("command module", "lunar module") == pytest.approx(0.5)
    assert token_f1(None, "x") == 0.0


def test_contains_guard_and_factor() -> None:
    gold = "Marginal"
    short = "in an otherwise marginal weather situation"
    assert contains_answer(short, gold)
    long = " ".join(["word"] * 10) + " marginal"  # 11 tokens: max(3*1, 1+10) = 11 allowed
    assert contains_answer(long, gold)
    assert not contains_answer("word " + long, gold)  # 12 tokens
    assert not contains_answer(long, gold, factor=3.0, slack=2)
    assert contains_answer("a b c d e f g h i j k l m n o marginal", gold, factor=20.0, slack=0)
    assert not contains_answer("2 percent", "12 percent")  # token runs, not characters


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("1200 feet", "1,200 ft"),
        ("-3.5 degrees", "\u22123.5\u00b0"),
        ("87 psi", "about 87 psia"),
        ("25%", "25 percent"),
        ("at 55:54:53 GET", "55:54:53"),
        ("55:55:20", "55 hours 55 minutes"),
        ("120 minutes", "2 hours"),
        ("58:00:00", "58 hours"),
        ("12 percent", "l2 percent of full thrust"),
        ("32:21:49", "32:2l:49"),
        ("1900 psia", "190o \u00b1 20 psia"),
        ("25565 ft/s", "25 565 ft/sec"),
        ("61.5 hours", "6l-l/2 hours"),
        ("2.5 days", "Two and one half"),
        ("3", "Three"),
        ("November 7, 1963", "Nov.7, 1963"),
        ("415.79 miles", "415.8 miles"),
        ("14:13:00", "2:13:00 p.m."),
        ("25 degrees F", "plus and minus $25^{\\circ}$ F"),
        ("1,000,000 volts", "a million volts"),
        ("section 14.1.8", "section 14.l.8"),
        ("28.22 S", "28.22S"),
        ("minus 3000 volts/meter", "3000 volts/meter"),  # an unsigned gold gives a magnitude
        ("2", "Fuel cell 2"),  # a bare number may answer a gold with a couple of words
    ],
)
def test_number_match_positive(pred: str, gold: str) -> None:
    assert number_match(pred, gold) is True
    result = judge(pred, gold)
    assert result.correct and result.rule in ("number", "exact_match")


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("1300 feet", "1,200 ft"),
        ("3.5 degrees", "\u22123.5\u00b0"),  # the gold's sign binds
        ("87 feet", "about 87 psia"),  # incompatible units
        ("55:54:54", "55:54:53"),
        ("55:54", "55:54:53"),  # less precise than the gold
        ("415.7 miles", "415.8 miles"),
        ("29.4", "29"),
        ("May 7, 1963", "Nov.7, 1963"),
        ("5", "4 or 5 seconds"),  # every key number is needed
        ("28.22 N", "28.22S"),
        ("Apollo 12", "Apollo 12 Trajectory Reconstruction and Analysis"),  # words matter too
        ("1 2 3 4 5 6 7 8 9 29", "29"),  # number dumping
        ("at approximately 56 hours from one of the two service module", "Fuel cell 2"),
        ("The answer according to the report on page four is that batteries held 29 ampere-hours",
         "29 ampere-hours"),  # too long
    ],
)
def test_number_match_negative(pred: str, gold: str) -> None:
    assert number_match(pred, gold) is False
    assert not judge(pred, gold).correct


def test_numeric_gold_is_not_rescued_by_contains_or_f1() -> None:
    result = judge("2 percent of full thrust", "12 percent of full thrust")
    assert result.f1 >= 0.6 and result.number is False
    assert not result.correct and result.rule == "none"
    assert judge("2 percent of full thrust", "12 percent of full thrust", rule="f1").correct


def test_quantity_extraction_details() -> None:
    (q,) = extract_quantities("190o \u00b1 20 psia")[:1]
    assert q.value == 1900.0
    assert extract_quantities("190o \u00b1 20 psia")[1].tolerance
    (t,) = extract_quantities("9 minutes 57 seconds")
    assert (t.value, t.unit) == (597.0, "s")
    assert [x.unit for x in extract_quantities("May be later; in May 13, 1964")] == ["month", None, None]
    assert extract_quantities("") == [] and extract_quantities(None) == []
    assert number_match("anything", "The Pacific Ocean") is None


def test_default_rule_order_and_signals() -> None:
    assert judge("The Lunar Module", "lunar module").rule == "exact_match"
    assert judge("It landed in the South Pacific near Samoa", "The South Pacific").rule == "contains"
    assert judge("Houston", "Houston, Texas").rule == "f1"
    res = judge("Indian Ocean", "The Pacific Ocean")
    assert not res.correct and res.rule == "none" and res.number is None
    assert res.f1 == pytest.approx(0.5)


@pytest.mark.parametrize("pred", [None, "", "   ", "\n\t"])
def test_empty_prediction_never_correct(pred: str | None) -> None:
    for rule in JUDGE_RULES:
        result = judge(pred, "29", rule=rule)
        assert not result.correct and result.rule == "none"


def test_selectable_rules() -> None:
    assert set(JUDGE_RULES) == {"default", "exact_match", "f1", "contains", "number"}
    pred, gold = "about 1,200 ft", "1200 feet"
    assert judge(pred, gold, rule="number").correct
    assert not judge(pred, gold, rule="exact_match").correct
    assert not judge(pred, gold, rule="contains").correct
    assert judge("Pacific", "The Pacific Ocean", rule="f1", f1_threshold=0.6).correct
    assert not judge("Pacific", "The Pacific Ocean", rule="f1", f1_threshold=0.7).correct
    assert not judge("Pacific", "Pacific Ocean", rule="number").correct  # no number in gold
    long_pred = "x " * 11 + "marginal"
    assert not judge(long_pred, "Marginal", rule="contains").correct
    assert judge(long_pred, "Marginal", rule="contains", contains_factor=20.0).correct


def test_unknown_rule_names_choices() -> None:
    with pytest.raises(ValueError) as info:
        judge("a", "a", rule="llm")
    for name in JUDGE_RULES:
        assert name in str(info.value)


def test_result_is_frozen_and_serialisable() -> None:
    result = judge("858 psia", "858 psia")
    assert isinstance(result, JudgeResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.correct = False  # type: ignore[misc]
    d = result.to_dict()
    assert d == {"correct": True, "rule": "exact_match", "em": True, "f1": 1.0, "contains": True,
                 "number": True}
    json.dumps(d)


def test_deterministic() -> None:
    args = ("the pressure was about 87 psia at 55:54:53", "87 psia")
    assert judge(*args) == judge(*args)


def test_real_data_self_agreement(golds) -> None:
    assert len(golds) == 318
    failures = [g for g in golds if not judge(g, g).correct]
    assert failures == []


def test_real_data_false_positive_rate(golds) -> None:
    """Another question's gold answer should almost never be judged correct (measured: 0/1271)."""
    pairs = wrong = 0
    for shift in (1, 7, 31, 101):
        for i, gold in enumerate(golds):
            pred = golds[(i + shift) % len(golds)]
            if normalize_answer(pred) == normalize_answer(gold):
                continue  # identical answers to different questions are not false positives
            pairs += 1
            wrong += judge(pred, gold).correct
    assert pairs > 1200
    assert wrong / pairs < 0.02
