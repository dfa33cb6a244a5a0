"""Bad input a hostile user tried (issue 15): the real `harness` command exits 2 with one `error:` line and
no traceback, and leaves every file it was pointed at as it was."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.app import app

pytestmark = pytest.mark.tier("integration")

SMALL = ["--model", "one-search", "--limit", "4", "--no-report"]


def harness(*args: str, cwd: Path, env: dict | None = None, prefix: list[str] | None = None):
    return subprocess.run([*(prefix or []), sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True,
                          check=False, text=True, env={**os.environ, **(env or {})}, timeout=300)


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root with its content (None for folders); the run lock's empty file is ignored."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*")) if p.name != ".lock"}


def unprivileged(tmp_path: Path) -> list[str]:
    """A command prefix under which file permissions hold, also for root (which bypasses them).

    As root, the harness runs without the capabilities that override permissions (setpriv drops
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set); a probe checks it really works.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, which ignores file permissions, and util-linux's setpriv is not "
                    "installed to drop that override")
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    probe = tmp_path / "probe.txt"
    probe.write_text("x")
    probe.chmod(0o444)
    code = f"try:\n open({str(probe)!r}, 'a')\n print('allowed')\nexcept PermissionError:\n print('denied')"
    out = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True, check=False)
    probe.unlink()
    if out.stdout.strip() != "denied":
        pytest.skip(f"cannot make root respect file permissions here (setpriv: {out.stderr.strip() or out.stdout})")
    return prefix


