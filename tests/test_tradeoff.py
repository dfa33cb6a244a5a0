"""The online rule's trade-off (harness.bench.calibrate.tradeoff): each confirmation eval trades false stops for
one eval interval of delay, and the table says so per set (docs/detection.md, "The trade-off")."""

from __future__ import annotations

import pytest

from harness.bench.calibrate import format_calibration, grid, tradeoff
from harness.bench.real import RealCurve, real_rates
from harness.stats.detect import DetectorConfig

pytestmark = pytest.mark.tier("unit")

STEPS = [0, 5, 10, 15, 20, 25, 30, 35]
#: healthy: a two-eval dip far below half that comes back (the real runs' shape the default stops)
DIP = RealCurve("dip", "t", STEPS, [40, 90, 95, 20, 25, 94, 95, 96], 100, None, None)
#: a sustained drop labelled at step 15
FALL = RealCurve("fall", "t", STEPS, [40, 90, 95, 10, 5, 3, 2, 2], 100, 15, None)
ONE, TWO = DetectorConfig(online_confirm=2), DetectorConfig(online_confirm=3)


def test_a_second_confirmation_eval_spares_a_two_eval_dip_and_costs_one_interval():
    one, two = real_rates([DIP, FALL], ONE)["online"], real_rates([DIP, FALL], TWO)["online"]
    assert (one["false_stop"]["hits"], two["false_stop"]["hits"]) == (1, 0)
    assert (one["found"]["hits"], two["found"]["hits"]) == (1, 0)  # within one interval: given up by construction
    assert one["found_within_two"]["hits"] == two["found_within_two"]["hits"] == 1
    assert (one["delay_evals"], two["delay_evals"]) == (1.0, 2.0)


def test_tradeoff_rows_and_table():
    rows = tradeoff([ONE, TWO], [DIP, FALL], count=20, n=100, seed=0)
    assert [r["config"]["online_confirm"] for r in rows] == [2, 3]
    assert [r["real"]["false_collapse"]["hits"] for r in rows] == [1, 0]
    for r in rows:
        for s in ("planted", "empirical"):
            assert 0 <= r[s]["found"]["rate"] <= r[s]["found_within_two"]["rate"] <= 1
    res = {"real": {**real_rates([DIP, FALL]), "duplicates": {}}, "generators": {}, "tradeoff": {"100": rows}}
    table = format_calibration(res)
    assert "1/1 1.000, 1/1, 1/1 (1.00)" in table and "0/1 0.000, 0/1, 1/1 (2.00)" in table


def test_grid_spans_no_one_and_two_confirmation_evals():
    assert sorted({c.online_confirm for c in grid()}) == [1, 2, 3]
    assert all(c.confirm_fraction is None for c in grid() if c.online_confirm == 1)
