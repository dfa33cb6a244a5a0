"""``harness export RUN --format inspect -o FILE``: a run's episodes in another tool's format.

Only typer and the standard library are imported here; inspect_ai loads inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def export(run_dir: Path = typer.Argument(..., help="A run directory (harness run or harness train)."),
           fmt: str = typer.Option("inspect", "--format", "-f", help="inspect: an Inspect AI eval log "
                                   "(inspect view, read_eval_log)."),
           output: Path = typer.Option(..., "--output", "-o", help="FILE.eval or FILE.json (one policy at one noise "
                                       "level), or a folder (one log per policy and noise level)."),
           policy: Optional[str] = typer.Option(None, "--policy", help="Only this policy's episodes."),
           noise: Optional[float] = typer.Option(None, "--noise", help="Only the episodes at this noise level."),
           step: Optional[int] = typer.Option(None, "--step", help="A training run's eval step (default: its peak).")
           ) -> None:
    """Export a run's episodes, e.g. as an Inspect AI eval log to read in `inspect view`."""
    from harness.core.errors import ConfigError
    from harness.report.inspect_log import FORMATS, export_inspect

    if fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; valid: {', '.join(FORMATS)}")
    for path in export_inspect(run_dir, output, policy=policy, noise=noise, step=step):
        typer.echo(f"written: {path}")
    typer.echo(f"view: inspect view start --log-dir {output.parent if output.suffix in ('.eval', '.json') else output}",
               err=True)
