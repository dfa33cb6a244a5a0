"""``harness rescore RUN -o NEW``: judge, rewards and metrics of a run recomputed from its saved episodes.

Registered by ``harness.cli.app``. Only typer is imported here; the evaluation stack loads inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from harness.cli.options import text


def rescore(
    run: Path = typer.Argument(..., help="A harness run directory (samples.jsonl, config.json, results.json)."),
    output_dir: Path = typer.Option(..., "--output-dir", "-o", help="The new run directory."),
    judge: Optional[str] = text(None, "--judge", help="Another answer judge rule: default, exact_match, f1, "
                                        "contains, number."),
    llm_judge: Optional[str] = text(None, "--llm-judge", help="Also grade the answers with this model "
                                            "(Yes/No prompt); verdicts and agreement are stored."),
    llm_judge_backend: Optional[str] = text(None, "--llm-judge-backend", help="Backend of --llm-judge."),
    reward_semantics: Optional[str] = text(None, "--reward-semantics", help="rezero or strict."),
    reward_weights: Optional[str] = text(None, "--reward-weights", help="Overrides of the task's weights, "
                                                 "e.g. 'retry=0,format=1' (they replace the run's own overrides)."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html in the new directory."),
) -> None:
    """Recompute judge, rewards and metrics from a run's saved episodes, without generating (lm-eval's response
    cache, inspect score); with nothing changed, results.json is the run's own but for its time fields."""
    from harness.cli.reports import report_run
    from harness.evaluation.rescore import Rescore
    from harness.report.summary import print_results

    changes = {"judge": judge, "llm_judge": llm_judge, "llm_judge_backend": llm_judge_backend,
               "reward_semantics": reward_semantics, "reward_weights": reward_weights}
    r = Rescore(run, output_dir, changes, report=report)
    res = r.run()
    html = report_run(r.out, f"harness rescore: {r.task.name} (from {run})") if report else None
    typer.echo(f"re-scored {run} -> {r.out}" + (f" (changed: {', '.join(f'{k}={v}' for k, v in r.changes.items())})"
                                                if r.changes else " (nothing changed)"), err=True)
    print_results(res, run_dir=r.out, report=html)
