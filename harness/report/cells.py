"""The cells page of a factorial study (``harness cells``): the table, the sentences and one figure per level.

The numbers (per-run rows, per-cell means with Student-t intervals over seeds, arms compared paired within
each cell) come from :mod:`harness.stats.cells`; this module draws them: ``cells.json``, ``cells.md``,
``cells.html`` (curves across seeds per arm, :func:`harness.report.figures.seed_figure`) and one figure
file per level.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Sequence

from harness.core.errors import DataError
from harness.core.io import atomic_write_text
from harness.report.runs import Run
from harness.stats.cells import (
    CellRun,
    cell_key,
    cell_rows,
    check_one_run_per_seed,
    compare_within,
    load_study_runs,
)

__all__ = ["html", "level_figures", "markdown", "table", "write_cells"]


def _fmt(cell: dict[str, Any], digits: int = 2) -> str:
    m, (lo, hi) = cell["mean"], cell["ci"]
    if m is None:
        return "–"
    return f"{m:.{digits}f}" + (f" [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None else "")


def _steps(steps: Sequence[Any]) -> str:
    """Median and range of the seeds' peak steps: ``10 (5-20)``."""
    vals = sorted(float(s) for s in steps if s is not None)
    if not vals:
        return "–"
    return f"{statistics.median(vals):g} ({vals[0]:g}–{vals[-1]:g})"


def _onsets(steps: Sequence[Any]) -> str:
    """Retry onsets as median (range), with how many seeds never reached it."""
    never = sum(s is None for s in steps)
    text = _steps(steps)
    return text + (f", never in {never}" if never else "") if text != "–" else (f"never ({never})" if never else "–")


def table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the cell table: mean [95% t-interval] over seeds, peak steps, collapses; with runs
    that selected on dev, the test accuracy at the selected step first."""
    factors = list(rows[0]["cell"]) if rows else []
    head = [*factors, "seeds", "peak accuracy", "peak step (range)", "persistence", "recovery", "wasted retries",
            "searches / episode", "collapsed (step)", "final accuracy", "mean accuracy over evals",
            "retry onset step (range)"]
    selected = any((r.get("test_at_selected") or {}).get("mean") is not None for r in rows)
    if selected:  # runs that selected on dev: the reported split at the selected step leads
        head.insert(len(factors) + 1, "test at selected step")
    body = []
    for r in rows:
        steps = ", ".join(str(int(s)) for s in r["collapse_steps"])
        body.append([*(str(v) for v in r["cell"].values()), str(len(r["seeds"])), _fmt(r["accuracy"]),
                     _steps(r["peak_steps"]), _fmt(r["persistence"]), _fmt(r["recovery"]), _fmt(r["wasted_retries"]),
                     _fmt(r["searches_per_episode"]),
                     f"{r['collapsed']}/{len(r['seeds'])}" + (f" ({steps})" if steps else ""),
                     _fmt(r["final_accuracy"]), _fmt(r["mean_accuracy"]), _onsets(r["retry_onset_steps"])])
        if selected:
            body[-1].insert(len(factors) + 1, _fmt(r["test_at_selected"]))
    return head, body


def markdown(rows: list[dict[str, Any]], comparisons: list[dict[str, Any]]) -> str:
    """The cell table (mean [95% t-interval] over seeds) and one quotable sentence per comparison."""
    head, body = table(rows)
    n = len(rows[0]["cell"]) if rows else 0
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join([*(f"`{c}`" for c in cells[:n]), *cells[n:]]) + " |" for cells in body]
    text = "\n".join(lines) + "\n"
    if comparisons:
        text += "\n" + "\n".join(f"- {'; '.join(f'{k} `{v}`' for k, v in c['within'].items())}"
                                 f"{': ' if c['within'] else ''}{_sentence(c)}" for c in comparisons) + "\n"
    return text


def _sentence(c: dict[str, Any]) -> str:
    """A comparison's sentence with its seed-level and retry-onset notes (markdown and HTML alike)."""
    return c["sentence"] + "".join(f"; {c[k]}" for k in ("seed_sentence", "onset_sentence") if c.get(k))


def level_figures(runs: Sequence[CellRun], arm: str, by: Sequence[str]) -> list[tuple[tuple, list, Any]]:
    """Per level of ``by``: the level, its arm values and the report code's accuracy-across-seeds figure
    (one group per arm value), computed once for the page and the SVG files."""
    from harness.core.io import slug
    from harness.report.figures import seed_figure

    out = []
    for level in sorted({cell_key(r.params, by) for r in runs}, key=lambda k: tuple(str(x) for x in k)):
        members = [r for r in runs if cell_key(r.params, by) == level]
        values = sorted({r.params.get(arm) for r in members}, key=str)
        name = f"accuracy_{slug('_'.join(str(x) for x in level) or 'all', 60)}"
        fig = seed_figure([(f"{arm} {v}", [_as_run(r) for r in members if r.params.get(arm) == v]) for v in values],
                          name)
        out.append((level, values, fig))
    return out


