"""A non-editable install (`pip install .`) finds the task definitions and the lm-eval task folder.

The wheel is built from a copy of the source (offline, no build isolation) and installed with pip,
without dependencies, into a fresh venv that sees this environment's packages through a ``.pth``
line (so nothing is downloaded and torch is not installed again). Then, from a folder outside the
checkout and with no PYTHONPATH, the installed package must find its tasks and run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.tier("integration")

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("harness", "tasks", "ablations", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md")

CHECK = """
import json, sys
from pathlib import Path
import harness
from harness.core.config import available_tasks, load_task, tasks_root
from harness.evaluation.lmeval_tasks import LMEVAL_TASK_DIR, task_config
from harness.sweep.ablation import ablation_path, available_ablations
micro = load_task("apollo3_micro")
print(json.dumps({
    "package": harness.__file__, "tasks_root": str(tasks_root()), "tasks": available_tasks(),
    "micro_hooks": micro.hooks.environment,
    "micro_env_file": sys.modules[micro.hook("environment").__module__].__file__,
    "ablations": available_ablations(), "micro_retry": str(ablation_path("micro_retry")),
    "lmeval_dir": str(LMEVAL_TASK_DIR), "lmeval_files": sorted(p.name for p in LMEVAL_TASK_DIR.iterdir()),
    "rag_task": task_config("rag")["task"],
}))
"""


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    assert p.returncode == 0, f"{cmd}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the harness installed from a wheel; returns the venv's python."""
    pytest.importorskip("setuptools", minversion="77", reason="the [dev] extra installs the build backend")
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_tasks"))
        else:
            shutil.copy(path, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist", src])
    wheel = next((root / "dist").glob("retry_harness-*.whl"))
    _run([sys.executable, "-m", "venv", "--without-pip", root / "venv"])
    py = root / "venv" / "bin" / "python"
    purelib = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "_harness_test_deps.pth").write_text("\n".join(sorted(here)) + "\n")  # dependencies, read-only
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "-q", wheel])
    return py


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HARNESS_TASKS_DIR")}


@pytest.fixture(scope="module")
def found(installed, tmp_path_factory) -> dict:
    """What the installed package finds, asked from a folder outside the checkout."""
    return json.loads(_run([installed, "-c", CHECK], cwd=tmp_path_factory.mktemp("elsewhere"), env=_env()).stdout)


def test_installed_package_finds_its_tasks_and_lmeval_folder(installed, found):
    venv = installed.parent.parent
    assert Path(found["package"]).is_relative_to(venv)  # the wheel's copy, not the checkout
    assert Path(found["tasks_root"]) == Path(found["package"]).parent / "_tasks"
    assert found["tasks"] == ["apollo3", "apollo3_micro"]
    assert found["micro_hooks"] == "hooks:MicroEnvironment"   # the task's own hooks.py, imported from the wheel
    assert Path(found["micro_env_file"]) == Path(found["tasks_root"]) / "apollo3_micro" / "hooks.py"
    assert found["ablations"] == sorted(p.stem for p in (REPO / "ablations").glob("*.yaml"))
    assert Path(found["micro_retry"]) == Path(found["package"]).parent / "_ablations" / "micro_retry.yaml"
    assert Path(found["lmeval_dir"]) == Path(found["tasks_root"]) / "apollo3" / "lm_eval"
    assert found["lmeval_files"] == sorted(p.name for p in (REPO / "tasks" / "apollo3" / "lm_eval").iterdir())
    assert found["rag_task"] == "apollo3_rag"
    for f in (REPO / "tasks").rglob("*"):  # the same files as the checkout's tasks/, byte for byte
        if f.is_file() and "__pycache__" not in f.parts:
            assert (Path(found["tasks_root"]) / f.relative_to(REPO / "tasks")).read_bytes() == f.read_bytes(), f


def test_installed_command_validates_and_runs_a_task(installed, found, data, tmp_path):
    harness = installed.parent / "harness"
    v = _run([harness, "validate", Path(found["tasks_root"]) / "apollo3" / "task.yaml"], cwd=tmp_path, env=_env())
    assert v.stdout.startswith("ok")
    _run([harness, "run", "--task", "apollo3", "--model", "one-search", "--limit", "2", "--no-report",
          "-o", tmp_path / "run"], cwd=tmp_path, env=_env())
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["results"]["one-search"]["noise=0"]["n"] == 2
    lmeval = _run([harness, "lmeval", "path"], cwd=tmp_path, env=_env()).stdout.strip()
    assert Path(lmeval) == Path(found["lmeval_dir"]) and (Path(lmeval) / "apollo3_rag.yaml").is_file()
    v = _run([harness, "validate", found["micro_retry"],
              Path(found["tasks_root"]) / "apollo3_micro" / "task.yaml"], cwd=tmp_path, env=_env())
    # the micro hooks run from the wheel (497 facts, 498 on some installs: tests/test_micro.py)
    assert v.stdout.count("ok") == 2 and re.search(r"\b49[78] questions", v.stdout)
