"""Task hooks run code, so they may come only from the harness package or the task's own hooks.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from harness.core.config import import_hook, load_task
from harness.core.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def _task_dir(tmp_path: Path, hooks_py: str | None, **hooks: str) -> Path:
    """A copy of apollo3's task.yaml with the given hooks (and a hooks.py beside it when given)."""
    raw = yaml.safe_load((REPO / "tasks" / "apollo3" / "task.yaml").read_text())
    raw["hooks"] = hooks
    d = tmp_path / "mytask"
    d.mkdir(parents=True)
    (d / "task.yaml").write_text(yaml.safe_dump(raw))
    if hooks_py is not None:
        (d / "hooks.py").write_text(hooks_py)
    return d / "task.yaml"


@pytest.mark.unit
@pytest.mark.parametrize("spec", ["os:system", "subprocess:run", "builtins:eval", "harnessx.evil:run",
                                  "tests.conftest:data_dir", "yaml:load"])
def test_hooks_outside_the_harness_and_the_task_folder_are_refused(spec):
    with pytest.raises(ConfigError, match=r"is not allowed: hooks must name a module of the harness package"):
        import_hook(spec)


@pytest.mark.unit
def test_harness_hooks_import_and_missing_ones_are_named():
    from harness.environment.micro import MicroEnvironment

    assert import_hook("harness.environment.micro:MicroEnvironment") is MicroEnvironment
    with pytest.raises(ConfigError, match="cannot be imported"):
        import_hook("harness.environment.micro:nothing_here")


@pytest.mark.unit
def test_the_tasks_own_hooks_py_is_imported_by_path(tmp_path):
    path = _task_dir(tmp_path, "CALLS = []\ndef process(data):\n    CALLS.append(data)\n    return data\n")
    fn = import_hook("hooks:process", path)
    assert fn("x") == "x" and fn.__module__.startswith("harness_task_hooks_")
    assert "hooks" not in sys.modules                       # no top-level module named hooks was created
    assert import_hook("hooks:CALLS", path) == ["x"]        # one module per file, imported once


@pytest.mark.unit
def test_task_hooks_py_problems_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="no hooks.py beside"):
        import_hook("hooks:process", _task_dir(tmp_path / "a", None))
    with pytest.raises(ConfigError, match="not loaded from a file"):
        import_hook("hooks:process")
    with pytest.raises(ConfigError, match=r"failed to import: ZeroDivisionError"):
        import_hook("hooks:process", _task_dir(tmp_path / "b", "1 / 0\n"))


@pytest.mark.integration
def test_a_task_hook_from_its_folder_shapes_the_data(data, tmp_path):
    from harness.data.loading import load_task_data

    path = _task_dir(tmp_path, "def first_ten(data):\n    data.questions = data.questions[:10]\n    return data\n",
                     process_data="hooks:first_ten")
    assert len(load_task_data(load_task(path)).questions) == 10


@pytest.mark.integration
def test_a_foreign_hook_is_refused_before_it_runs(data, tmp_path):
    from harness.data.loading import load_task_data

    path = _task_dir(tmp_path, None, process_data="shutil:rmtree")
    with pytest.raises(ConfigError, match="'shutil:rmtree' is not allowed"):
        load_task_data(load_task(path))
