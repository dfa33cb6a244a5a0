"""One process per run directory (harness.core.rundir), the --resume configuration check, one file mode.

The concurrency tests use real processes: the first is paused (SIGSTOP) as soon as it holds the lock,
so the second always meets a live holder, however fast the machine is.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.core.errors import ConfigError
from harness.core.rundir import (
    HOLDER_NAME,
    LOCK_NAME,
    RunDir,
    check_resume,
    saved_config,
)


# ----------------------------------------------------------------------------- unit
@pytest.mark.unit
def test_second_opener_is_refused_naming_the_holder(tmp_path):
    first = RunDir(tmp_path / "run").open()
    holder = json.loads((tmp_path / "run" / HOLDER_NAME).read_text())
    assert holder["pid"] == os.getpid() and holder["started_at"]
    with pytest.raises(ConfigError, match=rf"in use by another process \(pid {os.getpid()} on .*started "
                                          rf"{re.escape(holder['started_at'])}"):
        RunDir(tmp_path / "run").open()
    first.close()
    assert not (tmp_path / "run" / HOLDER_NAME).exists()
    RunDir(tmp_path / "run").open().close()          # free again once released


@pytest.mark.unit
def test_discard_removes_only_what_this_process_created(tmp_path):
    (tmp_path / "runs" / "other").mkdir(parents=True)
    rd = RunDir(tmp_path / "runs" / "new" / "run").open()
    assert rd.created
    rd.close(discard=True)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["other"]   # created parent "new" gone too
    rd = RunDir(tmp_path / "fresh" / "run").open()
    rd.close(discard=True)
    assert not (tmp_path / "fresh").exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "samples.jsonl").write_text("{}\n")
    rd = RunDir(tmp_path / "kept").open()
    assert not rd.created
    rd.close(discard=True)
    assert (tmp_path / "kept" / "samples.jsonl").read_text() == "{}\n"


@pytest.mark.unit
def test_discard_never_removes_a_directory_another_process_holds(tmp_path):
    holder = RunDir(tmp_path / "run").open()
    loser = RunDir(tmp_path / "run")
    loser.created = True                    # as if it had won the mkdir race but lost the lock
    with pytest.raises(ConfigError, match="in use"):
        loser.open()
    loser.close(discard=True)
    assert (tmp_path / "run" / LOCK_NAME).exists() and holder.locked
    holder.close()


@pytest.mark.unit
def test_output_path_that_is_a_file_and_run_files_that_are_directories(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        RunDir(tmp_path / "f").open()
    rd = RunDir(tmp_path / "run").open()
    rd.require_writable("results.json", "samples.jsonl", append=True)   # absent files are fine
    (tmp_path / "run" / "results.json").mkdir()
    with pytest.raises(ConfigError, match="results.json is a directory"):
        rd.require_writable("config.json", "results.json")
    rd.close()


@pytest.mark.unit
@pytest.mark.parametrize("content, holds, message", [
    (None, True, "config.json is missing"),
    ("{not json", True, "config.json is corrupt"),
    (b"\xff\xfe\x00", True, "config.json is corrupt"),
    ('{"task": {}}', True, "has no 'run' settings"),
    ('{"run": [1, 2]}', True, "has no 'run' settings"),
])
def test_resume_refuses_a_configuration_it_cannot_check(tmp_path, content, holds, message):
    if isinstance(content, bytes):
        (tmp_path / "config.json").write_bytes(content)
    elif content is not None:
        (tmp_path / "config.json").write_text(content)
    with pytest.raises(ConfigError, match=message) as e:
        check_resume(tmp_path, "run", {"seed": 0}, set(), holds_results=holds)
    assert "new --output-dir" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.unit
def test_resume_check_passes_when_nothing_can_mix_and_names_changed_options(tmp_path):
    assert saved_config(tmp_path, "run", holds_results=False) is None      # empty directory: nothing to mix
    (tmp_path / "config.json").write_text(json.dumps({"run": {"seed": 0, "k": None, "limit": 4}}))
    check_resume(tmp_path, "run", {"seed": 0, "k": None, "limit": 32}, {"limit"}, holds_results=True)
    with pytest.raises(ConfigError, match=r"\(k: None -> 5, seed: 0 -> 7\)"):
        check_resume(tmp_path, "run", {"seed": 7, "k": 5, "limit": 4}, {"limit"}, holds_results=True)


# ----------------------------------------------------------------------------- real processes
def _harness(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", *args], **kw)


def _hold_when_locked(proc: subprocess.Popen, run_dir: Path, timeout: float = 240.0) -> dict:
    """Wait until ``proc`` has recorded itself as the lock holder, then pause it (SIGSTOP)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run_dir / HOLDER_NAME).is_file():
            os.kill(proc.pid, signal.SIGSTOP)
            holder = json.loads((run_dir / HOLDER_NAME).read_text())
            assert holder["pid"] == proc.pid
            return holder
        assert proc.poll() is None, f"the first process ended (rc {proc.returncode}) before taking the lock"
        time.sleep(0.01)
    pytest.fail("the first process never took the lock")


