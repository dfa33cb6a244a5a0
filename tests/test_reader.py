"""Tests for harness.policies.reader: question typing, typed extraction, fallbacks and real-data accuracy."""

from __future__ import annotations

import csv
import doctest
import json
import random
from pathlib import Path

import pytest

import harness.policies.reader as reader_module
from harness.policies.reader import QUESTION_TYPES, extract_answer, question_type
from harness.scoring.judge import judge, normalize_answer

PASSAGES = [
    "The cryogenic oxygen tank 2 pressure rose to 1008 psia before the relief valve opened. "
    "The crew heard a sharp bang at 55:54:53, and the master alarm came on shortly afterwards.",
    "The spacecraft was launched on April 11, 1970, from Kennedy Space Center, Florida. "
    "Landing occurred in the Pacific Ocean near Samoa after a flight of 142 hours 54 minutes.",
    "The Command Module Pilot, John L. Swigert, Jr., replaced the prime crewman. "
    "The mission was aborted because of the loss of service module oxygen.",
]


def test_doctests_pass() -> None:
    result = doctest.testmod(reader_module)
    assert result.attempted >= 9
    assert result.failed == 0


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many ampere-hours remained in the batteries at landing?", "number"),
        ("What was the pressure in the surge tank when it was isolated?", "number"),
        ("How long did it take to charge battery B?", "number"),
        ("What percentage of the load did battery 2 carry?", "number"),
        ("When was the flotation collar inflated?", "time"),
        ("At what time was the suit compressor turned off?", "time"),
        ("What was the launch date of the Apollo 4 mission?", "time"),
        ("Who is the Manager, Apollo Spacecraft Program?", "person"),
        ("What was the name of the Lunar Module Pilot?", "person"),
        ("Where did the spacecraft land?", "location"),
        ("What is the location of the Manned Spacecraft Center?", "location"),
        ("Did the failure affect the performance of the mission?", "yesno"),
        ("What caused a computer restart?", "other"),
        ("What happened when the malfunction was duplicated?", "other"),  # "when" as a conjunction
    ],
)
def test_question_type(question: str, kind: str) -> None:
    assert question_type(question) == kind
    assert kind in QUESTION_TYPES


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What was the pressure in oxygen tank 2 before the relief valve opened?", "1008 psia"),
        ("How many psia did the tank pressure reach?", "1008 psia"),
        ("At what time did the crew hear a sharp bang?", "55:54:53"),
        ("On what date was the spacecraft launched?", "April 11, 1970"),
        ("Who was the Command Module Pilot?", "John L. Swigert, Jr."),
        ("Where did the landing occur?", "Pacific Ocean"),
        ("How long did the flight last before landing?", "142 hours 54 minutes"),
        ("Did the relief valve open?", "Yes"),
    ],
)
def test_typed_extraction(question: str, expected: str) -> None:
    assert extract_answer(question, PASSAGES) == expected


def test_clause_fallback_is_short_and_relevant() -> None:
    answer = extract_answer("What happened after the sharp bang?", PASSAGES)
    assert "master alarm" in answer
    assert len(normalize_answer(answer).split()) <= 10
    why = extract_answer("Why was the mission aborted?", PASSAGES)
    assert "loss of service module oxygen" in why


def test_subject_question_takes_the_phrase_before() -> None:
    passage = ("During postflight inspection, propellant gas was noted to have escaped from the "
               "left-hand electrical circuit interrupter, mounted in the lower equipment bay.")
    answer = extract_answer("What was noted to have escaped from the circuit interrupter?", [passage])
    assert judge(answer, "Propellant gas").correct


def test_yes_no_reads_negation() -> None:
    passage = "The failure of the gaging system did not affect the performance of the mission."
    assert extract_answer("Did the failure of the gaging system affect the mission?", [passage]) == "No"


def test_numbers_echoing_the_question_are_skipped() -> None:
    passage = "At plus 40 seconds the field at site 6 reached a negative value of minus 3000 volts/meter."
    answer = extract_answer("What was the negative field value at site 6 after 40 seconds?", [passage])
    assert judge(answer, "3000 volts/meter").correct


def test_ocr_digits_are_repaired() -> None:
    passage = "The pressurization isolation solenoid was closed at l2 percent of full thrust."
    answer = extract_answer("At what throttle percentage was the isolation solenoid closed?", [passage])
    assert answer == "12 percent"
    assert judge(answer, "l2 percent of full thrust").correct


@pytest.mark.parametrize("passages", [[], [""], ["   \n  "], [None]])  # type: ignore[list-item]
def test_empty_passages(passages: list[str]) -> None:
    assert extract_answer("What was the pressure?", passages) == ""


def test_nothing_plausible() -> None:
    assert extract_answer("Who commanded the mission?", ["Completely unrelated words here."]) == ""
    assert extract_answer("", PASSAGES) == ""


@pytest.mark.parametrize(
    "passage",
    [
        # fullwidth letters, zero-width space, emoji
        "\uff34\uff48\uff45 temperature was \u221266\u00b0 F\u200b today \U0001F680.",
        "\x00\ufeff pressure \ufb01eld \u221e \u215e \U0001D7D8",  # NUL, BOM, ligature, odd digits
        "pressure " * 400,
        "Pressure:::;;;...,,,---((()))" * 20,
    ],
)
def test_weird_unicode_does_not_break(passage: str) -> None:
    answer = extract_answer("What was the temperature or pressure?", [passage])
    assert isinstance(answer, str)
    assert len(normalize_answer(answer).split()) <= 10 or "\u00b0" in answer


def test_fullwidth_text_is_normalised() -> None:
    passage = "\uff34\uff48\uff45 temperature was \u221266\u00b0 F."
    answer = extract_answer("What was the temperature?", [passage])
    assert judge(answer, "minus 66\u00b0 F").correct


def test_deterministic_and_order_independent_of_calls() -> None:
    q = "At what time did the crew hear a sharp bang?"
    first = extract_answer(q, PASSAGES)
    extract_answer("Who was the Command Module Pilot?", PASSAGES)
    assert extract_answer(q, PASSAGES) == first == extract_answer(q, list(PASSAGES))


def _load(root: Path) -> tuple[list[str], list[dict]]:
    with (root / "chunks.csv").open(encoding="utf-8", newline="") as fh:
        chunks = [row["content"] for row in csv.DictReader(fh)]
    with (root / "questions.jsonl").open(encoding="utf-8") as fh:
        questions = [json.loads(line) for line in fh if line.strip()]
    return chunks, questions


def test_real_data_gold_vs_random_chunk(data) -> None:
    """Gold chunk: measured 166/318 = 0.522 correct; a random non-gold chunk: about 0.3%."""
    chunks, questions = _load(data.root)
    gold_idx = [next(i for i, c in enumerate(chunks) if q["supporting_paragraphs"][-1] in c)
                for q in questions]
    rng = random.Random(0)
    with_gold = with_random = 0
    for q, g in zip(questions, gold_idx):
        with_gold += judge(extract_answer(q["question"], [chunks[g]]), q["answer"]).correct
        other = rng.randrange(len(chunks) - 1)
        other += other >= g
        with_random += judge(extract_answer(q["question"], [chunks[other]]), q["answer"]).correct
    n = len(questions)
    assert with_gold / n >= 0.45
    assert with_random / n <= 0.03
