"""Task hooks run code, so they may come only from the harness package or the task's own hooks.py."""

from __future__ import annotations

import json
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
                                  "tests.conftest:data_dir", "yaml:load", "harness.core.io:os", "harness.cli.app:main",
                                  "harness.core.config:load_task"])
def test_hooks_outside_the_tasks_hooks_py_and_the_harness_exports_are_refused(spec):
    with pytest.raises(ConfigError, match=r"is not allowed: hooks must name a function or class of the task's own"):
        import_hook(spec)


@pytest.mark.unit
@pytest.mark.parametrize("spec", ["os:system", "subprocess:run", "harness.core.io:os", "harness.cli.app:main"])
def test_validate_refuses_the_hooks_run_refuses(tmp_path, spec):
    """Issue 27: `harness validate` said ok for hooks that `harness run` refuses (or that crash when called)."""
    from harness.cli.validate import validate_file

    path = _task_dir(tmp_path, None, process_data=spec)
    with pytest.raises(ConfigError, match="is not allowed"):
        load_task(path)
    with pytest.raises(ConfigError, match="is not allowed"):
        validate_file(path)


@pytest.mark.unit
def test_harness_exports_import_and_other_harness_names_do_not():
    from harness.environment.env import Environment

    assert import_hook("harness.environment.env:Environment", kind="environment") is Environment
    with pytest.raises(ConfigError, match="is not allowed"):
        import_hook("harness.environment.env:Environment", kind="process_data")  # exported for environment only
    with pytest.raises(ConfigError, match="is not allowed"):
        import_hook("harness.environment.env:nothing_here")


@pytest.mark.unit
def test_the_tasks_own_hooks_py_is_imported_by_path(tmp_path):
    path = _task_dir(tmp_path, "CALLS = []\ndef process(data):\n    CALLS.append(data)\n    return data\n")
    fn = import_hook("hooks:process", path)
    assert fn("x") == "x" and fn.__module__.startswith("harness_task_hooks_")
    assert "hooks" not in sys.modules                       # no top-level module named hooks was created
    assert import_hook("hooks:process", path) is fn          # one module per file, imported once
    assert sys.modules[fn.__module__].CALLS == ["x"]
    assert not (path.parent / "__pycache__").exists()       # nothing written into the task folder


@pytest.mark.unit
def test_a_hook_names_only_what_the_tasks_hooks_py_defines(tmp_path):
    """Issue 27: ``hooks:os`` (a module hooks.py imports) or ``hooks:system`` (a function it imports) would
    reach any code through the task's own hooks.py; only its own functions and classes may be hooks."""
    path = _task_dir(tmp_path, "import os\nfrom os import system\nCALLS = []\nclass Env:\n    pass\n"
                               "def process(data):\n    return data\n")
    for name in ("os", "system", "CALLS"):
        with pytest.raises(ConfigError, match=f"'{name}' is not a function or class defined in"):
            import_hook(f"hooks:{name}", path)
    assert import_hook("hooks:process", path, kind="process_data")("d") == "d"
    with pytest.raises(ConfigError, match="must name a subclass of harness.environment.env.Environment"):
        import_hook("hooks:Env", path, kind="environment")
    with pytest.raises(ConfigError, match="must name a function"):
        import_hook("hooks:Env", path, kind="process_data")


@pytest.mark.unit
def test_task_hooks_py_problems_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="no hooks.py beside"):
        import_hook("hooks:process", _task_dir(tmp_path / "a", None))
    with pytest.raises(ConfigError, match="not loaded from a file"):
        import_hook("hooks:process")
    with pytest.raises(ConfigError, match=r"failed to import: ZeroDivisionError"):
        import_hook("hooks:process", _task_dir(tmp_path / "b", "1 / 0\n"))


