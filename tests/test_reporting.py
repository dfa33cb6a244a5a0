"""``harness train --report-to``: TRL's logs and the harness's evals in TensorBoard, W&B (offline) and MLflow,
each read back with the backend's own reader; and ``harness export --format inspect`` of the same training run."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from harness.cli.app import app
from harness.train.config import TrainConfig

pytestmark = pytest.mark.tier("unit")

FAST = ["--model", "tiny", "--warm-start", "40", "--threads", "1", "--eval-limit", "4", "--max-new-tokens", "24",
        "--max-turns", "3", "-G", "4", "--prompts-per-step", "2", "--no-report"]


def test_report_to_is_a_validated_list():
    assert TrainConfig(report_to="tensorboard, wandb").report_to == ["tensorboard", "wandb"]
    assert TrainConfig(report_to="none").report_to == [] and TrainConfig().report_to is None
    with pytest.raises(ValueError, match="unknown --report-to 'tensorbord'"):
        TrainConfig(report_to="tensorbord")
    assert "report_to" in TrainConfig.RESUME_FREE  # where the curves go does not change them


def _installed(*names):
    import importlib.util

    return all(importlib.util.find_spec(n) is not None for n in names)


@pytest.fixture(scope="module")
def reported_run(data, tmp_path_factory):
    """One tiny training (3 steps, evals at 0, 2 and 3) logging to all three backends at once."""
    missing = [n for n in ("tensorboard", "wandb", "mlflow") if not _installed(n)]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs the reporting extras; missing: {', '.join(missing)}")
        pytest.skip(f"not installed: {', '.join(missing)}")
    root = tmp_path_factory.mktemp("report_to")
    # MLflow 3 keeps its file store read-only ("maintenance mode"); its local store is a SQLite file
    out, mlruns = root / "run-tb-wandb-mlflow", f"sqlite:///{root / 'mlflow.db'}"
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "MLFLOW_TRACKING_URI": mlruns,
           "MLFLOW_EXPERIMENT_NAME": "harness-test"}
    saved = {k: os.environ.get(k) for k in (*env, "WANDB_DIR", "WANDB_PROJECT")}
    os.environ.update(env)
    try:
        res = CliRunner().invoke(app, ["train", "--task", "apollo3", *FAST, "--max-steps", "3", "--eval-every", "2",
                                       "--report-to", "tensorboard,wandb,mlflow", "-o", str(out)],
                                 catch_exceptions=False)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert res.exit_code == 0, res.output
    return out, mlruns


@pytest.mark.integration
def test_tensorboard_event_files_hold_the_harness_evals(reported_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _ = reported_run
    files = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert files, "no TensorBoard event file under RUN_DIR/tensorboard"
    acc = EventAccumulator(str(files[0].parent))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    accuracy = {e.step: e.value for e in acc.Scalars("eval/accuracy")}
    assert set(accuracy) == {0, 2, 3}                             # every eval, at its step
    import csv

    with open(out / "curve.csv", newline="") as f:
        curve = {int(r["step"]): float(r["accuracy"]) for r in csv.DictReader(f) if r["accuracy"]}
    assert accuracy == pytest.approx(curve)                       # the same numbers as curve.csv
    for tag in ("eval/accuracy_ci_low", "eval/accuracy_ci_high", "eval/searches_per_episode", "eval/retry_rate",
                "eval/format_validity", "eval/peak_accuracy", "eval/peak_step", "eval/new_peak",
                "eval/collapse_alarm", "train/loss", "train/reward"):
        assert tag in tags, (tag, tags)
    assert {e.step for e in acc.Scalars("train/loss")} == {1, 2, 3}  # TRL's own logging, every step
    assert acc.Scalars("eval/new_peak")[0].value == 1.0           # the first eval is the peak so far


@pytest.mark.integration
def test_wandb_offline_run_folder_and_mlflow_run(reported_run):
    out, mlruns = reported_run
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb")), list((out / "wandb").iterdir())

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlruns)
    exp = client.get_experiment_by_name("harness-test")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == out.name                          # one run name: the run directory's
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "eval_accuracy")}
    assert set(history) == {0, 2, 3}
    assert {m.step for m in client.get_metric_history(run.info.run_id, "loss")} == {1, 2, 3}


@pytest.mark.integration
def test_export_a_training_run_to_inspect(reported_run, tmp_path):
    pytest.importorskip("inspect_ai")
    from inspect_ai.log import read_eval_log

    from harness.core.record import read_record

    out, _ = reported_run
    res = CliRunner().invoke(app, ["export", str(out), "--format", "inspect", "-o", str(tmp_path / "t.eval")],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    log = read_eval_log(str(tmp_path / "t.eval"))
    rec = read_record(out)
    assert log.eval.task_args["step"] == rec.peak.step and len(log.samples) == 4
