"""``harness export RUN --format inspect``: Inspect AI eval logs read back with ``inspect_ai.log.read_eval_log``."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from harness.cli.app import app
from harness.core.record import read_record
from harness.core.results import read_jsonl

pytestmark = pytest.mark.tier("integration")
runner = CliRunner()


@pytest.fixture(scope="module")
def inspect_ai():
    try:
        import inspect_ai
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI installs the [inspect] extra")
        pytest.skip("inspect_ai is not installed (pip install 'retry-harness[inspect]')")
    return inspect_ai


@pytest.fixture(scope="module")
def scripted_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("insp") / "run"
    res = runner.invoke(app, ["run", "--model", "oracle-retry", "--noise", "0,0.5", "--limit", "5", "--no-report",
                              "-o", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


def test_one_log_per_policy_and_noise_with_every_episode(inspect_ai, scripted_run, tmp_path):
    from inspect_ai.log import read_eval_log

    res = runner.invoke(app, ["export", str(scripted_run), "--format", "inspect", "-o", str(tmp_path / "logs")],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    files = sorted((tmp_path / "logs").glob("*.eval"))
    assert [f.name for f in files] == ["oracle-retry_noise-0.5.eval", "oracle-retry_noise-0.eval"]
    rows = {(r["noise_level"], r["qid"]): r for r in read_jsonl(scripted_run / "samples.jsonl")}
    rec = read_record(scripted_run)
    for f in files:
        log = read_eval_log(str(f))
        level = log.eval.task_args["noise_level"]
        assert log.status == "success" and log.eval.task == "apollo3" and log.eval.model == "scripted/oracle-retry"
        assert len(log.samples) == 5 == log.results.total_samples
        metrics = log.results.scores[0].metrics
        assert metrics["accuracy"].value == rec.metrics("oracle-retry", level)["accuracy"]
        retry = log.results.scores[1].metrics
        assert retry["persistence"].value == rec.metrics("oracle-retry", level)["persistence"]
        assert retry["accuracy_ci_low"].value == rec.metrics("oracle-retry", level)["accuracy_ci_low"]
        for s in log.samples:
            row = rows[(level, s.id)]
            assert s.target == row["gold_answer"] and s.input == row["question"]
            assert [m.role for m in s.messages] == [m["role"] for m in row["messages"]]
            assert [m.text for m in s.messages] == [m["content"] for m in row["messages"]]
            assert s.scores["judge"].value == ("C" if row["correct"] else "I")
            assert s.scores["judge"].answer == row["answer"] and s.scores["judge"].explanation.startswith(
                "judge rule" if row["answer"] is not None else "no answer")
            assert s.metadata["rewards"] == row["rewards"] and s.metadata["n_searches"] == row["n_searches"]
            assert s.metadata["first_gold_search"] == row["first_gold_search"]
            assert s.output.completion == row["messages"][-1]["content"]


def test_one_file_needs_one_pair_and_json_works(inspect_ai, scripted_run, tmp_path):
    from inspect_ai.log import read_eval_log

    res = runner.invoke(app, ["export", str(scripted_run), "-o", str(tmp_path / "x.eval")])
    assert res.exit_code != 0 and "--policy and --noise" in str(res.exception)
    assert not (tmp_path / "x.eval").exists()
    res = runner.invoke(app, ["export", str(scripted_run), "--noise", "0.5", "-o", str(tmp_path / "x.json")],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    log = read_eval_log(str(tmp_path / "x.json"))
    assert log.eval.task_args["noise_level"] == 0.5 and len(log.samples) == 5
    assert not list(tmp_path.glob(".*tmp*"))  # written whole, then renamed


def test_export_never_writes_into_a_run_or_over_a_strangers_file(scripted_run, tmp_path):
    """Issue 27's data-lost class for `harness export -o` (it wrote wherever it was told): a path inside a run
    directory (the exported run's own samples.jsonl among them) is refused, and so is an existing file it
    did not write, unless --force; all before any work."""
    before = {p.name: p.read_bytes() for p in scripted_run.iterdir() if p.is_file()}
    for target in (scripted_run / "samples.jsonl", scripted_run / "x.json", scripted_run):
        res = runner.invoke(app, ["export", str(scripted_run), "--noise", "0.5", "-o", str(target)])
        assert res.exit_code != 0 and "run directory" in str(res.exception), (target, res.output)
    assert {p.name: p.read_bytes() for p in scripted_run.iterdir() if p.is_file()} == before
    mine = tmp_path / "notes.json"
    mine.write_text("mine")
    res = runner.invoke(app, ["export", str(scripted_run), "--noise", "0.5", "-o", str(mine)])
    assert res.exit_code != 0 and "--force" in str(res.exception) and mine.read_text() == "mine"
    res = runner.invoke(app, ["export", str(scripted_run), "--noise", "0.5", "-o", str(mine), "--force"],
                        catch_exceptions=False)
    assert res.exit_code == 0 and mine.read_text() != "mine"
