"""``harness export RUN --format inspect -o FILE``: a run's episodes in another tool's format.

Only typer and the standard library are imported here; inspect_ai loads inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from harness.cli.options import bounded, text


def export(run_dir: Path = typer.Argument(..., help="A run directory (harness run or harness train)."),
           fmt: str = text("inspect", "--format", "-f", help="inspect: an Inspect AI eval log "
                                   "(inspect view, read_eval_log)."),
           output: Path = typer.Option(..., "--output", "-o", help="FILE.eval or FILE.json (one policy at one noise "
                                       "level), or a folder (one log per policy and noise level)."),
           policy: Optional[str] = text(None, "--policy", help="Only this policy's episodes."),
           noise: Optional[float] = bounded(None, "--noise", min=0.0, max=1.0,
                                            help="Only the episodes at this noise level."),
           step: Optional[int] = bounded(None, "--step", min=0, help="A training run's eval step (default: its peak)."),
           force: bool = typer.Option(False, "--force", help="Replace an existing --output file (never a run's or a "
                                      "study's own files).")
           ) -> None:
    """Export a run's episodes, e.g. as an Inspect AI eval log to read in `inspect view`."""
    from harness.core.errors import ConfigError
    from harness.core.outputs import check_output
    from harness.report.inspect_log import FORMATS, export_inspect

    if fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; valid: {', '.join(FORMATS)}")
    # before any work: never into a run directory (the one exported included) or over a file without --force
    check_output(output, "harness export", folder=output.suffix not in (".eval", ".json"), force=force)
    for path in export_inspect(run_dir, output, policy=policy, noise=noise, step=step):
        typer.echo(f"written: {path}")
    typer.echo(f"view: inspect view start --log-dir {output.parent if output.suffix in ('.eval', '.json') else output}",
               err=True)
