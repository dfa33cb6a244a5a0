"""Numbers that agree with each other: the interval width a report quotes comes from the run, "best" is shaded
only between comparable cells, intervals print with one precision, a reward panel says why a run has no line,
and an episode is tagged "recovered" only when it searched again.

Run directories are written by the harness's own writers (``RunRecord``, ``CurveWriter``); no data, no model.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.core.record import ModelRef, RunRecord, TaskRef, write_record
from harness.report.episodes import KINDS
from harness.report.run_report import render_report_html
from harness.report.tables import Column, comparison_table, training_rows
from harness.train.curve import CurveWriter
from tests.episodes import A, S, episode

pytestmark = pytest.mark.tier("unit")

KIND = {key: predicate for key, _, predicate in KINDS}


def eval_run(path: Path, results: dict, weights: dict | None = None) -> Path:
    path.mkdir(parents=True)
    write_record(path, RunRecord(kind="eval", task=TaskRef(name="apollo3_micro", version=1),
                                 model=[ModelRef(backend="scripted", model=p) for p in results],
                                 results=results, reward_weights=weights or {"correctness": 1.0},
                                 status="complete"))
    return path


def metrics(acc: float, n: int, searches: float = 1.0, **more) -> dict:
    return {"n": n, "accuracy": acc, "searches_per_episode": searches, **more}


def shaded(table: str, row: str) -> list[bool]:
    """For each cell of ``row``: is it shaded best?"""
    tr = re.search(rf"<b>{row}</b>.*?</tr>", table).group(0)
    return [bool(m) for m in re.findall(r'<td( class="best")?>', tr)]


def test_the_interval_width_a_report_quotes_comes_from_the_run(tmp_path):
    run = eval_run(tmp_path / "micro", {"micro": {"noise=0.5": metrics(0.47, 100)}})
    page = render_report_html([run])
    assert "With 100 questions an accuracy interval is up to ±0.10 wide" in page
    assert "32 questions" not in page and "±0.17" not in page
    both = eval_run(tmp_path / "paper", {"one-search": {"noise=0": metrics(0.5, 32)}})
    page = render_report_html([run, both])
    assert "With 32–100 questions an accuracy interval is up to ±0.16–0.10 wide" in page


def test_one_policy_is_never_shaded_best_against_itself_at_another_noise_level():
    cols = [Column(None, "oracle-retry", "noise 0", metrics(1.0, 32)),
            Column(None, "oracle-retry", "noise 0.5", metrics(0.47, 32))]
    table = comparison_table(cols)
    assert 'class="best"' not in table
    assert shaded(table, "accuracy") == [False, False]


def test_reward_total_is_shaded_only_between_runs_with_the_same_weights(tmp_path):
    rezero, baseline = {"correctness": 1.0, "retry": 1.0}, {"correctness": 1.0, "retry": 0.0}
    runs = [eval_run(tmp_path / "rezero", {"p": {"noise=0.5": metrics(0.6, 32, reward_total=3.0,
                                                                       reward_correctness=0.6)}}, rezero),
            eval_run(tmp_path / "baseline", {"p": {"noise=0.5": metrics(0.8, 32, reward_total=4.0,
                                                                         reward_correctness=0.8)}}, baseline),
            eval_run(tmp_path / "rezero-2", {"p": {"noise=0.5": metrics(0.5, 32, reward_total=2.5,
                                                                         reward_correctness=0.5)}}, rezero)]
    page = render_report_html(runs)
    table = page[page.index('<table class="data cmp">'):]
    assert shaded(table, "accuracy") == [False, True, False]             # accuracy compares across weights
    assert shaded(table, "reward_correctness") == [False, True, False]   # an unweighted reward mean does too
    # the baseline's total is the highest, but summed with other weights: only rezero against rezero-2
    assert shaded(table, "reward_total") == [True, False, False]


def test_a_policy_that_never_searched_is_not_best_at_searching(tmp_path):
    run = eval_run(tmp_path / "ref", {
        "closed-book": {"noise=0": metrics(0.0, 32, searches=0.0, reward_search_strategy=0.4)},
        "one-search": {"noise=0": metrics(0.5, 32, reward_search_strategy=0.2)},
        "oracle-retry": {"noise=0": metrics(0.6, 32, reward_search_strategy=0.237)}})
    page = render_report_html([run])
    table = page[page.index('<table class="data cmp">'):]
    assert shaded(table, "reward_search_strategy") == [False, False, True]
    assert shaded(table, "accuracy") == [False, False, True]


def test_intervals_print_both_ends_to_the_same_precision(tmp_path):
    cols = [Column(None, "p", "noise 0", metrics(0.0625, 32, reward_retry=0.1131, reward_retry_std=0.3))]
    table = comparison_table(cols)
    assert "[0.017, 0.201]" in table          # Wilson of 2/32, both ends to 3 decimals
    retry = re.search(r"<b>reward_retry</b>.*?</tr>", table).group(0)
    assert re.search(r"\[0\.\d{3}, 0\.\d{3}\]", retry) and not re.search(r"\[0\.\d{4,}", retry)

    class Run:
        label, status, faults, record = "r", "complete", [], None
        analysis = {"n_evals": 2, "peak_step": 10, "peak_raw": 0.0625, "peak_interval": [0.008069, 0.218]}

    row = training_rows([Run()])[1][0]
    assert "[0.008, 0.218]" in row


def train_run(path: Path, retry_weight: float, accuracies: list[float]) -> Path:
    path.mkdir(parents=True)
    weights = {"correctness": 1.0, "format": 1.0, "retry": retry_weight}
    curve = CurveWriter(path / "curve.csv")
    for i, acc in enumerate(accuracies):
        row = {"accuracy": acc, "n": 100, "reward_correctness_mean": acc, "reward_format_mean": 1.0}
        if retry_weight:
            row["reward_retry_mean"] = 0.3
        curve.upsert(10 * i, row)
    write_record(path, RunRecord(kind="train", task=TaskRef(name="apollo3_micro", version=1),
                                 model=[ModelRef(backend="hf", model="micro")], reward_weights=weights,
                                 status="complete"))
    return path


def test_a_reward_panel_says_why_a_run_has_no_line(tmp_path):
    page = render_report_html([train_run(tmp_path / "rezero", 1.0, [0.47, 0.8, 0.9]),
                               train_run(tmp_path / "baseline", 0.0, [0.47, 0.85, 0.9])])
    # runs are labelled by what differs between them: here the retry weight
    assert ("<figcaption>No line for retry weight 0 in reward_retry_mean: its weight is 0, so training did not "
            "compute it.</figcaption>" in page)


def test_recovered_means_it_searched_again_after_the_miss():
    lucky = episode([S("tank pressure", gold=False), A("55:54:53")], correct=True)   # q0024's shape
    assert not KIND["recovered"](lucky) and KIND["premature"](lucky)
    retried = episode([S("tank pressure", gold=False), S("oxygen tank 2", gold=True), A("55:54:53")], correct=True)
    assert KIND["recovered"](retried) and not KIND["premature"](retried)
    gave_up_searching = episode([S("tank", gold=False), S("oxygen", gold=False), A("x")], correct=False)
    assert not KIND["recovered"](gave_up_searching)


def test_a_group_the_runs_have_no_rows_of_is_left_out():
    """A one-sample run's table showed a "Samples per question (K)" heading with nothing under it."""
    one = comparison_table([Column(None, "p", "noise 0", metrics(0.5, 32))])
    assert "Samples per question (K)" not in one and "Outcome" in one
    k = comparison_table([Column(None, "p", "noise 0", metrics(0.5, 32, k=4, avg_at_k=0.5, pass_at_k=0.8))])
    assert "Samples per question (K)" in k and "<b>pass_at_k</b>" in k


def test_a_k_sample_run_quotes_the_interval_of_its_questions_not_its_episodes(tmp_path):
    run = eval_run(tmp_path / "k4", {"p": {"noise=0": metrics(0.5, 128, k=4, n_questions=32, avg_at_k=0.5)}})
    page = render_report_html([run])
    assert "With 32 questions an accuracy interval is up to ±0.16 wide" in page and "128 questions" not in page
