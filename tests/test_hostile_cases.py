"""The hostile-input pass of issue 27 as re-runnable cases: each runs the real ``harness`` command in a
subprocess on hostile input and judges whether it was handled well.

Handled well means: the input is refused before any work in one message (an ``error:`` line, or the
command line's "Invalid value" box for an out-of-range number), exit status 1 or 2, no traceback, nothing
written, changed or deleted, and no hang; or, for the cases that must do work (SIGTERM, a full disk), what
the case says.

The cases run against this checkout; ``HOSTILE_HARNESS=/path/to/checkout`` runs them against another
tree (the commit before the fixes, say), which is how the before/after counts of the issue were made::

    git worktree add ../old b1d366b
    HOSTILE_HARNESS=../old python -m pytest tests/test_hostile_cases.py -q -p no:cacheprovider

Each case is named by its class in the issue: data lost, silently wrong, hang, late crash, traceback,
trust.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.app import app

pytestmark = pytest.mark.tier("integration")

REPO = Path(__file__).resolve().parent.parent
ROOT = Path(os.environ.get("HOSTILE_HARNESS") or REPO)
SMALL = ["--model", "one-search", "--limit", "4", "--no-report"]
TRAIN_FAST = ["--model", "tiny", "--warm-start", "40", "--threads", "1", "--eval-limit", "2", "--max-new-tokens", "16",
              "--max-turns", "2", "-G", "2", "--prompts-per-step", "1", "--max-steps", "1", "--no-report"]
#: A "billion laughs" as the value of one valid key (``laughs("model")``): the anchors live inside the value,
#: so no unknown top-level key gets the file refused before the value is looked at.
def laughs(key: str, indent: str = "") -> str:
    rows = ["[x, x, x, x, x, x, x, x, x, x]"] + [f"[{', '.join([f'*{p}'] * 10)}]" for p in "abcdefgh"]
    return f"{indent}{key}:\n" + "".join(f"{indent}  - &{c} {row}\n" for c, row in zip("abcdefghi", rows))


#: A trial that fails at once (so a sweep the command line fails to refuse ends quickly, and visibly wrong).
FAILING_TRIAL = ["--set", "data_dir=/nonexistent/harness-data"]


@dataclass
class Outcome:
    rc: int | None          # None: still running at the case's time limit (killed)
    out: str
    err: str
    seconds: float

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass
class Work:
    """A case's folder (the subprocess's working directory), with a finished run to point at."""

    root: Path
    finished: Path
    env: dict[str, str] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def run_copy(self, name: str = "run") -> Path:
        dst = self.root / name
        shutil.copytree(self.finished, dst)
        return dst

    def study(self, name: str = "study") -> Path:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        folder = self.root / name
        folder.mkdir()
        s = optuna.create_study(study_name="s", storage=f"sqlite:///{folder / 'study.db'}", direction="maximize")
        d = {"seed": optuna.distributions.CategoricalDistribution([0, 1])}
        for seed, v in ((0, 0.5), (1, 0.4)):
            s.add_trial(optuna.trial.create_trial(params={"seed": seed}, distributions=d, value=v))
        return folder

    def file(self, name: str, text: str) -> Path:
        p = self.root / name
        p.write_text(text)
        return p

    def tmpfs(self, name: str, size: str) -> Path:
        """A small tmpfs at ``name`` (a full disk on demand); skips the case where mounting is not permitted."""
        d = self.root / name
        d.mkdir()
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)], capture_output=True,
                           text=True, check=False)
        if p.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs to fill up (needs root): {p.stderr.strip() or p.returncode}")
        self.cleanups.append(lambda: subprocess.run(["umount", "-l", str(d)], check=False))
        return d


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(root.rglob("*"))}


def harness(args: list[str], work: Work, timeout: float) -> Outcome:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **work.env}
    t0 = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-m", "harness", *args], cwd=work.root, capture_output=True, text=True,
                           timeout=timeout, env=env, check=False)
        return Outcome(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)
    except subprocess.TimeoutExpired as e:
        def text(b):
            return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")

        return Outcome(None, text(e.stdout), text(e.stderr), time.monotonic() - t0)


# ----------------------------------------------------------------------------- judges
def refused(*words: str, codes: tuple[int, ...] = (2,)) -> Callable[[Outcome, dict, dict], str | None]:
    """Handled well: refused in one message naming ``words``, exit in ``codes``, nothing written or changed."""

    def judge(o: Outcome, before: dict, after: dict) -> str | None:
        if o.rc is None:
            return f"hung: still running after {o.seconds:.0f}s"
        if "Traceback" in o.text:
            return "traceback: " + o.text.strip().splitlines()[-1][:200]
        if o.rc not in codes:
            return f"exit {o.rc}, expected {codes}: {o.text.strip()[-200:]}"
        missing = [w for w in words if w not in " ".join(o.text.split())]
        if missing:
            return f"message lacks {missing}: {o.text.strip()[-300:]}"
        if after != before:
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            return f"files written or changed: {changed[:6]}"
        return None

    return judge


def briefly(judge: Callable[[Outcome, dict, dict], str | None], limit: int = 4000):
    """``judge``, and the whole output under ``limit`` characters (no value read from a file printed whole)."""

    def short(o: Outcome, before: dict, after: dict) -> str | None:
        return judge(o, before, after) or (f"printed {len(o.text):,} characters" if len(o.text) > limit else None)

    return short


@dataclass
class Case:
    cls: str
    setup: Callable[[Work], list[str]]
    judge: Callable[[Outcome, dict, dict], str | None]
    timeout: float = 90


def _validate_dup(w):
    w.file("dup.yaml", "name: dup\ntask: apollo3_micro\nbase: {max_steps: 2}\n"
                       "search_space:\n  seed: {type: categorical, choices: [0, 1]}\nbase: {max_steps: 5}\n")
    return ["validate", "dup.yaml"]


CASES: dict[str, Case] = {
    # ------------------------------------------------------------------ data lost
    "report -o RUN/samples.jsonl": Case("data lost", lambda w: (w.run_copy(), ["report", "run", "-o",
                                        "run/samples.jsonl"])[1], refused("run/samples.jsonl", "run directory")),
    "report -o RUN/results.json": Case("data lost", lambda w: (w.run_copy(), ["report", "run", "-o",
                                       "run/results.json"])[1], refused("run/results.json")),
    "report -o RUN/config.json": Case("data lost", lambda w: (w.run_copy(), ["report", "run", "-o",
                                      "run/config.json"])[1], refused("run/config.json")),
    "report -o RUN/curve.csv (into a run dir)": Case("data lost", lambda w: (w.run_copy(), [
        "report", "run", "-o", "run/curve.csv"])[1], refused("run/curve.csv")),
    "report STUDY -o STUDY/study.db": Case("data lost", lambda w: (w.study(), ["report", "study", "-o",
                                           "study/study.db"])[1], refused("study/study.db")),
    "report -o a file it did not write": Case("data lost", lambda w: (w.run_copy(), w.file("notes.txt", "mine"), [
        "report", "run", "-o", "notes.txt"])[2], refused("notes.txt", "--force")),
    "micro build -o RUN": Case("data lost", lambda w: (w.run_copy(), [
        "micro", "build", "-o", "run", "--steps", "1"])[1], refused("run"), timeout=120),
    "train -o an eval RUN": Case("data lost", lambda w: (w.run_copy(), ["train", *TRAIN_FAST, "-o", "run"])[1],
                                 refused("run"), timeout=120),
    # ------------------------------------------------------------------ silently wrong
    "run --noise-mode ''": Case("silently wrong", lambda w: ["run", *SMALL, "--noise", "0.5", "--noise-mode", "",
                                                             "-o", "out"], refused("--noise-mode")),
    "run --noise ''": Case("silently wrong", lambda w: ["run", *SMALL, "--noise", "", "-o", "out"],
                           refused("--noise")),
    "validate: duplicate key in an ablation": Case("silently wrong", _validate_dup,
                                                   refused("duplicate key 'base'", codes=(1,))),
    "run --config with seed twice": Case("silently wrong", lambda w: (w.file("c.yaml", "seed: 1\nseed: 2\n"), [
        "run", *SMALL, "--config", "c.yaml", "-o", "out"])[1], refused("duplicate key 'seed'")),
    "search -k 0": Case("silently wrong", lambda w: ["search", "oxygen tank", "-k", "0"], refused("-k")),
    "search -k -3": Case("silently wrong", lambda w: ["search", "oxygen tank", "-k", "-3"], refused("-k")),
    "bench retrieval --repeats -1": Case("silently wrong", lambda w: ["bench", "retrieval", "--repeats", "-1"],
                                         refused("--repeats")),
    "bench env --limit -5": Case("silently wrong", lambda w: ["bench", "env", "--limit", "-5", "--model", ""],
                                 refused("--limit")),
    "bench detect --count 0": Case("silently wrong", lambda w: ["bench", "detect", "--count", "0"],
                                   refused("--count")),
    "sweep --workers 0": Case("silently wrong", lambda w: ["sweep", "micro_retry", "--workers", "0", "-o", "sw",
                                                           *FAILING_TRIAL], refused("--workers"), timeout=120),
    "sweep --workers -1": Case("silently wrong", lambda w: ["sweep", "micro_retry", "--workers", "-1", "-o", "sw",
                                                            *FAILING_TRIAL], refused("--workers"), timeout=120),
    "sweep --n-trials 0": Case("silently wrong", lambda w: ["sweep", "micro_retry", "--n-trials", "0", "-o", "sw",
                                                            *FAILING_TRIAL], refused("--n-trials"), timeout=120),
    "sweep --trial-timeout 0": Case("silently wrong", lambda w: ["sweep", "micro_retry", "--trial-timeout", "0",
                                                                 "-o", "sw", *FAILING_TRIAL],
                                    refused("--trial-timeout"), timeout=120),
    "sweep --trial-timeout nan": Case("silently wrong", lambda w: ["sweep", "micro_retry", "--trial-timeout", "nan",
                                                                   "-o", "sw", *FAILING_TRIAL],
                                      refused("--trial-timeout"), timeout=120),
    # ------------------------------------------------------------------ hangs and unbounded memory
    "run --config billion laughs": Case("hang", lambda w: (w.file("l.yaml", laughs("model")), [
        "run", "--config", "l.yaml", "-o", "out"])[1], refused("l.yaml", "expand"), timeout=60),
    "train --config billion laughs": Case("hang", lambda w: (w.file("l.yaml", laughs("model")), [
        "train", "--config", "l.yaml", "-o", "out"])[1], refused("l.yaml", "expand"), timeout=60),
    "validate: billion laughs in choices": Case("hang", lambda w: (w.file("l.yaml", (
        "name: laughs\ntask: apollo3_micro\nsearch_space:\n  seed:\n    type: categorical\n"
        + laughs("choices", "    "))), [
        "validate", "l.yaml"])[1], refused("l.yaml", "expand", codes=(1,)), timeout=60),
    "run --config with a 900 KB model name": Case("hang", lambda w: (w.file("big.yaml", f"model: {'x' * 900_000}\n"), [
        "run", "--config", "big.yaml", "--limit", "1", "-o", "out"])[1], briefly(refused("model", "more]"))),
    "train --config with a 900 KB task name": Case("hang", lambda w: (w.file("big.yaml", f"task: {'x' * 900_000}\n"), [
        "train", "--config", "big.yaml", "-o", "out"])[1], briefly(refused("more]"))),
    "bench protocol --sizes 100000000": Case("hang", lambda w: ["bench", "protocol", "--sizes", "100000000"],
                                             refused("--sizes"), timeout=60),
    # ------------------------------------------------------------------ late crashes
    "run --seed -1": Case("late crash", lambda w: ["run", *SMALL, "--seed", "-1", "-o", "out"], refused("--seed")),
    "run --temperature inf": Case("late crash", lambda w: ["run", *SMALL, "--temperature", "inf", "-o", "out"],
                                  refused("--temperature")),
    "train --lr inf": Case("late crash", lambda w: ["train", *TRAIN_FAST, "--lr", "inf", "-o", "out"],
                           refused("--learning-rate"), timeout=120),
    "train --seed -1": Case("late crash", lambda w: ["train", *TRAIN_FAST, "--seed", "-1", "-o", "out"],
                            refused("--seed"), timeout=120),
    "micro build --steps -1": Case("late crash", lambda w: ["micro", "build", "--steps", "-1", "-o", "m"],
                                   refused("--steps"), timeout=120),
    "micro build --seed -1": Case("late crash", lambda w: ["micro", "build", "--seed", "-1", "--steps", "1", "-o",
                                                           "m"], refused("--seed"), timeout=120),
    # ------------------------------------------------------------------ tracebacks where one line belongs
    "sweep --storage garbage": Case("traceback", lambda w: ["sweep", "micro_retry", "--storage", "garbage", "-o",
                                                            "sw"], refused("garbage")),
    "sweep --storage sqlite in a missing folder": Case("traceback", lambda w: [
        "sweep", "micro_retry", "--storage", "sqlite:////nonexistent/dir/x.db", "-o", "sw"],
        refused("sqlite:////nonexistent/dir/x.db")),
    "sweep --storage postgresql, nothing listening": Case("traceback", lambda w: [
        "sweep", "micro_retry", "--storage", "postgresql://me:s3cret@127.0.0.1:1/db", "-o", "sw"],
        refused("postgresql://me:***@127.0.0.1:1/db")),
    "report --storage postgresql, nothing listening": Case("traceback", lambda w: (w.study(), [
        "report", "study", "--storage", "postgresql://me:s3cret@127.0.0.1:1/db"])[1],
        refused("postgresql://me:***@127.0.0.1:1/db")),
    "report STUDY --study-name nope": Case("traceback", lambda w: (w.study(), [
        "report", "study", "--study-name", "nope"])[1], refused("nope")),
    "lmeval --model bogus (offline)": Case("traceback", lambda w: (w.env.update(HF_HUB_OFFLINE="1"), [
        "lmeval", "--model", "bogus-org/bogus-model", "--limit", "1"])[1], refused("bogus-org/bogus-model")),
    "sweep --model ''": Case("traceback", lambda w: ["sweep", "micro_retry", "--model", "", "-o", "sw"],
                             refused("model")),
}


@pytest.fixture(scope="module")
def finished_run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    res = CliRunner().invoke(app, ["run", *SMALL, "-o", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


def _no_secret(o: Outcome) -> str | None:
    return "the storage password is printed" if "s3cret" in o.text else None


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_case_is_handled_well(name, finished_run, tmp_path):
    case = CASES[name]
    work = Work(tmp_path / "work", finished_run)
    work.root.mkdir()
    try:
        args = case.setup(work)
        before = snapshot(work.root)
        o = harness(args, work, case.timeout)
        after = snapshot(work.root)
    finally:
        for undo in work.cleanups:
            undo()
    problem = case.judge(o, before, after) or _no_secret(o)
    assert problem is None, f"[{case.cls}] {name}: {problem}"


# ----------------------------------------------------------------------------- cases that must do some work
def test_sigterm_on_harness_run_says_how_to_resume_and_releases_the_run(finished_run, tmp_path):
    """[traceback] SIGTERM on `harness run` printed nothing and left a stale lock record."""
    work = Work(tmp_path, finished_run)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "harness", "run", "--model", "one-search", "--split", "all",
                          "--batch-size", "1", "--no-report", "-o", "run"], cwd=work.root, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = work.root / "run" / "samples.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not samples.is_file() or samples.read_text().count("\n") < 3):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert "Traceback" not in out + err
    assert p.returncode == 128 + signal.SIGTERM, (p.returncode, err[-500:])
    assert "saved in run" in err and "continue with: harness run" in err and "--resume -o run" in err, err[-500:]
    assert not (work.root / "run" / ".lock.json").exists()          # the lock record is cleaned
    assert samples.read_text().count("\n") >= 3                      # the finished episodes are kept


def test_a_full_disk_is_one_line_naming_the_file_and_nothing_is_presented_as_complete(finished_run, tmp_path):
    """[traceback] disk full: `harness run` raised a chained traceback when its episodes could not be written."""
    work = Work(tmp_path, finished_run)
    try:
        disk = work.tmpfs("disk", "16k")
        o = harness(["run", "--model", "one-search", "--no-report", "-o", str(disk / "run")], work, 120)
    finally:
        for undo in work.cleanups:
            undo()
    assert "Traceback" not in o.text, o.text[-2000:]
    assert o.rc not in (0, None)
    lines = [line for line in o.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "No space left on device" in lines[0] and "samples.jsonl" in lines[0], o.err[-500:]


@pytest.mark.slow
def test_harness_train_on_a_full_disk_is_one_line_and_not_complete(finished_run, tmp_path):
    """[traceback] disk full: `harness train` raised chained tracebacks when its results or checkpoints could
    not be written."""
    import json

    work = Work(tmp_path, finished_run)
    try:
        disk = work.tmpfs("disk", "1m")
        o = harness(["train", *TRAIN_FAST, "-o", str(disk / "run")], work, 300)
        record = disk / "run" / "results.json"
        status = json.loads(record.read_text()).get("status") if record.is_file() else None
    finally:
        for undo in work.cleanups:
            undo()
    assert "Traceback" not in o.text, o.text[-2000:]
    assert o.rc not in (0, None)
    lines = [line for line in o.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "No space left on device" in lines[0] and str(disk) in lines[0], o.err[-800:]
    assert status != "complete"


def test_a_report_that_does_not_fit_fails_the_command_and_keeps_the_results(finished_run, tmp_path):
    """[traceback] disk full: `harness run` exited 0 when only its report failed."""
    work = Work(tmp_path, finished_run)
    try:
        disk = work.tmpfs("disk", "64k")
        o = harness(["run", "--model", "one-search", "--limit", "4", "-o", str(disk / "run")], work, 120)
        results = (disk / "run" / "results.json").is_file()
        report = (disk / "run" / "report.html").exists()
    finally:
        for undo in work.cleanups:
            undo()
    assert "Traceback" not in o.text, o.text[-2000:]
    assert o.rc == 1, (o.rc, o.err[-800:])
    assert "the report could not be written (No space left on device" in o.err
    assert "accuracy" in o.out             # the results table is printed: the run itself is complete
    assert results and not report


@pytest.mark.postgres
def test_the_documented_postgresql_url_works_and_its_password_is_never_written(postgres_url, tmp_path):
    """[trust] the sweep summary (summary.json and stdout) wrote a PostgreSQL password in clear; [traceback] the
    README's postgresql:// form failed (SQLAlchemy 2.1 maps it to psycopg 3, only psycopg2 is installed)."""
    import json

    from sqlalchemy.engine import make_url

    url = make_url(postgres_url).set(drivername="postgresql", password="s3cret")   # trust auth ignores it
    ab = tmp_path / "ab.yaml"
    ab.write_text("name: pw\ntask: apollo3_micro\nsampler: {name: grid}\n"
                  "search_space:\n  seed: {type: categorical, choices: [0]}\n")
    work = Work(tmp_path / "w", Path())
    work.root.mkdir()
    o = harness(["sweep", str(ab), "--storage", url.render_as_string(hide_password=False), "-o", "sw",
                 "--no-report", *FAILING_TRIAL], work, 300)
    assert "Traceback" not in o.text, o.text[-2000:]
    summary = json.loads((work.root / "sw" / "summary.json").read_text())
    assert summary["storage"].startswith("postgresql://postgres:***@127.0.0.1:")
    assert summary["states"] == {"FAIL": 1} and o.rc == 1          # the study opened, its one trial ran (and failed)
    assert "s3cret" not in o.text and "s3cret" not in (work.root / "sw" / "summary.json").read_text()


@pytest.mark.postgres
def test_sweep_print_slurm_never_writes_the_storage_password(postgres_url, tmp_path):
    """[trust] `harness sweep --print-slurm` wrote the storage URL, password and all, into the job script."""
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url).set(drivername="postgresql", password="s3cret")   # trust auth ignores it
    ab = tmp_path / "ab.yaml"
    ab.write_text("name: pw_slurm\ntask: apollo3_micro\nsampler: {name: grid}\n"
                  "search_space:\n  seed: {type: categorical, choices: [0]}\n")
    work = Work(tmp_path / "w", Path())
    work.root.mkdir()
    o = harness(["sweep", str(ab), "--storage", url.render_as_string(hide_password=False), "--print-slurm",
                 "-o", "sw"], work, 120)
    assert o.rc == 0 and "Traceback" not in o.text, o.text[-2000:]
    assert o.out.startswith("#!/bin/bash") and '"$HARNESS_SWEEP_STORAGE"' in o.out
    assert "s3cret" not in o.text and "HARNESS_SWEEP_STORAGE='postgresql://postgres:***@127.0.0.1" in o.err
