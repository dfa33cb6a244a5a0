"""``harness train``: GRPO over full multi-turn search episodes, with a held-out curve (see harness.train).

The options are generated from :class:`harness.train.config.TrainConfig` (``harness.cli.options``);
``--config FILE`` (YAML, JSON, or a training run's ``config.json``) sets them too, and the command
line overrides the file. Only typer, pydantic and the standard library are imported here; torch and
TRL load inside the command.
"""

from __future__ import annotations

import sys

import typer

from harness.cli.options import config_command
from harness.train.config import TrainConfig


def _train(cfg: TrainConfig) -> None:
    from harness.cli.reports import ReportFailed, report_after_failure, report_run
    from harness.train.runner import TrainRun

    run = TrainRun(cfg)
    title = f"harness train: {run.out.name}"
    try:
        res = run.run()
    except BaseException:  # a failed or interrupted run gets its page too
        if cfg.report:
            report_after_failure(run.out, title)
        raise
    failed = None
    if cfg.report:   # a finished or stopped run gets its page
        try:
            report_run(run.out, title)
        except ReportFailed as e:
            failed = e
    r = run.resolved
    typer.echo(f"rewards: {r.semantics} semantics, stop_after_action={str(r.stop_after_action).lower()}")
    typer.echo(headline(res))
    peak, final = res.peak, res.final
    line = (f"{res.status}: peak {cfg.selection_split} accuracy {peak.accuracy if peak else float('nan'):.4f} at step "
            f"{peak.step if peak else None}"
            + (f" [95% CI {peak.interval[0]:.3f}, {peak.interval[1]:.3f}]" if peak and peak.interval else "")
            + f"; final {final.accuracy if final and final.accuracy is not None else float('nan'):.4f} at step "
              f"{final.step if final else None}")
    if res.stopping and res.stopping.reason:
        line += f"; stopped: {res.stopping.reason}"
    if res.faults:
        line += f"; faults: {', '.join(sorted({f.kind for f in res.faults}))}"
    typer.echo(line)
    if res.learning is not None:
        typer.secho(res.learning.message, fg=None if res.learning.verdict == "learned" else typer.colors.YELLOW)
    typer.echo(f"run directory: {run.out}" + (f" (best model: {run.out / 'peak'})" if peak and peak.checkpoint else ""))
    if (run.out / "report.html").is_file():
        typer.echo(f"report: {run.out / 'report.html'}")
    if failed is not None:
        typer.secho(f"error: {failed}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    if res.status == "diverged":
        raise typer.Exit(3)
    if res.status == "partial":
        from harness.cli.resume import resume_command

        typer.echo(f"continue with: {resume_command(sys.argv[1:], run.out, drop=['--stop-after'])}")
    if res.status == "partial" and run.stop_requested:  # interrupted; --stop-after is a normal exit
        raise typer.Exit(130)


def headline(res) -> str:
    """The number to quote: the reported split at the step selected on the selection split, with its interval;
    labelled optimistic when the two splits are one (the paper's protocol).

    >>> from harness.core.record import Peak, RunRecord, SplitEval, TaskRef
    >>> rep = SplitEval(split="test", step=6, accuracy=0.62, interval=(0.5, 0.7))
    >>> rec = RunRecord(kind="train", task=TaskRef(name="t"), status="complete",
    ...                 peak=Peak(step=6, accuracy=0.7, split="dev", optimistic=False, reported=rep))
    >>> headline(rec)
    'test accuracy at the step selected on dev (6): 0.6200 [95% CI 0.500, 0.700]'
    """
    from harness.core.record import OPTIMISTIC

    peak = res.peak
    if peak is None:
        return "no eval yet"
    rep = peak.reported
    if rep is None or rep.accuracy is None:
        return (f"selected step {peak.step} on {peak.split or 'the eval split'}; the reported split was not "
                "evaluated there")
    ci = f" [95% CI {rep.interval[0]:.3f}, {rep.interval[1]:.3f}]" if rep.interval else ""
    text = f"{rep.split} accuracy at the step selected on {peak.split} ({peak.step}): {rep.accuracy:.4f}{ci}"
    return text + (f" — {OPTIMISTIC}" if peak.optimistic else "")


train = config_command(
    TrainConfig, _train, section="train", name="train",
    doc="Train a policy with GRPO over multi-turn search episodes; evaluate on held-out questions as it goes.")
