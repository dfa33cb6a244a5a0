"""Reports written by the command line once a run, a training or a sweep has returned.

Producers (``EvalRun``, ``TrainRun``, ``run_sweep``) write their records and return; the pages on top of
them are drawn here. A report that fails is logged and never loses what the run wrote.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("harness")


def report_run(run_dir: Path, title: str) -> Path | None:
    """``RUN_DIR/report.html`` for a run directory that holds a record; None when it could not be written."""
    run_dir = Path(run_dir)
    if not (run_dir / "results.json").is_file():
        return None
    try:
        from harness.report.run_report import write_report

        return write_report([run_dir], output=run_dir / "report.html", title=title)
    except Exception as e:  # the results are already on disk; a report bug must not lose them
        log.error("report failed (results are safe in %s): %r", run_dir, e)
        return None


def report_study(summary: dict[str, Any]) -> None:
    """The study report of a finished (or failed) sweep, its path added to ``summary['report']``."""
    try:
        from harness.report.study_report import write_study_report

        summary["report"] = str(write_study_report(Path(summary["study_dir"]), storage=summary["storage"],
                                                   study_name=summary["study"]))
    except Exception as e:  # trials are safe in the storage; a report bug must not hide that
        log.error("study report failed: %r", e)
