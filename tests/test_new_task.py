"""docs/new_task.md, followed as a user would: a task of one's own (20 questions over five paragraphs,
chunks.csv and questions.jsonl without checksums, the guide's task.yaml), then `harness validate`,
`harness run` and a 2-step `harness train` on it, as subprocesses, with no change to harness/.

Runs without the Apollo data (the task brings its own), and with $HARNESS_DATA_DIR pointing elsewhere:
the task's own data.dir wins."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from byo_task import QA, REPO, guide_task_yaml, write_task

pytestmark = pytest.mark.tier("integration")


def harness(*args, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
           "COLUMNS": "100", "HARNESS_DATA_DIR": str(cwd / "not-this-task")}  # a data dir of another task
    proc = subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"harness {' '.join(map(str, args))}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.unit
def test_the_guides_task_yaml_is_the_whole_file_and_valid(tmp_path):
    """The yaml block of the guide is a complete task: it loads, needs no checksum and names no hook."""
    from harness.core.config import load_task

    text = guide_task_yaml()
    assert text.startswith("# mytask")
    task = load_task(write_task(tmp_path))
    assert task.data.files.chunks.sha256 is None and task.data.files.questions.sha256 is None
    assert task.name == "mytask" and task.data.dir == str(tmp_path / "mytask" / "data")
    assert task.data.files.paraphrases is None and task.hooks == type(task.hooks)()
    assert set(task.presets) == {"rezero", "baseline"} and task.scale == "paper"


def test_a_new_task_from_the_guide_validates_runs_and_trains(tmp_path):
    path = write_task(tmp_path)                      # tmp_path/mytask/{task.yaml, data/}
    data = path.parent / "data"

    v = harness("validate", "mytask/task.yaml", cwd=tmp_path)
    assert v.stdout.strip() == "ok      mytask/task.yaml (task; data: 5 chunks, 20 questions, test 2, dev 2, train 16)"

    harness("run", "--task", "mytask/task.yaml", "-o", "runs/eval", "--no-report", cwd=tmp_path)
    res = json.loads((tmp_path / "runs" / "eval" / "results.json").read_text())
    assert res["task"] == {"name": "mytask", "version": 1} and res["status"] == "complete"
    assert sorted(res["results"]) == ["closed-book", "one-search", "oracle-retry"]
    clean = {p: res["results"][p]["noise=0"] for p in res["results"]}
    assert all(m["n"] == 2 for m in clean.values())                   # the paper split: 10% of 20 questions
    assert clean["oracle-retry"]["accuracy"] == 1.0 and clean["closed-book"]["accuracy"] == 0.0
    assert res["results"]["oracle-retry"]["noise=0.5"]["n"] == 2
    # the files had no checksum in task.yaml: the run records the ones it read
    loaded = json.loads((tmp_path / "runs" / "eval" / "config.json").read_text())["task"]["data"]["loaded"]
    for key, name in (("chunks", "chunks.csv"), ("questions", "questions.jsonl")):
        assert loaded[key]["sha256"] == hashlib.sha256((data / name).read_bytes()).hexdigest()
        assert loaded[key]["path"] == str(data / name) and loaded[key]["pinned"] is False

    harness("train", "--task", str(path), "--model", "tiny", "--warm-start", "40", "--max-steps", "2",
            "--eval-every", "2", "--threads", "1", "--eval-limit", "2", "--max-new-tokens", "24", "--max-turns", "3",
            "-G", "4", "--prompts-per-step", "2", "--no-report", "-o", "runs/train", cwd=tmp_path)
    out = tmp_path / "runs" / "train"
    res = json.loads((out / "results.json").read_text())
    assert res["kind"] == "train" and res["task"] == {"name": "mytask", "version": 1}
    assert res["status"] == "complete" and res["final"]["step"] == 2
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["task"]["source"] == str(path) and cfg["task"]["data"]["loaded"]["chunks"]["bytes"] > 0
    assert len(QA) == 20
