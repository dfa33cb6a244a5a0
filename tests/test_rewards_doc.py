"""docs/rewards.md's rule table matches the code: every value it states is recomputed here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rezero_cases import CASES, EXAMPLES, build

from harness.scoring.rewards import REWARDS, reward_fn

pytestmark = pytest.mark.tier("unit")

DOC = Path(__file__).resolve().parents[1] / "docs" / "rewards.md"
_NUMBER = re.compile(r"(error|\d+(?:\.\d+)?)")


def table_rows() -> list[dict[str, str]]:
    lines = DOC.read_text().splitlines()
    start = lines.index("| reward | rule | ReZero (pinned code) | `rezero` | `strict` | example |")
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows.append(dict(zip(("reward", "rule", "rezero_code", "rezero", "strict", "example"), cells)))
    return rows


def _value(case, semantics: str):
    try:
        return reward_fn(case.reward, semantics)(build(case))
    except ValueError:
        return "error"


def _stated(cell: str):
    m = _NUMBER.match(cell)
    assert m, f"cell does not open with a value: {cell!r}"
    return "error" if m.group(1) == "error" else float(m.group(1))


def test_every_reward_has_rows_and_every_row_a_registered_reward():
    rows = table_rows()
    assert {r["reward"] for r in rows} == set(REWARDS)
    assert len(rows) >= 30


@pytest.mark.parametrize("row", table_rows(), ids=lambda r: f"{r['reward']}:{r['rule'][:30]}")
def test_table_values_are_the_codes(row):
    cases = {c.id: c for c in CASES + EXAMPLES}
    example = row["example"].strip("`")
    case = cases[example]
    assert case.reward == row["reward"], example
    for semantics in ("rezero", "strict"):
        stated, actual = _stated(row[semantics]), _value(case, semantics)
        if stated == "error" or actual == "error":
            assert stated == actual, (example, semantics, actual)
        else:
            assert actual == pytest.approx(stated, abs=6e-4), (example, semantics, actual)
    # the example's recorded expectations agree with the table too
    expected_rezero = case.rezero
    if not isinstance(expected_rezero, tuple):
        assert _stated(row["rezero"]) == ("error" if expected_rezero == "raises" else
                                          pytest.approx(expected_rezero, abs=6e-4))


def _expected(value):
    return "error" if value == "raises" else pytest.approx(value, abs=6e-4)


def test_examples_have_the_values_they_record():
    for c in EXAMPLES:
        assert _value(c, "rezero") == _expected(c.rezero), c.id
        assert _value(c, "strict") == _expected(c.rezero if c.strict is None else c.strict), c.id
