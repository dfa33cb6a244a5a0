"""A factorial study, cell by cell: per-cell outcomes across seeds, and arms compared paired within each cell.

A study whose trials cross categorical factors (e.g. ``model`` = the exploration regime, ``preset`` =
the reward arm) with seeds is summarised per *cell* (one value of every factor but the seed):

=====================  ====================================================================================
per run                peak accuracy and step (the best held-out eval: the step whose ``eval_samples`` the
                       paired tests use), and at that step persistence, recovery, wasted retries and
                       searches per episode; collapse onset (offline, noise-aware:
                       :func:`harness.stats.curves.analyze`) and final accuracy
per cell               the mean of each over the cell's seeds with a 95% Student-t interval, the peak
                       steps, and how many seeds collapsed (and when)
within a cell's other  every pair of arms compared paired: seed ``s`` of one arm with seed ``s`` of the
factors                other, per question correct/incorrect at each run's peak
                       (:func:`harness.stats.paired.compare_outcomes`: permutation test over questions
                       and a bootstrap interval of the difference: these say whether *these trained
                       models* differ); and a Student-t interval over the per-seed differences, which
                       carries the training-seed variance (whether *the recipe* differs)
=====================  ====================================================================================

``harness cells STUDY_DIR --by model --arm preset`` prints the table and the sentences and writes
``cells.json``, ``cells.md`` and ``cells.html`` (curves across seeds per arm, drawn with seaborn by the
report code, :func:`harness.report.figures.seed_figure`) and one figure file per level.
"""

from __future__ import annotations

import itertools
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from harness.core.errors import DataError
from harness.core.io import atomic_write_text
from harness.report.runs import Run, load_run
from harness.stats.intervals import clip01, t_interval

__all__ = ["METRICS", "CellRun", "cell_rows", "compare_within", "load_study_runs", "run_row", "write_cells"]

#: Metrics read at each run's peak step (curve.csv columns), in table order.
METRICS = ("accuracy", "persistence", "recovery", "wasted_retries", "searches_per_episode")
#: Rates (clipped to [0, 1] in intervals); the others are counts.
RATES = ("accuracy", "persistence", "recovery", "wasted_retries", "final_accuracy")
#: Run statuses that count as finished (a trial still running, or failed, is left out).
FINISHED = ("complete", "stopped_collapse", "stopped_patience", "diverged")


@dataclass
class CellRun:
    """One finished trial: its factor values (from ``trial_config.yaml``) and its loaded run."""

    params: dict[str, Any]
    run: Run
    row: dict[str, Any] = field(default_factory=dict)


def load_study_runs(study_dir: str | Path) -> list[CellRun]:
    """Every trial of ``STUDY_DIR/trials/*`` that has a curve (running or failed trials without one are skipped)."""
    import yaml

    trials = Path(study_dir) / "trials"
    if not trials.is_dir():
        raise DataError(f"{study_dir}: no trials/ folder (is it a `harness sweep` output directory?)")
    out = []
    for folder in sorted(p for p in trials.iterdir() if p.is_dir()):
        config = folder / "trial_config.yaml"
        if not config.is_file() or not (folder / "curve.csv").is_file():
            continue
        try:
            params = yaml.safe_load(config.read_text()) or {}
        except yaml.YAMLError as e:
            raise DataError(f"{config}: not valid YAML ({e})") from None
        run = load_run(folder)
        if run.analysis is None or run.status not in FINISHED:
            continue
        out.append(CellRun(params, run, run_row(run)))
    return out


def _at(curve, step: Any, column: str) -> float | None:
    if curve is None or column not in curve:
        return None
    rows = curve.loc[curve["step"] == step, column].dropna()
    return float(rows.iloc[0]) if len(rows) else None


def run_row(run: Run) -> dict[str, Any]:
    """Peak step and the :data:`METRICS` there, collapse onset, final accuracy and status of one run."""
    a = run.analysis or {}
    step = a.get("peak_step")
    row = {m: _at(run.curve, step, m) for m in METRICS}
    row.update(peak_step=step, collapse_step=a.get("collapse_step"), final_accuracy=a.get("final_accuracy"),
               final_step=a.get("final_step"), status=run.status, run=str(run.path),
               retry_onset_step=retry_onset(run.curve), mean_accuracy=_mean_eval(run.curve))
    return row


