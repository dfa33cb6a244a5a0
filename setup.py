"""Build hook (the project's metadata is in pyproject.toml): ship the top-level ``tasks/`` inside the wheel.

Users find the task definitions at the top of the checkout, but a non-editable install
(``pip install .``) copies only the ``harness`` package. The wheel therefore carries a copy of
``tasks/`` as ``harness/_tasks``, which :func:`harness.core.config.shipped_tasks_dir` (task configs)
and ``harness.evaluation.lmeval_tasks.LMEVAL_TASK_DIR`` (the lm-eval task folder) find when there is
no checkout. An editable install keeps reading ``tasks/`` from the checkout, so no copy is made.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

TASKS = Path(__file__).resolve().parent / "tasks"


class BuildPyWithTasks(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        dst = Path(self.build_lib) / "harness" / "_tasks"
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(TASKS, dst, ignore=shutil.ignore_patterns("__pycache__", "*.py[cod]"))


setup(cmdclass={"build_py": BuildPyWithTasks})