def _refused(args: list[str], holder: dict, cwd: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd,
                       timeout=300, check=False)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 2 and len(lines) == 1, p.stderr[-3000:]
    assert f"is in use by another process (pid {holder['pid']} on {holder['host']}, started {holder['started_at']}" \
           in lines[0], lines[0]


def _modes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): oct(stat.S_IMODE(p.stat().st_mode)) for p in [root, *root.rglob("*")]}


@pytest.mark.integration
def test_two_runs_into_one_directory_the_second_fails_and_the_first_is_intact(data, tmp_path):
    """Also: every file of the run directory gets the umask's mode (0640 under umask 027, dirs 0750)."""
    out = tmp_path / "run"
    args = ["run", "--model", "oracle-retry", "--split", "all", "--noise", "0.5", "-o", str(out)]
    with open(tmp_path / "first.log", "w") as log:
        first = _harness(*args, stdout=log, stderr=subprocess.STDOUT, umask=0o027)
        try:
            holder = _hold_when_locked(first, out)
            _refused([*args, "--resume"], holder, tmp_path)      # --resume too: it must not interleave
        finally:
            os.kill(first.pid, signal.SIGCONT)
            rc = first.wait(timeout=600)
    assert rc == 0, (tmp_path / "first.log").read_text()[-3000:]
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == len({r["qid"] for r in rows}) == 318
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "complete" and res["results"]["oracle-retry"]["noise=0.5"]["n"] == 318
    modes = _modes(out)
    assert {"config.json", "samples.jsonl", "results.json", "report.html", LOCK_NAME} <= set(modes)
    assert modes == {k: ("0o750" if (out / k).is_dir() else "0o640") for k in modes}


@pytest.mark.integration
def test_two_trainings_into_one_directory_the_second_fails_and_a_killed_holder_frees_it(data, tmp_path):
    out = tmp_path / "train"
    args = ["train", "--model", "tiny", "--threads", "1", "--max-steps", "2", "--no-report", "-o", str(out)]
    with open(tmp_path / "first.log", "w") as log:
        first = _harness(*args, stdout=log, stderr=subprocess.STDOUT)
        try:
            holder = _hold_when_locked(first, out)
            _refused([*args, "--resume"], holder, tmp_path)
        finally:
            first.kill()                                 # SIGKILL: no chance to release anything itself
            first.wait(timeout=60)
    RunDir(out).open().close()                            # the OS released the dead holder's lock


@pytest.mark.integration
def test_resume_of_a_training_without_config_is_refused(tmp_path):
    from harness.train.config import TrainConfig
    from harness.train.runner import TrainRun

    out = tmp_path / "train"
    out.mkdir()
    (out / "curve.csv").write_text("step,accuracy\n0,0.25\n")
    run = TrainRun(TrainConfig.build(resume=True, output_dir=str(out), report=False))
    with pytest.raises(ConfigError, match="config.json is missing"):
        run.run()
    assert not run.life.rundir.locked and (out / "curve.csv").read_text() == "step,accuracy\n0,0.25\n"


@pytest.mark.integration
@pytest.mark.slow
def test_training_files_get_the_umask_mode(data, tmp_path):
    """curve.csv, eval samples, checkpoints (TRL/transformers json, weights, RNG), model/, report.html."""
    out = tmp_path / "train"
    p = subprocess.run([sys.executable, "-m", "harness", "train", "--model", "tiny", "--warm-start", "40", "--threads",
                        "1", "--eval-limit", "2", "--max-new-tokens", "16", "--max-turns", "2", "-G", "2",
                        "--prompts-per-step", "1", "--max-steps", "1", "--eval-every", "1", "--save-every", "1",
                        "-o", str(out)], capture_output=True, text=True, umask=0o027, timeout=600, check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    modes = _modes(out)
    assert {"curve.csv", "config.json", "results.json", "report.html", "checkpoints/checkpoint-1/trainer_state.json",
            "eval_samples/step_00001.jsonl"} <= set(modes)
    assert modes == {k: ("0o750" if (out / k).is_dir() else "0o640") for k in modes}