#: Persistence (P(search again | first search missed)) at which the policy counts as retrying.
RETRY_ONSET = 0.5


def retry_onset(curve) -> float | None:
    """First eval step at which persistence reaches :data:`RETRY_ONSET` (None: never): how long the policy
    took to discover retrying under greedy evaluation."""
    if curve is None or "persistence" not in curve:
        return None
    hit = curve[(curve["persistence"] >= RETRY_ONSET) & curve["accuracy"].notna()]
    return float(hit["step"].iloc[0]) if len(hit) else None


def _mean_eval(curve) -> float | None:
    """Mean held-out accuracy over the run's evals (the area under the curve, per eval)."""
    if curve is None or "accuracy" not in curve:
        return None
    vals = curve["accuracy"].dropna()
    return float(vals.mean()) if len(vals) else None


def _mean_ci(values: Sequence[float | None], rate: bool = False) -> dict[str, Any]:
    vals = [float(v) for v in values if v is not None]
    lo, hi = clip01(t_interval(vals)) if rate else t_interval(vals)
    if not rate and lo is not None:
        lo = max(lo, 0.0)  # counts (searches per episode) are never negative
    return {"mean": sum(vals) / len(vals) if vals else None, "ci": [lo, hi], "n": len(vals)}


def _key(params: dict[str, Any], names: Sequence[str]) -> tuple:
    return tuple(params.get(n) for n in names)


def check_one_run_per_seed(runs: Sequence[CellRun], factors: Sequence[str], seed_key: str = "seed") -> None:
    """Refuse cells holding two runs of one seed (they would be averaged as seeds and overwrite each other in
    the paired comparison): name the trial options that vary but are not among ``factors``."""
    seen: dict[tuple, CellRun] = {}
    for r in runs:
        key = (*_key(r.params, factors), r.params.get(seed_key))
        if key in seen:
            ignore = {*factors, seed_key, "output_dir"}
            varying = sorted(k for k in {k for x in runs for k in x.params} - ignore
                             if len({str(x.params.get(k)) for x in runs}) > 1)
            raise DataError(f"cell {dict(zip(factors, key))} has two runs of {seed_key} {key[-1]} "
                            f"({seen[key].run.path.name}, {r.run.path.name}); add the options that tell them apart "
                            f"to --by: {', '.join(varying) or '(none vary: the study holds repeated trials)'}")
        seen[key] = r


def cell_rows(runs: Sequence[CellRun], by: Sequence[str], seed_key: str = "seed") -> list[dict[str, Any]]:
    """One row per cell (a value of every factor in ``by``): means with 95% t-intervals over seeds."""
    rows = []
    cells: dict[tuple, list[CellRun]] = {}
    for r in runs:
        cells.setdefault(_key(r.params, by), []).append(r)
    for key in sorted(cells, key=lambda k: tuple(str(x) for x in k)):
        members = sorted(cells[key], key=lambda r: str(r.params.get(seed_key)))
        collapsed = [r for r in members if r.row["collapse_step"] is not None]
        rows.append({
            "cell": dict(zip(by, key)), "seeds": [r.params.get(seed_key) for r in members],
            **{m: _mean_ci([r.row[m] for r in members], m in RATES) for m in METRICS},
            "peak_steps": [r.row["peak_step"] for r in members],
            "final_accuracy": _mean_ci([r.row["final_accuracy"] for r in members], True),
            "mean_accuracy": _mean_ci([r.row["mean_accuracy"] for r in members], True),
            "retry_onset_steps": [r.row["retry_onset_step"] for r in members],
            "collapsed": len(collapsed), "collapse_steps": [r.row["collapse_step"] for r in collapsed],
        })
    return rows


