"""The evaluation protocol end to end: select on dev and report test, K samples per question, the comparability
record and the report's protocol differences, re-scoring without regenerating, over- and under-search."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from harness.cli.app import app
from harness.core.record import OPTIMISTIC, read_record, write_record
from harness.core.results import read_jsonl

pytestmark = pytest.mark.tier("integration")

runner = CliRunner()
TIME_FIELDS = ("timing", "started_at", "finished_at")


def invoke(*args: str) -> str:
    res = runner.invoke(app, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def _rows(run) -> list[dict]:
    return read_jsonl(run / "samples.jsonl")


# ----------------------------------------------------------------------------- K samples


def test_k_samples_draw_their_own_noise_and_resume_sample_by_sample(data, tmp_path):
    args = ["run", "--model", "oracle-retry", "--noise", "0.5", "--limit", "6", "--no-report"]
    invoke(*args, "-o", str(tmp_path / "one"))
    invoke(*args, "-K", "3", "-o", str(tmp_path / "three"))
    one, three = _rows(tmp_path / "one"), _rows(tmp_path / "three")
    assert all("sample" not in r for r in one)           # a one-sample run's rows are as they always were
    assert [r for r in three if r.get("sample", 0) == 0] == one   # sample 0 is the one-sample run, byte for byte
    seeds = {(r["qid"], r.get("sample", 0)): r["noise"]["seed"] for r in three}
    assert len(set(seeds.values())) == 3 and len(seeds) == 18   # each sample its own noise seed
    assert len({tuple(r["n_searches"] for r in three if r["qid"] == q) for q in {r["qid"] for r in three}}) > 1
    m = read_record(tmp_path / "three").metrics("oracle-retry", 0.5)
    assert (m["k"], m["n_questions"], m["n"]) == (3, 6, 18)
    assert m["avg_at_k"] == m["accuracy"] and m["pass_at_k"] >= m["avg_at_k"]
    assert read_record(tmp_path / "three").interval == "cluster_bootstrap"
    # two samples, then a third added on --resume: the same episodes as three at once
    invoke(*args, "-K", "2", "-o", str(tmp_path / "grown"))
    invoke(*args, "-K", "3", "-o", str(tmp_path / "grown"), "--resume")
    assert sorted(map(json.dumps, _rows(tmp_path / "grown"))) == sorted(map(json.dumps, three))
    assert read_record(tmp_path / "grown").results == read_record(tmp_path / "three").results


# ----------------------------------------------------------------------------- comparability


def test_report_prints_protocol_differences_before_comparing(data, tmp_path):
    base = ["run", "--model", "oracle-retry", "--noise", "0.5", "--limit", "4", "--no-report"]
    invoke(*base, "-o", str(tmp_path / "k3"))
    invoke(*base, "-k", "5", "-K", "2", "-o", str(tmp_path / "k5"))
    a, b = (read_record(tmp_path / d).comparability for d in ("k3", "k5"))
    assert a.data == {t: v["sha256"] for t, v in data.task.data.loaded.items()}
    lines = sorted(q.line for q in data.split("test")[:4])
    assert (a.split, a.split_lines, a.retriever, a.k, a.samples) == ("test", lines, "bm25", 3, 1)
    assert [f for f, _, _ in a.differences(b)] == ["k", "samples"]
    out = invoke("report", str(tmp_path / "k3"), str(tmp_path / "k5"), "-o", str(tmp_path / "r.html"))
    lines = out.splitlines()
    diff = [i for i, line in enumerate(lines) if line.startswith("  protocol differs: ")]
    assert [lines[i].split(":")[1].strip() for i in diff] == ["k", "samples"]
    assert lines[diff[0]].endswith(" 5") and " 3 · " in lines[diff[0]]   # each run (by its label) with its k
    assert diff[-1] < next(i for i, x in enumerate(lines) if x.startswith("report written"))
    page = (tmp_path / "r.html").read_text()
    assert "Comparison (across different protocols)" in page and "measured under different protocols" in page
    assert page.index('id="protocol"') < page.index('id="comparison"')
    invoke(*base, "-o", str(tmp_path / "again"))
    same = invoke("report", str(tmp_path / "k3"), str(tmp_path / "again"), "-o", str(tmp_path / "s.html"))
    assert "protocol differs" not in same and "share one protocol" in (tmp_path / "s.html").read_text()


# ----------------------------------------------------------------------------- rescore


@pytest.mark.parametrize("task_name, extra", [("apollo3", ["-K", "2", "--limit", "6"]),
                                         ("apollo3_micro", ["--limit", "8"])])
def test_rescore_with_nothing_changed_reproduces_the_record_byte_for_byte(data, tmp_path, task_name, extra):
    run, new = tmp_path / "run", tmp_path / "new"
    invoke("run", "--task", task_name, "--model", "oracle-retry", "--noise", "0.5", *extra, "-o", str(run),
           "--no-report")
    invoke("rescore", str(run), "-o", str(new), "--no-report")
    old = read_record(run)
    fixed = read_record(new).model_copy(update={f: getattr(old, f) for f in ("timing", "started_at", "finished_at")})
    write_record(tmp_path / "fixed.json", fixed)
    assert (tmp_path / "fixed.json").read_bytes() == (run / "results.json").read_bytes()
    assert (new / "samples.jsonl").read_bytes() == (run / "samples.jsonl").read_bytes()
    cfg = json.loads((new / "config.json").read_text())
    assert cfg["rescored"] == {"from": str(run), "changed": {}}


def test_rescore_with_another_judge_and_semantics_changes_only_the_scores(data, tmp_path):
    run, new = tmp_path / "run", tmp_path / "new"
    invoke("run", "--model", "oracle-retry", "--limit", "8", "-o", str(run), "--no-report")
    invoke("rescore", str(run), "-o", str(new), "--judge", "exact_match", "--reward-semantics", "strict",
           "--reward-weights", "retry=0", "--no-report")
    old_rows, new_rows = _rows(run), _rows(new)
    assert [r["messages"] for r in old_rows] == [r["messages"] for r in new_rows]     # nothing generated again
    assert all(r["correct"] == r["judge"]["em"] for r in new_rows)          # exact match decides now
    assert any(r["correct"] != r["judge"]["em"] for r in old_rows)          # it did not before
    rec = read_record(new)
    assert rec.reward_semantics == "strict" and rec.reward_weights["retry"] == 0.0
    assert rec.comparability.judge.startswith("exact_match") and rec.config["judge"] == "exact_match"
    assert json.loads((new / "config.json").read_text())["rescored"]["changed"] == {
        "judge": "exact_match", "reward_semantics": "strict", "reward_weights": "retry=0"}
    assert rec.metrics()["reward_total"] != read_record(run).metrics()["reward_total"]


def test_rescore_refuses_a_training_run_and_its_own_directory(data, tmp_path):
    from harness.core.errors import ConfigError
    from harness.evaluation.rescore import Rescore

    with pytest.raises(ConfigError, match="not a harness run directory"):
        Rescore(tmp_path, tmp_path / "x", {})
    run = tmp_path / "run"
    invoke("run", "--model", "closed-book", "--limit", "2", "-o", str(run), "--no-report")
    with pytest.raises(ConfigError, match="another folder"):
        Rescore(run, run, {})
    with pytest.raises(ConfigError, match="cannot change k"):
        Rescore(run, tmp_path / "y", {"k": 5})


# ----------------------------------------------------------------------------- over- and under-search


def test_closed_book_reference_gives_over_and_under_search(data, tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    invoke("run", "--model", "closed-book", "--noise", "0,0.5", "--limit", "8", "-o", str(ref), "--no-report")
    invoke("run", "--model", "oracle-retry", "--limit", "8", "--closed-book-ref", str(ref), "-o", str(run),
           "--no-report")
    m = read_record(run).metrics()
    # the scripted closed-book policy knows nothing: every question is one oracle-retry had to search for
    assert (m["n_over_search"], m["over_search"]) == (0, None)
    assert (m["n_under_search"], m["under_search"]) == (8, 0.0) and m["n_closed_book_questions"] == 8
    assert m["closed_book_ref"].endswith("samples.jsonl: closed-book @ noise 0")


# ----------------------------------------------------------------------------- select on dev, report test


MICRO = ["--task", "apollo3_micro", "--model", "micro", "--threads", "1", "--eval-limit", "6", "-G", "2",
         "--prompts-per-step", "2", "--max-turns", "3", "--no-report", "--max-steps", "3", "--eval-every", "1"]


def _curve(run) -> list[dict]:
    with open(run / "curve.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_training_selects_on_dev_and_reports_test_at_the_selected_step(data, tmp_path):
    run = tmp_path / "run"
    out = invoke("train", *MICRO, "-o", str(run))
    rec = read_record(run)
    rows = _curve(run)
    evals = [r for r in rows if r["accuracy"]]
    tested = [int(r["step"]) for r in rows if r["test_accuracy"]]
    best = [int(r["step"]) for i, r in enumerate(evals)
            if all(float(r["accuracy"]) > float(e["accuracy"]) for e in evals[:i])]
    assert tested == sorted(set(best) | {3})             # test at each new best on dev and at the end, nowhere else
    assert [p.name for p in sorted((run / "eval_samples" / "reported").iterdir())] == [
        f"step_{s:05d}.jsonl" for s in tested]
    dev_qids = {r["qid"] for r in read_jsonl(run / "eval_samples" / "step_00000.jsonl")}
    test_qids = {r["qid"] for r in read_jsonl(run / "eval_samples" / "reported" / "step_00000.jsonl")}
    assert not dev_qids & test_qids and len(dev_qids) == len(test_qids) == 6
    peak = rec.peak
    assert (peak.split, peak.optimistic, peak.reported.split) == ("dev", False, "test")
    at = next(r for r in rows if int(r["step"]) == peak.step)
    assert peak.reported.accuracy == float(at["test_accuracy"]) and peak.accuracy == float(at["accuracy"])
    assert rec.final.reported.step == 3
    kept = json.loads((run / "peak" / "peak.json").read_text())
    assert kept["selection_split"] == "dev" and kept["reported"]["accuracy"] == peak.reported.accuracy
    assert rec.comparability.selection_split == "dev" and rec.comparability.split == "test"
    assert rec.timing["eval_reported_s"] > 0 and rec.timing["eval_s"] == pytest.approx(
        rec.timing["eval_selection_s"] + rec.timing["eval_reported_s"])
    assert f"test accuracy at the step selected on dev ({peak.step}): {peak.reported.accuracy:.4f}" in out
    from harness.core.rundir import outcomes

    assert outcomes(run).source == f"eval_samples/reported/step_{peak.step:05d}.jsonl"   # paired: test at selected


def test_selecting_on_the_reported_questions_is_labelled_optimistic(data, tmp_path):
    run = tmp_path / "run"
    out = invoke("train", *MICRO, "--max-steps", "1", "--selection-split", "test", "-o", str(run))
    rec = read_record(run)
    assert rec.peak.optimistic and rec.peak.split == "test" and OPTIMISTIC in out
    assert not (run / "eval_samples" / "reported").exists()      # one split: evaluated once per eval
    rows = _curve(run)
    assert all(r["test_accuracy"] == r["accuracy"] for r in rows if r["test_accuracy"])
    assert json.loads((run / "peak" / "peak.json").read_text())["selection"] == OPTIMISTIC
    from harness.report.run_report import render_report_html

    page = render_report_html([run])
    assert "optimistic (selected on the reported questions)" in page and "reported at the selected step" in page
