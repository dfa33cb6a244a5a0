"""The report's figures, as inline SVG (see :mod:`harness.report.svg`); every point has hover text.

Evaluation runs: accuracy with its interval per policy and noise level; persistence, recovery,
wasted retries and premature answers side by side; the distribution of searches per episode.
Training runs: accuracy by step (interval band, peak star, collapse line, faults on the top edge),
reward components, retry-aware metrics and leading indicators by step, and seed aggregates (mean
with a Student-t band across seeds).
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

from harness.stats.intervals import t_interval, wilson
from harness.report.page import fmt
from harness.report.svg import (
    DASHES,
    MARKERS,
    Chart,
    color,
    figure,
    figures,
    heatmap,
    legend,
)
from harness.report.tables import Column

RETRY_PANELS = (("persistence", "n_persistence", "searched again | first search missed gold"),
                ("recovery", "n_recovery", "correct | first search missed gold"),
                ("wasted_retries", "n_wasted_retries", "searched again | gold already seen"),
                ("premature_answer", "n_premature_answer", "answered before gold seen | answered"))
CURVE_RETRY = ("persistence", "recovery", "retry_rate", "searches_per_episode", "wasted_retries",
               "premature_answer", "answer_rate", "format_validity")
CURVE_INDICATORS = ("reward_std", "entropy", "kl", "completion_length")


# ---------------------------------------------------------------- evaluation runs


def _policy_axis(cols: Sequence[Column]) -> tuple[list[str], list[str]]:
    policies = list(dict.fromkeys(" / ".join(x for x in (c.run, c.policy) if x) for c in cols))
    noises = list(dict.fromkeys(c.noise for c in cols))
    return policies, noises


def _rate_chart(cols: Sequence[Column], key: str, n_key: str | None, title: str, width: int, height: int,
                ylabel: str = "") -> str:
    """A rate per policy (x) and noise level (series) with its Wilson interval."""
    policies, noises = _policy_axis(cols)
    chart = Chart(width=width, height=height, title=title, ylabel=ylabel, xcats=policies, ylim=(0, 1),
                  left=56 if ylabel else 36)
    k = len(noises)
    for j, noise in enumerate(noises):
        xs, ys, lo, hi, titles = [], [], [], [], []
        for c in cols:
            if c.noise != noise:
                continue
            value, n = c.metrics.get(key), c.metrics.get(n_key or "n")
            name = " / ".join(x for x in (c.run, c.policy) if x)
            x = policies.index(name) + (j - (k - 1) / 2) * min(0.22, 0.7 / k)
            if not isinstance(value, (int, float)):
                chart.text(x, 0.02, "n/a", color=color(j), size=9, anchor="middle")
                continue
            ci = wilson(round(value * n), n) if isinstance(n, (int, float)) and n > 0 else None
            xs.append(x)
            ys.append(value)
            lo.append(ci[0] if ci else None)
            hi.append(ci[1] if ci else None)
            count = f" ({round(value * n)}/{n})" if isinstance(n, (int, float)) and n else ""
            interval = f", 95% CI [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else ""
            titles.append(f"{name}, {noise}: {key} {fmt(value)}{count}{interval}")
        chart.errorbars(xs, ys, lo, hi, color(j), shape=MARKERS[j % len(MARKERS)], titles=titles)
    return chart.render()


def noise_legend(cols: Sequence[Column]) -> str:
    _, noises = _policy_axis(cols)
    return legend([(n, color(j), MARKERS[j % len(MARKERS)], "") for j, n in enumerate(noises)])


def accuracy_figure(cols: Sequence[Column]) -> str:
    """Accuracy with its 95% Wilson interval per policy and noise level."""
    width = max(520, 130 * len(_policy_axis(cols)[0]) + 80)
    svg = _rate_chart(cols, "accuracy", "n", "Accuracy per policy and noise level (95% Wilson interval)", width, 320,
                      ylabel="accuracy")
    return figure(svg)


def retry_figure(cols: Sequence[Column]) -> str:
    """Persistence, recovery, wasted retries and premature answers, one panel each, side by side."""
    width = max(280, 75 * len(_policy_axis(cols)[0]) + 50)
    panels = [figure(_rate_chart(cols, key, n_key, key.replace("_", " "), width, 260), f"P({meaning})")
              for key, n_key, meaning in RETRY_PANELS]
    return figures(panels)


def searches_figure(cols: Sequence[Column]) -> str | None:
    """Distribution of searches per episode: one row per policy and noise level, one column per count."""
    hists = [(c, c.metrics.get("searches_hist")) for c in cols]
    hists = [(c, h) for c, h in hists if isinstance(h, dict) and h]
    if not hists:
        return None
    counts = sorted({int(k) for _, h in hists for k in h if str(k).isdigit()})
    top = max(counts) if counts else 0
    cols_ = [str(i) for i in range(top + 1)]
    rows = [" / ".join(x for x in (c.run, c.policy, c.noise) if x) for c, _ in hists]
    grid = [[int(h.get(str(i), 0) or 0) for i in range(top + 1)] for _, h in hists]
    svg = heatmap(rows, cols_, grid, "Searches per episode (episodes per count; shade: share of the row)",
                  xlabel="searches in the episode", col_width=28 if top < 20 else 22)
    return figure(svg)


# ---------------------------------------------------------------- training runs


def _style(i: int) -> tuple[str, str, str]:
    return color(i), MARKERS[i % len(MARKERS)], DASHES[i % len(DASHES)]


def _eval_rows(run: Any, column: str = "accuracy") -> Any:
    return run.curve[run.curve[column].notna()] if run.curve is not None and column in run.curve else None


def accuracy_band(rows: Any) -> tuple[list[Any], list[Any]]:
    """The 95% interval of each eval's accuracy: Wilson from the eval size when the curve has an ``n``
    column (as every interval of the report), else the curve's own ``accuracy_ci_low/high``; empty
    lists when neither is there."""
    if "n" in rows and rows["n"].notna().any():
        cis = [wilson(round(a * n), n) if _num(n) and n > 0 else None for a, n in zip(rows["accuracy"], rows["n"])]
        return [c[0] if c else None for c in cis], [c[1] if c else None for c in cis]
    if {"accuracy_ci_low", "accuracy_ci_high"} <= set(rows.columns):
        return rows["accuracy_ci_low"].tolist(), rows["accuracy_ci_high"].tolist()
    return [], []


def identical_groups(runs: Sequence[Any]) -> list[list[str]]:
    """Labels of runs whose accuracy curves are identical (same steps, same values)."""
    seen: dict[tuple, list[str]] = {}
    for run in runs:
        rows = _eval_rows(run)
        if rows is None or rows.empty:
            continue
        key = tuple(zip(rows["step"].tolist(), [round(float(v), 9) for v in rows["accuracy"]]))
        seen.setdefault(key, []).append(run.label)
    return [labels for labels in seen.values() if len(labels) > 1]


def accuracy_by_step(runs: Sequence[Any], width: int = 900, height: int = 380) -> tuple[str, str] | None:
    """Accuracy by step per run: interval band (up to three runs), peak (star), collapse (dashed line),
    faults (triangles on the top edge); identical curves drawn slightly offset. Returns (figure, legend)."""
    curved = [(i, r) for i, r in enumerate(runs) if _eval_rows(r) is not None and not _eval_rows(r).empty]
    if not curved:
        return None
    same = identical_groups([r for _, r in curved])
    chart = Chart(width=width, height=height, title="Held-out accuracy by step", xlabel="step", ylabel="accuracy",
                  integer_x=True, ylim=(0, None))
    span = max(float(r.curve["step"].max()) for _, r in curved) or 1.0
    dodge = {label: (k - (len(g) - 1) / 2) * span * 0.006 for g in same for k, label in enumerate(g)}
    items = []
    for i, run in curved:
        col, shape, dash = _style(i)
        rows, a = _eval_rows(run), run.analysis or {}
        xs = [s + dodge.get(run.label, 0.0) for s in rows["step"]]
        lo, hi = accuracy_band(rows)
        if len(curved) <= 3 and lo:
            chart.band(xs, lo, hi, col, opacity=0.12)
        chart.line(xs, rows["accuracy"].tolist(), col, dash=dash)
        n = rows["n"].tolist() if "n" in rows else [None] * len(rows)
        titles = [f"{run.label}: step {int(s)}, accuracy {fmt(v)}" + (f" (n={int(k)})" if _num(k) else "")
                  for s, v, k in zip(rows["step"], rows["accuracy"], n)]
        chart.points(xs, rows["accuracy"].tolist(), col, shape=shape, size=3.2, titles=titles)
        if a.get("peak_step") is not None and a.get("peak_raw") is not None:
            chart.points([a["peak_step"] + dodge.get(run.label, 0.0)], [a["peak_raw"]], col, shape="star", size=5,
                         titles=[f"{run.label}: peak {fmt(a['peak_raw'])} at step {a['peak_step']}"])
        if a.get("collapse_step") is not None:
            chart.vline(a["collapse_step"], col, dash="6 3",
                        title=f"{run.label}: collapse at step {a['collapse_step']} (accuracy below "
                              f"{fmt(a.get('collapse_threshold'))} and staying)")
        for f in run.faults:
            chart.rug(float(f.step), col, title=f"{run.label}: {f.kind} at step {f.step}: {f.detail}")
        items.append((run.label, col, shape, dash))
    extra = [("peak", "#777", "star", ""), ("collapse (dashed vertical)", "#777", None, "6 3")]
    if any(r.faults for _, r in curved):
        extra.append(("fault (top edge; hover for details)", "#777", "down", ""))
    note = ""
    if same:
        note = " ".join(f"Runs {', '.join(g)} have identical accuracy curves (drawn slightly offset)." for g in same)
    return figure(chart.render(), note or None), legend(items + extra)


def panels_by_step(runs: Sequence[Any], columns: Sequence[str], title: str, width: int = 380,
                   height: int = 230) -> str | None:
    """One small chart per logged column, runs overlaid, collapse steps dashed."""
    present = [c for c in columns if any(r.curve is not None and c in r.curve and r.curve[c].notna().any()
                                         for r in runs)]
    if not present:
        return None
    panels = []
    for column in present:
        chart = Chart(width=width, height=height, title=column, xlabel="step", integer_x=True, left=50)
        for i, run in enumerate(runs):
            rows = _eval_rows(run, column)
            if rows is None or rows.empty:
                continue
            col, shape, dash = _style(i)
            chart.line(rows["step"].tolist(), rows[column].tolist(), col, width=1.5, dash=dash)
            if len(rows) <= 60:
                chart.points(rows["step"].tolist(), rows[column].tolist(), col, shape=shape, size=2.4,
                             titles=[f"{run.label}: step {int(s)}, {column} {fmt(v)}"
                                     for s, v in zip(rows["step"], rows[column])])
            if run.analysis and run.analysis.get("collapse_step") is not None:
                chart.vline(run.analysis["collapse_step"], col, dash="6 3")
        panels.append(figure(chart.render()))
    return f"<h3>{title}</h3>" + figures(panels)


def seed_figure(groups: Sequence[tuple[str, Sequence[Any]]], width: int = 900, height: int = 360) -> tuple[str, str] | None:
    """Per group of seeds: thin per-seed curves, the mean at steps every seed evaluated, and a 95%
    Student-t band across seeds."""
    if not groups:
        return None
    chart = Chart(width=width, height=height, title="Accuracy by step across seeds (mean, 95% t-band)",
                  xlabel="step", ylabel="accuracy", integer_x=True, ylim=(0, None))
    items = []
    for g, (label, runs) in enumerate(groups):
        col, shape, dash = _style(g)
        series = {}
        for run in runs:
            rows = _eval_rows(run)
            if rows is None:
                continue
            series[run.seed] = dict(zip(rows["step"].tolist(), rows["accuracy"].tolist()))
            chart.line(rows["step"].tolist(), rows["accuracy"].tolist(), col, width=0.9, dash="3 2", opacity=0.55,
                       title=f"{label}, seed {run.seed}")
        steps = sorted(set.intersection(*(set(s) for s in series.values()))) if series else []
        means, lows, highs, titles = [], [], [], []
        for s in steps:
            vals = [series[k][s] for k in series]
            lo, hi = t_interval(vals)
            means.append(sum(vals) / len(vals))
            lows.append(lo)
            highs.append(hi)
            titles.append(f"{label}, step {int(s)}: mean {fmt(means[-1])} over {len(vals)} seeds "
                          f"({', '.join(fmt(v) for v in vals)})" + (f", 95% t [{fmt(lo)}, {fmt(hi)}]" if lo is not None
                                                                    else ""))
        chart.band(steps, [max(0.0, v) if v is not None else None for v in lows],
                   [min(1.0, v) if v is not None else None for v in highs], col, opacity=0.15)
        chart.line(steps, means, col, width=2.4, dash=dash)
        chart.points(steps, means, col, shape=shape, size=3.5, titles=titles)
        items.append((f"{label} (mean of {len(series)} seeds)", col, shape, dash))
    items.append(("one seed", "#777", None, "3 2"))
    return figure(chart.render()), legend(items)


def reward_columns(runs: Sequence[Any]) -> list[str]:
    """The ``reward_<name>_mean`` columns logged by any run."""
    return sorted({c for r in runs if r.curve is not None for c in r.curve.columns
                   if re.fullmatch(r"reward_.+_mean", str(c))})


def _num(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False