def compare_within(runs: Sequence[CellRun], arm: str, by: Sequence[str] = (), seed_key: str = "seed",
                   **kwargs) -> list[dict[str, Any]]:
    """Every pair of ``arm`` values compared paired within each level of the factors ``by`` (seed-matched)."""
    from harness.core.rundir import outcomes
    from harness.stats.paired import compare_outcomes

    out = []
    groups: dict[tuple, list[CellRun]] = {}
    for r in runs:
        groups.setdefault(_key(r.params, by), []).append(r)
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        members = groups[key]
        arms = sorted({r.params.get(arm) for r in members}, key=str)
        for a, b in itertools.combinations(arms, 2):
            by_seed = {s: {} for s in {r.params.get(seed_key) for r in members}}
            for r in members:
                by_seed[r.params.get(seed_key)][r.params.get(arm)] = r
            seeds = sorted((s for s, d in by_seed.items() if a in d and b in d), key=str)
            if not seeds:
                continue
            try:
                outs_a = [outcomes(by_seed[s][a].run.path, step=by_seed[s][a].row["peak_step"]).outcomes for s in seeds]
                outs_b = [outcomes(by_seed[s][b].run.path, step=by_seed[s][b].row["peak_step"]).outcomes for s in seeds]
            except DataError as e:  # one trial without its peak's samples must not lose the rest
                out.append({"within": dict(zip(by, key)), "arm": arm, "a": a, "b": b, "skipped": str(e),
                            "sentence": f"{a} vs {b}: not compared ({e})"})
                continue
            comp = compare_outcomes(outs_a, outs_b, str(a), str(b), **kwargs).to_dict()
            lo, hi = t_interval(comp["per_seed"])
            comp["seed_interval"] = [lo, hi]  # Student-t over the per-seed differences: training-seed variance
            per_seed = ", ".join(f"{d:+.2f}" for d in comp["per_seed"])
            comp["seed_sentence"] = (f"across seeds: per-seed differences {per_seed}"
                                     + (f", mean {comp['difference']:+.2f}, 95% t [{lo:+.2f}, {hi:+.2f}]"
                                        + (" (excludes 0)" if lo > 0 or hi < 0 else " (includes 0)")
                                        if lo is not None else ""))
            comp["onset_differences"] = [
                by_seed[s][a].row["retry_onset_step"] - by_seed[s][b].row["retry_onset_step"] for s in seeds
                if by_seed[s][a].row["retry_onset_step"] is not None
                and by_seed[s][b].row["retry_onset_step"] is not None]
            comp["onset_sentence"] = (f"retry onset step {a} - {b} per seed: "
                                      + (", ".join(f"{d:+g}" for d in comp["onset_differences"]) or "none comparable"))
            out.append({"within": dict(zip(by, key)), "arm": arm, "a": a, "b": b, **comp, "seed_values": seeds})
    return out


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
    """Header and cells of the cell table: mean [95% t-interval] over seeds, peak steps, collapses."""
    factors = list(rows[0]["cell"]) if rows else []
    head = [*factors, "seeds", "peak accuracy", "peak step (range)", "persistence", "recovery", "wasted retries",
            "searches / episode", "collapsed (step)", "final accuracy", "mean accuracy over evals",
            "retry onset step (range)"]
    body = []
    for r in rows:
        steps = ", ".join(str(int(s)) for s in r["collapse_steps"])
        body.append([*(str(v) for v in r["cell"].values()), str(len(r["seeds"])), _fmt(r["accuracy"]),
                     _steps(r["peak_steps"]), _fmt(r["persistence"]), _fmt(r["recovery"]), _fmt(r["wasted_retries"]),
                     _fmt(r["searches_per_episode"]),
                     f"{r['collapsed']}/{len(r['seeds'])}" + (f" ({steps})" if steps else ""),
                     _fmt(r["final_accuracy"]), _fmt(r["mean_accuracy"]), _onsets(r["retry_onset_steps"])])
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
    for level in sorted({_key(r.params, by) for r in runs}, key=lambda k: tuple(str(x) for x in k)):
        members = [r for r in runs if _key(r.params, by) == level]
        values = sorted({r.params.get(arm) for r in members}, key=str)
        name = f"accuracy_{slug('_'.join(str(x) for x in level) or 'all', 60)}"
        fig = seed_figure([(f"{arm} {v}", [r.run for r in members if r.params.get(arm) == v]) for v in values], name)
        out.append((level, values, fig))
    return out


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
        sentences = [_sentence(c) for c in comparisons if _key(c["within"], by) == level]
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
    runs = load_study_runs(study_dir)
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
