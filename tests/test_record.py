"""The run record (harness.core.record) and the run-directory readers (harness.core.rundir): one typed,
versioned model; run directories written before it (tests/data/v1_runs) still read and render."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.core.errors import DataError
from harness.core.record import SCHEMA_VERSION, Fault, ModelRef, Peak, RunRecord, TaskRef, read_record, write_record
from harness.core.rundir import eval_steps, outcomes, read_curve, read_options, read_samples

V1 = Path(__file__).parent / "data" / "v1_runs"

pytestmark = pytest.mark.tier("unit")


def test_version_1_records_read_as_typed_records():
    ev, tr = read_record(V1 / "eval_run"), read_record(V1 / "train_run")
    assert (ev.kind, ev.schema_version, ev.interval, ev.status) == ("eval", SCHEMA_VERSION, "bootstrap", "complete")
    assert ev.policies == ["oracle-retry"] and set(ev.results["oracle-retry"]) == {"noise=0", "noise=0.5"}
    assert ev.n_samples == {"oracle-retry": {"noise=0": 4, "noise=0.5": 4}}
    assert ev.metrics("oracle-retry", 0.5)["n"] == 4 and ev.peak is None and not ev.is_train
    assert tr.kind == "train" and tr.micro_scale and isinstance(tr.peak, Peak) and tr.peak.n == 6
    assert tr.final.step == 2 and tr.stopping.stop_on_collapse is False and tr.faults == []


def test_version_1_run_directories_read_through_the_one_reader():
    assert eval_steps(V1 / "train_run") == [0, 1, 2]
    curve = read_curve(V1 / "train_run")
    assert curve["step"].tolist() == [0, 1, 2] and curve["n"].tolist() == [6, 6, 6]
    options, resolved = read_options(V1 / "train_run")
    assert options["preset"] == "rezero" and resolved["train_noise"]["level"] == 0.5
    groups = read_samples(V1 / "eval_run")
    assert sorted(groups) == [("oracle-retry", 0.0), ("oracle-retry", 0.5)]
    at_peak = outcomes(V1 / "train_run")
    assert at_peak.step == read_record(V1 / "train_run").peak.step and len(at_peak.outcomes) == 6
    assert len(outcomes(V1 / "eval_run", noise=0.5).outcomes) == 4


def test_a_record_round_trips_and_spells_n_samples_as_lm_eval(tmp_path: Path):
    rec = RunRecord(kind="train", task=TaskRef(name="apollo3", version=1), model=[ModelRef(backend="hf", model="m")],
                    results={"m": {"noise=0": {"n": 4, "accuracy": float("nan")}}}, n_samples={"m": {"noise=0": 4}},
                    status="stopped_collapse", peak=Peak(step=10, accuracy=0.5, interval=(0.2, 0.8), n=4),
                    faults=[Fault(step=3, kind="kl_explosion", detail="kl = 12 > 10")])
    write_record(tmp_path, rec)
    raw = json.loads((tmp_path / "results.json").read_text())
    assert raw["schema_version"] == SCHEMA_VERSION and raw["n-samples"] == {"m": {"noise=0": 4}}
    assert raw["results"]["m"]["noise=0"]["accuracy"] is None         # NaN is written as null
    back = read_record(tmp_path)
    assert back.peak == rec.peak and back.faults == rec.faults and back.interval == "wilson"


@pytest.mark.parametrize("change, message", [
    ({"schema_version": SCHEMA_VERSION + 1}, "newer than this harness reads"),
    ({"status": "finished"}, "status"),
    ({"surprise": 1}, "surprise"),
    ({"kind": None}, "kind"),
])
def test_a_malformed_record_is_one_line_naming_the_file(tmp_path: Path, change: dict, message: str):
    data = json.loads((V1 / "eval_run" / "results.json").read_text())
    (tmp_path / "results.json").write_text(json.dumps({**data, **change}))
    with pytest.raises(DataError, match=message) as err:
        read_record(tmp_path)
    assert str(tmp_path / "results.json") in str(err.value) and "\n" not in str(err.value)


def test_not_json_and_missing_records_are_data_errors(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        read_record(tmp_path)
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(DataError, match="not readable JSON"):
        read_record(tmp_path)


@pytest.mark.integration
def test_version_1_runs_render_alone_and_an_evaluation_beside_a_training(tmp_path: Path):
    """``harness report EVAL_RUN TRAIN_RUN`` compares any two runs (it failed with KeyError 'step')."""
    from harness.cli import app

    for name in ("eval_run", "train_run"):
        shutil.copytree(V1 / name, tmp_path / name)
    for runs in (["eval_run"], ["train_run"], ["eval_run", "train_run"]):
        out = tmp_path / ("-".join(runs) + ".html")
        res = CliRunner().invoke(app, ["report", *(str(tmp_path / r) for r in runs), "-o", str(out)])
        assert res.exit_code == 0, res.output
        page = out.read_text()
        assert "Traceback" not in page
        if "eval_run" in runs:
            assert "oracle-retry" in page
    both = (tmp_path / "eval_run-train_run.html").read_text()
    assert "Comparison" in both and "Training" in both and "eval step" in both
