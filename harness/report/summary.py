"""The terminal summary of a results.json: metrics as rows (full names), policies as columns, one
table per noise level, readable in an 80-column terminal; it ends with the path of ``report.html``.

Rows follow the HTML report's groups (:data:`harness.report.tables.GROUPS`); accuracy has its 95%
Wilson interval under it, a conditional rate its denominator beside it (``n=22``); the HTML report
has every interval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from harness.core.record import RunRecord
from harness.report.page import describe
from harness.report.tables import GROUPS, Metric, columns_from_record, reward_metrics
from harness.stats.intervals import wilson

#: Rows printed with their interval under them (the one recorded: Wilson, or over questions with K samples).
HEADLINE_CI = ("accuracy", "avg_at_k", "pass_at_k", "maj_at_k")
#: Rows left out when every column has 0 (nothing went wrong).
QUIET_WHEN_ZERO = ("error_rate", "judge_error_rate")


def _value(metric: Metric, m: dict[str, Any]) -> str:
    v = m.get(metric.key)
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return "-"
    text = f"{v:.3f}" if isinstance(v, float) else str(v)
    n = metric.denominator(m) if metric.denominator and not metric.key.startswith("reward_") else None
    stored = m.get(f"{metric.key}_ci_low"), m.get(f"{metric.key}_ci_high")
    if metric.key in HEADLINE_CI and all(isinstance(x, (int, float)) for x in stored):
        text += f"\n[{stored[0]:.2f},{stored[1]:.2f}]"   # as recorded (K samples: over questions)
    elif metric.key == "accuracy" and isinstance(n, (int, float)) and n > 0:
        lo, hi = wilson(round(v * n), n)
        text += f"\n[{lo:.2f},{hi:.2f}]"
    elif isinstance(n, (int, float)) and n != m.get("n"):
        text += f" n={int(n)}"
    return text


def tables_for(res: RunRecord) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) per table: one per noise level when several policies share it, else one.

    Group titles are rows whose cells are empty; each metric row is its full name then one cell per column.
    """
    cols = columns_from_record(res)
    if not cols:
        return []
    policies = list(dict.fromkeys(c.policy for c in cols))
    noises = list(dict.fromkeys(c.noise for c in cols))
    if len(policies) > 1:
        splits = [(noise, [c for c in cols if c.noise == noise], lambda c: c.policy) for noise in noises]
    else:
        splits = [(policies[0], cols, lambda c: c.noise)]
    out = []
    for title, group, name in splits:
        header = ["metric", *[name(c) for c in group]]
        rows = [["n", *[str(c.metrics.get("n", "-")) for c in group]]]
        for gtitle, metrics in GROUPS + (("Rewards", reward_metrics(group)),):
            body = []
            for metric in metrics:
                values = [c.metrics.get(metric.key) for c in group]
                if all(v is None for v in values):
                    continue
                if metric.key in QUIET_WHEN_ZERO and all(not v for v in values):
                    continue
                body.append([metric.key, *[_value(metric, c.metrics) for c in group]])
            if body:
                rows.append([f"[{gtitle.lower()}]", *[""] * len(group)])
                rows += body
        out.append((title, header, rows))
    return out


def print_results(res: RunRecord, run_dir: Path | None = None, report: Path | None = None,
                  file: TextIO | None = None, width: int | None = None) -> None:
    """Print the summary tables, then the run directory and the report's path (last line)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=file, width=width, highlight=False)
    split = res.config.get("split")
    head = (f"{describe(res.task.model_dump())} · {res.status} · seed {res.seed}"
            + (f" · split {split}" if split else ""))
    stop = res.protocol.get("stop_after_action")
    head += f" · rewards: {res.reward_semantics} semantics, stop_after_action={str(stop).lower()}"
    console.print(Text(head, style="bold"))
    if res.micro_scale:
        console.print(Text("MICRO-SCALE MODEL: not comparable to the paper's 3B model", style="yellow"))
    for title, header, rows in tables_for(res):
        table = Table(title=Text(title, style="bold"), title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1),
                      show_edge=False)
        name_width = max(len(r[0]) for r in rows)
        table.add_column(Text(header[0]), no_wrap=True, min_width=name_width)
        for h in header[1:]:
            table.add_column(Text(h), justify="right", overflow="fold")
        for r in rows:
            group = r[0].startswith("[")
            table.add_row(*(Text(c) for c in r), style="dim italic" if group else None)
        console.print(table)
    if run_dir is not None:
        console.print(Text(f"run directory: {run_dir}"), soft_wrap=True)
    if report is not None:
        console.print(Text(f"report: {report}"), soft_wrap=True)

