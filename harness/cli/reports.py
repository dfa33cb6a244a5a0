"""Reports written by the command line once a run, a training or a sweep has returned.

Producers (``EvalRun``, ``TrainRun``, ``run_sweep``) write their records and return; the pages on top of
them are drawn here. A report that fails never loses what the run wrote, and is never silent: the
command prints its results, then one ``error:`` line naming the run and how to draw the page again,
and exits 1 (the results are complete; only the page is missing).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError

log = logging.getLogger("harness")


class ReportFailed(HarnessError):
    """The run's results are on disk, but its report could not be written."""


def _why(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename:
        return f"{e.strerror or type(e).__name__}: {e.filename}"
    return " ".join(str(e).split())[:300] or type(e).__name__


def report_run(run_dir: Path, title: str) -> Path | None:
    """``RUN_DIR/report.html`` for a run directory that holds a record; None when there is no record to
    report. ReportFailed, in one line, when the page could not be written (disk full, a report bug)."""
    run_dir = Path(run_dir)
    if not (run_dir / "results.json").is_file():
        return None
    try:
        from harness.report.run_report import write_report

        return write_report([run_dir], output=run_dir / "report.html", title=title)
    except Exception as e:  # the results are already on disk; a report failure must not lose them
        raise ReportFailed(f"the report could not be written ({_why(e)}); the results are complete in {run_dir}: "
                           f"`harness report {run_dir} -o {run_dir / 'report.html'}` draws it again") from None


def report_after_failure(run_dir: Path, title: str) -> None:
    """The page of a run that stopped with an error or an interrupt (the error is what the user sees; a
    report failure here is logged, not raised)."""
    try:
        report_run(run_dir, title)
    except ReportFailed as e:
        log.error("%s", e)


def report_study(summary: dict[str, Any], storage: str | None = None) -> str | None:
    """The study report of a finished (or failed) sweep, its path added to ``summary['report']``. ``storage``
    is the sweep's ``--storage`` (the summary holds it with its password masked); None: the study's SQLite file.
    Returns why the report could not be written, or None."""
    try:
        from harness.report.study_report import write_study_report

        summary["report"] = str(write_study_report(Path(summary["study_dir"]), storage=storage or summary["storage"],
                                                   study_name=summary["study"]))
        return None
    except Exception as e:  # trials are safe in the storage; a report bug must not hide that
        return (f"the study report could not be written ({_why(e)}); the trials are safe in the study: "
                f"`harness report {summary['study_dir']}` draws it again")