@pytest.fixture(scope="module")
def finished_run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    res = CliRunner().invoke(app, ["run", *SMALL, "-o", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


def _copy_run(src: Path, tmp: Path) -> Path:
    dst = tmp / "run"
    shutil.copytree(src, dst)
    return dst


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


# Each case: (setup(tmp, finished_run) -> argv after `harness`, extra env, words of the expected error line,
# needs file permissions to hold).
def _file_as_output(tmp, run):
    (tmp / "taken").write_text("not a directory")
    return ["run", *SMALL, "-o", "taken"]


def _unwritable_parent(tmp, run):
    (tmp / "locked").mkdir()
    (tmp / "locked").chmod(0o555)
    return ["run", *SMALL, "-o", "locked/run"]


def _unwritable_run_dir(tmp, run):
    d = _copy_run(run, tmp)
    (d / ".lock").unlink()
    d.chmod(0o555)
    return ["run", *SMALL, "-o", "run", "--resume"]


def _read_only_samples(tmp, run):
    d = _copy_run(run, tmp)
    samples = d / "samples.jsonl"
    samples.write_text("\n".join(_lines(samples)[:2]) + "\n")   # two episodes left to run
    samples.chmod(0o444)
    return ["run", *SMALL, "-o", "run", "--resume"]


def _results_is_a_directory(tmp, run):
    (tmp / "run" / "results.json").mkdir(parents=True)
    return ["run", *SMALL, "-o", "run"]


def _corrupt_middle_line(tmp, run):
    d = _copy_run(run, tmp)
    lines = _lines(d / "samples.jsonl")
    lines[1] = lines[1][: len(lines[1]) // 2]
    (d / "samples.jsonl").write_text("\n".join(lines) + "\n")
    return ["run", *SMALL, "-o", "run", "--resume"]


def _resume_without_config(tmp, run):
    d = _copy_run(run, tmp)
    (d / "config.json").unlink()
    return ["run", *SMALL, "-o", "run", "--resume", "--seed", "3"]   # a changed seed would go unnoticed


def _resume_with_corrupt_config(tmp, run):
    d = _copy_run(run, tmp)
    (d / "config.json").write_text('{"run": {"seed": 0,')
    return ["run", *SMALL, "-o", "run", "--resume"]


def _deep_yaml(tmp, run):
    (tmp / "deep.yaml").write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    return ["run", "--task", "deep.yaml"]


def _model_typo(tmp, run):
    return ["run", "--model", "orcale-retry"]           # default output dir: runs/apollo3-orcale-retry-...


def _train_model_typo(tmp, run):
    return ["train", "--model", "orcale-retry", "--max-steps", "1"]   # default dir: runs/train-apollo3-...


def _unknown_hub_id_offline(tmp, run):
    return ["run", "--model", "harness-test/no-such-model", "--limit", "2"]


CASES = {
    "output dir is a file": (_file_as_output, {}, ["taken exists and is not a directory", "--output-dir"], False),
    "parent without write permission": (_unwritable_parent, {}, ["cannot write in locked/run", "permission denied"],
                                        True),
    "run dir without write permission": (_unwritable_run_dir, {}, ["cannot write in run", "permission denied"], True),
    "read-only samples.jsonl": (_read_only_samples, {}, ["samples.jsonl is read-only", "chmod u+w"], True),
    "results.json is a directory": (_results_is_a_directory, {}, ["results.json is a directory", "move it away"],
                                    False),
    "corrupt line mid samples.jsonl": (_corrupt_middle_line, {}, ["samples.jsonl line 2 is not valid JSON",
                                                                   "Delete or repair that line"], False),
    "resume without config.json": (_resume_without_config, {}, ["cannot resume run", "config.json is missing",
                                                                "new --output-dir"], False),
    "resume with corrupt config.json": (_resume_with_corrupt_config, {}, ["config.json is corrupt",
                                                                          "new --output-dir"], False),
    "YAML nested 100k deep": (_deep_yaml, {}, ["deep.yaml", "nested too deeply"], False),
    "model name typo": (_model_typo, {"HF_HUB_OFFLINE": "1"}, ["unknown model 'orcale-retry'",
                                                               "did you mean 'oracle-retry'?"], False),
    "train model name typo": (_train_model_typo, {"HF_HUB_OFFLINE": "1"}, ["unknown model 'orcale-retry'",
                                                                         "did you mean 'oracle-retry'?"], False),
    "unknown hub id, offline": (_unknown_hub_id_offline, {"HF_HUB_OFFLINE": "1"},
                                ["cannot load model 'harness-test/no-such-model'", "HF_HUB_OFFLINE is set",
                                 "hf download"], False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_loses_nothing(case, finished_run, tmp_path):
    setup, env, words, needs_permissions = CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    prefix = unprivileged(tmp_path) if needs_permissions else []
    args = setup(work, finished_run)
    before = snapshot(work)
    p = harness(*args, cwd=work, env=env, prefix=prefix)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 2, (p.returncode, p.stderr[-3000:])
    assert "Traceback" not in p.stderr + p.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr[-3000:]
    for w in words:
        assert w in lines[0], (w, lines[0])
    for d in (work / "locked", work / "run"):      # give pytest back what it must delete
        if d.is_dir():
            d.chmod(0o755)
    assert snapshot(work) == before                # nothing written, nothing removed, no runs/ created


def _fake_hub_cache(model_dir: Path, cache: Path, repo_id: str) -> None:
    """Lay a local model out as the hub cache would after ``hf download`` (refs/main -> one snapshot)."""
    revision = "0" * 40
    root = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(model_dir, root / "snapshots" / revision)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(revision)


def test_a_cached_hub_id_still_loads_offline(data, tmp_path):
    from harness.models.resolve import resolve_model_path

    _fake_hub_cache(Path(resolve_model_path("tiny", data.corpus)), tmp_path / "hub", "harness-test/tiny")
    p = harness("run", "--model", "harness-test/tiny", "--limit", "2", "--max-new-tokens", "8", "--max-turns", "2",
                "--no-report", "-o", "out", cwd=tmp_path,
                env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")})
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["model"] == [{"backend": "hf", "model": "harness-test/tiny"}]
    assert res["results"]["harness-test/tiny"]["noise=0"]["n"] == 2
