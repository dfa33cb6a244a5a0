"""ReZero's reward tests, every case (tests/rezero_cases.py), under both reward semantics.

``rezero`` must pass every case as ReZero's own test asserts it; ``strict`` gives the project's value,
with a one-line reason wherever it differs. The fuzz tests check that the linear-time matching used by
the ``rezero`` rewards finds exactly what ReZero's regular expressions find.
"""

from __future__ import annotations

import operator
import random
import re

import pytest
from rezero_cases import CASES, Case, build

from harness.episode.protocol import blocks_of
from harness.scoring import rewards as R
from harness.scoring.rewards import reward_fn

pytestmark = pytest.mark.tier("unit")

_OPS = {">": operator.gt, "<": operator.lt}


def check(case: Case, semantics: str, expected) -> None:
    fn = reward_fn(case.reward, semantics)
    if expected == "raises":
        with pytest.raises(ValueError, match="chunk_content must be provided"):
            fn(build(case))
        return
    value = fn(build(case))
    if isinstance(expected, tuple):
        op, bound = expected
        assert _OPS[op](value, bound), f"{case.id}: {value} is not {op} {bound}"
    else:
        assert value == pytest.approx(expected, abs=1e-9), f"{case.id}: {value} != {expected}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rezero_semantics_passes_every_rezero_case(case):
    check(case, "rezero", case.rezero)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_strict_semantics_gives_the_project_value(case):
    check(case, "strict", case.rezero if case.strict is None else case.strict)


def test_the_port_is_complete_and_every_difference_has_a_reason():
    main = [c for c in CASES if c.source == "2fec4f2"]
    assert len(main) == 56 and len(CASES) == 61
    assert len({c.id for c in CASES}) == len(CASES)
    for c in CASES:
        if c.strict is not None:
            assert c.strict != c.rezero and c.why, c.id
        else:
            assert not c.why, c.id


def test_inequality_cases_pinned_to_their_values():
    """ReZero asserts only bounds for these; the values are pinned so a drift is seen."""
    by_id = {c.id: c for c in CASES}
    assert reward_fn("retry", "rezero")(build(by_id["retry_positive_for_multiple_searches"])) == 0.5
    assert reward_fn("search_diversity", "rezero")(build(by_id["search_diversity_diverse_queries"])) == \
        pytest.approx(0.66561746, abs=1e-8)
    assert reward_fn("search_diversity", "rezero")(build(by_id["search_diversity_exact_duplicates"])) == 0.0


# ----------------------------------------------------------------------------- the linear-time matching
_ALPHABET = ["<think>", "</think>", "<search>", "</search>", "<answer>", "</answer>", "<information>",
             "</information>", "<Info>", "</INFO>", "<info>", "</info>", "<INFORMATION>", "</informationx>",
             "based", " found ", "x", " ", "\n", "<", ">", "*", "_", '"', "-", "site:a", " OR ", " AND ", "  "]


def _random_texts(n: int, seed: int = 0):
    rng = random.Random(seed)
    for _ in range(n):
        yield "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 14)))


def test_blocks_match_the_lazy_regex():
    for text in _random_texts(4000):
        for tag in ("think", "search", "answer", "information"):
            want = [(m.start(), m.end()) for m in re.finditer(rf"<{tag}>[\s\S]*?</{tag}>", text)]
            assert [(b.start, b.end) for b in blocks_of(text, tag)] == want, text


def test_information_check_matches_rezero_five_patterns():
    patterns = [r"<information>[\s\S]*?</information>", r"<info>[\s\S]*?</info>", r"<Info[\w]*>[\s\S]*?</Info[\w]*>",
                r"<INFORMATION>[\s\S]*?</INFORMATION>", r"<INFO>[\s\S]*?</INFO>"]
    for text in _random_texts(4000, seed=1):
        want = any(re.findall(p, text, re.IGNORECASE) for p in patterns)
        assert bool(R.find_blocks(text, R._INFO_OPEN, R._INFO_CLOSE)) == want, text


def test_analysis_check_matches_rezero_pattern():
    pattern = re.compile(r"<think>[^<>]*?\b(?:based|according|from|results?|found|shows?|provided|information)\b"
                         r"[^<>]*?</think>", re.IGNORECASE)
    for text in _random_texts(4000, seed=2):
        assert R._analyses_rezero(text) == bool(pattern.search(text)), text


def test_operator_pattern_matches_rezero_pattern():
    original = re.compile(r'(?:site|filetype):\S+|"[^"]+"|(?:\s+OR\s+|\s+AND\s+|-\w+)')
    for text in _random_texts(4000, seed=3):
        for t in (text, text.lower()):
            assert R._R_OPERATORS.findall(t) == original.findall(t), t
            assert R._R_OPERATORS.sub("", t) == original.sub("", t), t