def _as_run(r: CellRun) -> Run:
    """The report's view of a trial, from what :mod:`harness.stats.cells` already read (nothing read twice)."""
    return Run(name=r.path.name, path=r.path, label=r.path.name, kind="train", curve=r.curve, options=r.params,
               analysis=r.analysis)


def html(rows: list[dict[str, Any]], comparisons: list[dict[str, Any]], figures: list[tuple[tuple, list, Any]],
         by: Sequence[str], title: str) -> str:
    """A section per level of ``by``: accuracy by step across seeds per arm, the comparisons; then the table."""
    import html as _h

    from harness.report.page import page

    parts = [f"<h1>{_h.escape(title)}</h1>"]
    for level, _values, fig in figures:
        name = ", ".join(f"{k} {v}" for k, v in zip(by, level)) or "all trials"
        parts.append(f"<section><h2>{_h.escape(name)}</h2>")
        if fig:
            parts.append(fig.html())
        sentences = [_sentence(c) for c in comparisons if cell_key(c["within"], by) == level]
        if sentences:
            parts.append("<ul>" + "".join(f"<li>{_h.escape(s)}</li>" for s in sentences) + "</ul>")
        parts.append("</section>")
    head, body = table(rows)
    parts.append("<section><h2>Cells</h2><p>Mean over seeds [95% Student-t interval]; metrics at each run's peak "
                 "eval; collapse: the offline noise-aware detector.</p><table><thead><tr>"
                 + "".join(f"<th>{_h.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
                 + "".join("<tr>" + "".join(f"<td>{_h.escape(c)}</td>" for c in cells) + "</tr>" for cells in body)
                 + "</tbody></table></section>")
    return page(title, parts)


def figure_files(figures: list[tuple[tuple, list, Any]], by: Sequence[str], out: Path,
                 fmt: str = "svg") -> list[dict[str, Any]]:
    """One standalone figure file per level (the figure of :func:`level_figures`; svg, pdf or png), for
    documents that cannot hold the HTML page; returns each file's name, level and legend (arm value ->
    colour)."""
    from harness.report.plot import color

    made = []
    for level, values, fig in figures:
        if fig is None:
            continue
        path = fig.save(out, fmt)
        made.append({"file": path.name, "level": dict(zip(by, level)),
                     "legend": {str(v): color(i) for i, v in enumerate(values)}})
    return made


def write_cells(study_dir: str | Path, by: Sequence[str], arm: str, output_dir: str | Path | None = None,
                seed_key: str = "seed", title: str | None = None, fmt: str = "svg") -> dict[str, Any]:
    """Compute the cells and comparisons of a study; write ``cells.json``, ``cells.md``, ``cells.html`` and one
    ``accuracy_<level>.<fmt>`` per level of ``by``."""
    from harness.train.fingerprint import run_fingerprint

    runs = load_study_runs(study_dir, fingerprint=run_fingerprint)
    if not runs:
        raise DataError(f"{study_dir}: no finished trial with a curve")
    missing = [k for k in (*by, arm, seed_key) if all(k not in r.params for r in runs)]
    if missing:
        known = sorted({k for r in runs for k in r.params})
        raise DataError(f"{study_dir}: no trial sets {', '.join(missing)}; trial options: {', '.join(known)}")
    factors = [*by, arm]
    check_one_run_per_seed(runs, factors, seed_key)
    rows = cell_rows(runs, factors, seed_key)
    comparisons = compare_within(runs, arm, by, seed_key)
    out = Path(output_dir) if output_dir else Path(study_dir) / "cells"
    out.mkdir(parents=True, exist_ok=True)
    result = {"study": str(study_dir), "by": list(by), "arm": arm, "runs": [
        {"params": r.params, **r.row} for r in runs], "cells": rows, "comparisons": comparisons}
    figures = level_figures(runs, arm, by)
    atomic_write_text(out / "cells.md", markdown(rows, comparisons))
    atomic_write_text(out / "cells.html", html(rows, comparisons, figures, by,
                                               title or f"{Path(study_dir).name}: {arm} within {', '.join(by)}"))
    result["figures"] = figure_files(figures, by, out, fmt)
    atomic_write_text(out / "cells.json", json.dumps(result, indent=2, default=str) + "\n")
    return result
