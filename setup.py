"""Build hook (the project's metadata is in pyproject.toml): ship ``tasks/`` and ``ablations/`` inside the wheel.

Users find the task definitions and the ablations at the top of the checkout, but a non-editable
install (``pip install .``) copies only the ``harness`` package. The wheel therefore carries a copy of
``tasks/`` as ``harness/_tasks`` and of ``ablations/`` as ``harness/_ablations``, which
:func:`harness.core.config.shipped_tasks_dir` (task configs and their hooks.py),
``harness.evaluation.lmeval_tasks.LMEVAL_TASK_DIR`` (the lm-eval task folder) and
:func:`harness.sweep.ablation.shipped_ablations_dir` (``harness sweep micro_retry``) find when there
is no checkout. An editable install keeps reading the checkout's folders, so no copy is made.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: Top-level folder -> its copy inside the package.
SHIPPED = {"tasks": "_tasks", "ablations": "_ablations"}


class BuildPyWithTasks(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        for folder, copy in SHIPPED.items():
            dst = Path(self.build_lib) / "harness" / copy
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(ROOT / folder, dst, ignore=shutil.ignore_patterns("__pycache__", "*.py[cod]"))


setup(cmdclass={"build_py": BuildPyWithTasks})