@pytest.mark.unit
def test_a_hook_of_an_included_file_comes_from_that_files_folder(tmp_path):
    """A task that includes a base file in another folder gets the base's hooks from the base's hooks.py."""
    base = _task_dir(tmp_path / "base", "def process(data):\n    return 'base'\n", process_data="hooks:process")
    child = tmp_path / "child"
    child.mkdir()
    (child / "task.yaml").write_text(f"include: {base}\nname: child\n")
    (child / "hooks.py").write_text("def process(data):\n    return 'child'\n")
    assert load_task(child / "task.yaml").hook("process_data")(None) == "base"
    (child / "task.yaml").write_text(f"include: {base}\nname: child\nhooks: {{process_data: 'hooks:process'}}\n")
    assert load_task(child / "task.yaml").hook("process_data")(None) == "child"


@pytest.mark.unit
def test_shipped_task_hooks_doctests_pass():
    """The doctests of tasks/*/hooks.py (pytest collects doctests under harness/ only)."""
    import doctest

    for name in ("apollo3_micro",):
        task = load_task(name)
        mod = sys.modules[task.hook("environment").__module__]
        result = doctest.testmod(mod)
        assert result.attempted > 5 and result.failed == 0, (name, result)


FIRST_TEN = "def first_ten(data):\n    data.questions = data.questions[:10]\n    return data\n"


@pytest.mark.integration
def test_a_task_hook_from_its_folder_shapes_the_data_and_the_split_follows(data, tmp_path):
    """Issue 26: docs/tasks.md's example (apollo3's task.yaml copied, a hook keeping ten questions) passed
    `harness validate` and then failed in `harness run` with an IndexError: the paper split pointed past the
    ten questions. The split is now drawn after the hook; a pinned split that no longer fits is one clear
    error, in validate as in run."""
    from harness.cli.validate import validate_file
    from harness.core.errors import DataError
    from harness.data.loading import load_task_data, paper_test_lines

    path = _task_dir(tmp_path, FIRST_TEN, process_data="hooks:first_ten")
    with pytest.raises(DataError, match=r"expected_test_lines of .* pins a test split of 32 questions.*10 questions"):
        load_task_data(load_task(path))
    with pytest.raises(DataError, match="remove it"):
        validate_file(path)
    raw = yaml.safe_load(path.read_text())
    raw["splits"]["paper"]["expected_test_lines"] = None
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DataError, match=r"splits.dev.expected_lines of .* pins a dev split of 32 questions"):
        load_task_data(load_task(path))
    raw["splits"]["dev"]["expected_lines"] = None
    path.write_text(yaml.safe_dump(raw))
    assert validate_file(path) == "task; data: 341 chunks, 10 questions, test 1, dev 2, train 7"
    d = load_task_data(load_task(path))
    assert [q.line for q in d.questions] == list(range(10)) and d.test_lines == paper_test_lines(10)
    assert len(d.split("test")) + len(d.split("dev")) + len(d.split("train")) == 10
    from typer.testing import CliRunner

    from harness.cli.app import app

    res = CliRunner().invoke(app, ["run", "--task", str(path), "--model", "oracle-retry", "--split", "all",
                                   "-o", str(tmp_path / "run"), "--no-report"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run" / "results.json").read_text())["results"]["oracle-retry"]["noise=0"]["n"] == 10


@pytest.mark.integration
def test_a_hook_that_sets_a_bad_split_is_a_clear_error(data, tmp_path):
    from harness.core.errors import DataError
    from harness.data.loading import load_task_data

    path = _task_dir(tmp_path, "def bad(data):\n    data.questions = data.questions[:5]\n    data.test_lines = [4, 9]\n"
                               "    return data\n", process_data="hooks:bad")
    with pytest.raises(DataError, match=r"names question positions \[9\] but there are 5 questions"):
        load_task_data(load_task(path))


@pytest.mark.integration
def test_a_foreign_hook_is_refused_before_it_runs(data, tmp_path):
    from harness.data.loading import load_task_data

    path = _task_dir(tmp_path, None, process_data="shutil:rmtree")
    with pytest.raises(ConfigError, match="'shutil:rmtree' is not allowed"):
        load_task_data(load_task(path))
