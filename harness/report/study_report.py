"""The study report: one self-contained HTML page summarising an Optuna sweep (``harness sweep``).

Sections (tables from :mod:`harness.report.study`): the header (objectives, directions, trials by
state, storage URL with the password masked); the best trials, or for a multi-objective study the
Pareto front with its figure, then the best trial against the next ones paired on the held-out
questions (and a warning when the objective is the same in every trial); every trial's accuracy curve with peak and collapse marked; one
comparison per arm parameter (e.g. ``preset: [rezero, baseline]``) with its figure and the arms
paired by seed; a parallel-coordinates figure of every completed trial; each parameter against each
objective (categorical parameters and seeds on categorical axes); fANOVA importances, or a warning
when there are too few trials for them; the failed trials with their reasons.

Like :mod:`harness.report.run_report`, the page has inline CSS, inline SVG figures with hover text,
no script and a Content-Security-Policy; every text from the study is escaped.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from harness.report.page import (
    cap,
    esc,
    esc_attr,
    fmt,
    frame_table,
    generated_line,
    note,
    page,
    table,
)
from harness.stats.ranking import RANKING_HEADER
from harness.stats.paired import format_p
from harness.report.study import (
    TOP_N,
    Comparison,
    StudyData,
    arm_label,
    arm_params,
    collect,
    compared_metric,
    mask_url,
    paired_header,
    plain,
    study_summary,
)
from harness.report.svg import DASHES, MARKERS, Chart, color, figure, figures, legend, standalone_svgs
from harness.core.io import atomic_write_bytes

__all__ = ["mask_url", "render_study_html", "study_figures", "study_summary", "write_study_report"]


# ---------------------------------------------------------------- figures


def _pv(value: Any) -> str:
    """A parameter value as a label: floats without trailing zeros.

    >>> _pv(0.0), _pv(0.25), _pv("rezero"), _pv(None)
    ('0', '0.25', 'rezero', '—')
    """
    value = plain(value)
    if value is None:
        return "—"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _trial_name(row: dict[str, Any], params: Sequence[str]) -> str:
    return f"trial {row['number']}: " + ", ".join(f"{p} {_pv(row.get(p))}" for p in params)


def curves_figure(data: StudyData) -> tuple[str, str] | None:
    """Accuracy by step of every trial with a curve (star: peak, X: collapse), coloured by the first arm
    parameter; one panel per value of a second arm parameter when there are many trials."""
    curves = [(row, data.curves[int(row["number"])]) for row in data.trials.to_dict("records")
              if int(row["number"]) in data.curves]
    if not curves:
        return None
    arms = arm_params(data)
    group = arms[0] if arms else None
    panel = arms[1] if len(arms) > 1 and len(curves) > 8 else None
    seen = [arm_label(group, row.get(group)) for row, _ in curves if row.get(group) is not None] if group else []
    levels = [lv for lv in data.choices.get(group, []) if lv in seen] + [lv for lv in dict.fromkeys(seen)
                                                                          if lv not in data.choices.get(group, [])]
    panels = list(dict.fromkeys(arm_label(panel, row.get(panel)) for row, _ in curves)) if panel else [None]
    top = max((float(c["accuracy"].max()) for _, c in curves if c["accuracy"].notna().any()), default=1.0)
    charts = []
    width = 900 if len(panels) == 1 else 440
    for pv in panels:
        chart = Chart(width=width, height=340, title=f"{panel} = {pv}" if panel else "Held-out accuracy by step",
                      xlabel="step", ylabel="accuracy", integer_x=True, ylim=(0, max(top, 0.01) * 1.05))
        for row, curve in curves:
            if panel and arm_label(panel, row.get(panel)) != pv:
                continue
            lv = arm_label(group, row.get(group)) if group and row.get(group) is not None else None
            i = levels.index(lv) if lv in levels else len(levels)
            col = color(i) if lv in levels else "#888"
            rows = curve[curve["accuracy"].notna()]
            done = row["state"] == "COMPLETE"
            name = _trial_name(row, data.params) + ("" if done else f" ({row['state'].lower()})")
            dash = DASHES[i % len(DASHES)] if done else "2 3"
            chart.line(rows["step"].tolist(), rows["accuracy"].tolist(), col, width=1.6, dash=dash, opacity=0.85,
                       title=name)
            for key, shape, size in (("peak_step", "star", 4.5), ("collapse_step", "cross", 4.5)):
                step = plain(row.get(key))
                at = rows[rows["step"] <= step] if step is not None else rows.iloc[0:0]
                if len(at):
                    what = "peak" if key == "peak_step" else "collapse"
                    chart.points([step], [float(at["accuracy"].iloc[-1])], col, shape=shape, size=size,
                                 titles=[f"{name}: {what} at step {step} (accuracy {fmt(float(at['accuracy'].iloc[-1]))})"])
        charts.append(figure(chart.render()))
    items = [(f"{group} = {lv}", color(i), None, DASHES[i % len(DASHES)]) for i, lv in enumerate(levels)] or \
        [("trial", "#888", None, "")]
    items += [("peak", "#777", "star", ""), ("collapse", "#777", "cross", ""), ("not completed", "#777", None, "2 3")]
    same = _identical_curves(curves)
    caption = " ".join(f"Trials {', '.join(map(str, g))} have identical curves (drawn on top of each other)."
                       for g in same)
    return figures(charts) + (note(caption) if caption else ""), legend(items)


def _identical_curves(curves: list[tuple[dict[str, Any], pd.DataFrame]]) -> list[list[int]]:
    """Trial numbers whose accuracy curves are identical, in groups of two or more."""
    seen: dict[tuple, list[int]] = {}
    for row, curve in curves:
        rows = curve[curve["accuracy"].notna()]
        key = tuple(zip(rows["step"].tolist(), [round(float(v), 9) for v in rows["accuracy"]]))
        seen.setdefault(key, []).append(row["number"])
    return [g for g in seen.values() if len(g) > 1]


def comparison_figure(data: StudyData, comp: Comparison) -> str | None:
    """Mean peak accuracy per arm with its 95% t-interval, and each trial's peak as a faint point beside
    it; the arms side by side within each combination of the other arm parameters."""
    if comp.table.empty:
        return None
    t = comp.table
    ctx_of = (lambda r: ", ".join(f"{k} {_pv(r[k])}" for k in comp.context))
    arms = list(dict.fromkeys(str(a) for a in t["arm"]))
    contexts = list(dict.fromkeys(ctx_of(r) for r in t.to_dict("records")))
    cats = [f"{c} · {a}" if c else a for c in contexts for a in arms]
    metric = comp.metric
    column = compared_metric(data)[0]
    chart = Chart(width=max(600, 110 * len(cats) + 120), height=320, xcats=cats, ylabel=f"{metric} accuracy",
                  title=f"{'AUC' if metric == 'auc' else metric.capitalize()} accuracy by {comp.param} "
                        "(mean, 95% t-interval; dots: trials)",
                  ylim=(0, None))
    done = data.done[data.done[comp.param].notna()]
    for j, arm in enumerate(arms):
        col, shape = color(j), MARKERS[j % len(MARKERS)]
        for r in t[t["arm"].astype(str) == arm].to_dict("records"):
            ctx = ctx_of(r)
            x = cats.index(f"{ctx} · {arm}" if ctx else arm)
            title = (f"{comp.param} {arm}{', ' + ctx if ctx else ''}: mean {metric} {fmt(plain(r[f'mean {metric}']))} "
                     f"over {r['n']} trial(s), 95% t [{fmt(plain(r['ci low']))}, {fmt(plain(r['ci high']))}]")
            chart.errorbars([x - 0.08], [plain(r[f"mean {metric}"])], [plain(r["ci low"])], [plain(r["ci high"])], col,
                            shape=shape, size=5.5, titles=[title])
            members = done[[arm_label(comp.param, v) == arm for v in done[comp.param]]]
            for c in comp.context:
                members = members[members[c].map(lambda v, c=c, r=r: str(plain(v)) == str(plain(r[c])))]
            peaks = [(plain(p), row) for p, row in zip(members[column], members.to_dict("records"))
                     if plain(p) is not None]
            chart.points([x + 0.12 + _jitter(row["number"]) * 0.25 for _, row in peaks], [p for p, _ in peaks], col,
                         shape="circle", size=2.8, opacity=0.6,
                         titles=[_trial_name(row, data.params) + f": {metric} {fmt(p)}" for p, row in peaks])
    return figure(chart.render())


def _axis_values(data: StudyData, done: pd.DataFrame, name: str) -> tuple[list[float | None], list[str] | None]:
    """Positions in [0, 1] of each completed trial on one axis, and the category labels (None when numeric)."""
    values = [plain(v) for v in done[name]]
    categorical = name in data.categorical or not all(isinstance(v, (int, float)) for v in values if v is not None)
    if categorical:
        present = {str(v) for v in values if v is not None}
        listed = [str(c) for c in data.values.get(name, []) if str(c) in present]
        levels = listed + sorted(present - set(listed), key=lambda s: (0, float(s), s) if _isnum(s) else (1, 0.0, s))
        pos = {lv: (i / (len(levels) - 1) if len(levels) > 1 else 0.5) for i, lv in enumerate(levels)}
        return [pos[str(v)] if v is not None else None for v in values], levels
    nums = [float(v) for v in values if v is not None]
    lo, hi = (min(nums), max(nums)) if nums else (0.0, 1.0)
    span = (hi - lo) or 1.0
    return [(float(v) - lo) / span if v is not None else None for v in values], [fmt(lo), fmt(hi)] if nums else None


def _isnum(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def parallel_figure(data: StudyData) -> str | None:
    """Parallel coordinates: one vertical axis per parameter and objective, one line per completed
    trial, coloured by the first objective (light: low, dark: high); hover names the trial."""
    done = data.done
    axes = [p for p in data.params if p in done and done[p].notna().any()] + \
           [o for o in data.objectives if o in done and done[o].notna().any()]
    if len(done) == 0 or len(axes) < 2:
        return None
    width, height, top, bottom, left, right = max(640, 170 * len(axes)), 350, 56, 310, 70, 90
    xs = [left + i * (width - left - right) / (len(axes) - 1) for i in range(len(axes))]
    cols = {a: _axis_values(data, done, a) for a in axes}
    obj = data.objectives[0]
    ovals = [plain(v) for v in done[obj]] if obj in done else []
    onum = [v for v in ovals if isinstance(v, (int, float))]
    olo, ohi = (min(onum), max(onum)) if onum else (0.0, 1.0)
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="parallel coordinates">',
           f'<text x="8" y="17" font-size="13" font-weight="600" fill="#222">Every completed trial '
           f'(colour: {esc_attr(_named(data, obj))}, darker is higher)</text>']
    records = done.to_dict("records")
    order = sorted(range(len(records)), key=lambda i: ovals[i] if isinstance(ovals[i], (int, float)) else -math.inf)
    for i in order:
        pts = [(x, cols[a][0][i]) for x, a in zip(xs, axes)]
        if any(p is None for _, p in pts):
            continue
        share = (ovals[i] - olo) / ((ohi - olo) or 1.0) if isinstance(ovals[i], (int, float)) else 0.0
        path = "L".join(f"{x:.1f},{bottom - p * (bottom - top):.1f}" for x, p in pts)
        title = _trial_name(records[i], data.params) + ", " + ", ".join(
            f"{o} {fmt(plain(records[i].get(o)))}" for o in data.objectives)
        out.append(f'<path d="M{path}" fill="none" stroke="{_ramp(share)}" stroke-width="2" opacity="0.8">'
                   f"<title>{esc_attr(title)}</title></path>")
    for x, a in zip(xs, axes):
        labels = cols[a][1]
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" stroke="#444" stroke-width="1.2"/>'
                   f'<text x="{x:.1f}" y="{top - 14}" font-size="11" font-weight="600" text-anchor="middle" '
                   f'fill="#222">{esc_attr(cap(_named(data, a), 24))}</text>')
        if labels and a in data.categorical or (labels and not _numeric_axis(data, done, a)):
            for j, lv in enumerate(labels):
                p = j / (len(labels) - 1) if len(labels) > 1 else 0.5
                out.append(f'<text x="{x + 5:.1f}" y="{bottom - p * (bottom - top) + 3:.1f}" font-size="10" '
                           f'fill="#333">{esc_attr(cap(lv, 16))}</text>')
        elif labels:
            out.append(f'<text x="{x + 5:.1f}" y="{bottom + 3}" font-size="10" fill="#333">{esc_attr(labels[0])}</text>'
                       f'<text x="{x + 5:.1f}" y="{top + 3}" font-size="10" fill="#333">{esc_attr(labels[1])}</text>')
    out.append("</svg>")
    return figure("".join(out))


def _numeric_axis(data: StudyData, done: pd.DataFrame, name: str) -> bool:
    return name not in data.categorical and all(isinstance(plain(v), (int, float)) for v in done[name] if plain(v) is not None)


def _ramp(share: float) -> str:
    """Light yellow-green to dark blue.

    >>> _ramp(0.0), _ramp(1.0)
    ('#c7e9b4', '#253494')
    """
    a, b = (0xC7, 0xE9, 0xB4), (0x25, 0x34, 0x94)
    share = min(max(share, 0.0), 1.0)
    return "#" + "".join(f"{int(round(x + (y - x) * share)):02x}" for x, y in zip(a, b))


def _named(data: StudyData, objective: str) -> str:
    """An objective column as the page names it: its alias where ``harness sweep`` recorded one.

    >>> d = StudyData("s", "x", ["maximize"] * 2, ["values_0", "values_1"], [], pd.DataFrame(),
    ...               objective_aliases=["peak", "collapse_step"])
    >>> _named(d, "values_1"), _named(d, "other")
    ('collapse_step', 'other')
    """
    aliases = dict(zip(data.objectives, data.objective_aliases or []))
    return aliases.get(objective) or objective


def _named_keys(data: StudyData, by_objective: dict[str, Any]) -> dict[str, Any]:
    """``by_objective`` keyed by what each objective measures (:func:`_named`)."""
    return {_named(data, k): v for k, v in by_objective.items()}


def pareto_figure(data: StudyData) -> str | None:
    """The first two objectives of every completed trial, the Pareto front joined and highlighted; the
    caption says how many front trials share a point (ties draw on top of each other)."""
    if len(data.objectives) < 2 or data.best.empty:
        return None
    o0, o1 = data.objectives[:2]
    n0, n1 = _named(data, o0), _named(data, o1)
    done = data.done
    chart = Chart(width=560, height=360, title=f"Pareto front ({n0} vs {n1})", xlabel=n0, ylabel=n1)
    front = set(data.best["number"])
    rest = [r for r in done.to_dict("records") if r["number"] not in front]
    chart.points([r[o0] for r in rest], [r[o1] for r in rest], "#bbb", size=4,
                 titles=[_trial_name(r, data.params) + f": {n0} {fmt(r[o0])}, {n1} {fmt(r[o1])}" for r in rest])
    best = sorted(data.best.to_dict("records"), key=lambda r: (r[o0], r[o1]))
    chart.line([r[o0] for r in best], [r[o1] for r in best], color(3), width=1.5, dash="5 3")
    chart.points([r[o0] for r in best], [r[o1] for r in best], color(3), shape="diamond", size=5,
                 titles=[_trial_name(r, data.params) + f": {n0} {fmt(r[o0])}, {n1} {fmt(r[o1])} (Pareto-optimal)"
                         for r in best])
    points: dict[tuple, list[int]] = {}
    for r in best:
        points.setdefault((plain(r[o0]), plain(r[o1])), []).append(int(r["number"]))
    ties = [f"trials {', '.join(map(str, ns))} share ({fmt(a)}, {fmt(b)})" for (a, b), ns in points.items() if len(ns) > 1]
    caption = (f"Directions: {', '.join(f'{_named(data, o)} {d}' for o, d in zip(data.objectives, data.directions))}; "
               "diamonds: trials no other trial beats on every objective"
               + (f"; {'; '.join(ties)} (drawn on top of each other)" if ties else "") + ".")
    if n1 == "collapse_step":
        caption += " A trial that did not collapse counts one step past its last step."
    return figure(chart.render(), caption)


def scatter_figure(data: StudyData) -> str | None:
    """Each objective against each parameter; categorical parameters and the seed on categorical axes."""
    done = data.done
    pairs = [(o, p) for o in data.objectives for p in data.params if p in done and done[p].notna().any()]
    if done.empty or not pairs:
        return None
    charts = []
    for obj, param in pairs:
        rows = [r for r in done.to_dict("records") if r.get(param) is not None and plain(r.get(obj)) is not None]
        titles = [_trial_name(r, data.params) + f": {_named(data, obj)} {fmt(plain(r[obj]))}" for r in rows]
        ys = [float(plain(r[obj])) for r in rows]
        if _numeric_axis(data, done, param):
            chart = Chart(width=330, height=250, title=f"{_named(data, obj)} vs {param}", xlabel=param, left=48)
            chart.points([float(plain(r[param])) for r in rows], ys, color(0), size=3.5, titles=titles, opacity=0.8)
        else:
            levels = _axis_values(data, done, param)[1] or []
            chart = Chart(width=330, height=250, title=f"{_named(data, obj)} vs {param}", xlabel=param, xcats=levels, left=48)
            xs = [levels.index(str(plain(r[param]))) + _jitter(r["number"]) for r in rows]
            chart.points(xs, ys, color(0), size=3.5, titles=titles, opacity=0.8)
        charts.append(figure(chart.render()))
    return figures(charts)


def _jitter(number: Any) -> float:
    """A small deterministic horizontal offset per trial, so equal values stay visible."""
    h = int(hashlib.sha1(str(number).encode()).hexdigest()[:6], 16) / 0xFFFFFF
    return (h - 0.5) * 0.3


def importance_figure(importances: dict[str, dict[str, float]]) -> str | None:
    """Bars of each objective's parameter importances."""
    if not importances:
        return None
    charts = []
    for name, imp in importances.items():
        params = list(imp)
        chart = Chart(width=max(320, 90 * len(params) + 80), height=260, title=f"importance for {name} (fANOVA)",
                      xcats=params, ylim=(0, 1))
        chart.bars(list(range(len(params))), list(imp.values()), color(0), width=0.6,
                   titles=[f"{p}: {v:.3f}" for p, v in imp.items()])
        charts.append(figure(chart.render()))
    return figures(charts)


# ---------------------------------------------------------------- page


def _cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as a plain Python value (numpy scalars and NaN converted)."""
    return frame.apply(lambda col: col.map(plain)) if not frame.empty else frame


def _missing(text: str) -> str:
    return note(text)


def pooled_params(data: StudyData, comp: Comparison) -> list[str]:
    """Parameters that vary among the completed trials but define no row of ``comp`` (nor are the seed)."""
    done = data.done
    fixed = {comp.param, *comp.context, "seed"}
    return [p for p in data.params if p not in fixed and p in done and done[p].dropna().astype(str).nunique() > 1]


def ranking_parts(data: StudyData) -> list[str]:
    """The best trial against the next ones, paired on the held-out questions (:mod:`harness.stats.ranking`)."""
    r = data.ranking
    if not r:
        return []
    parts = [f"<h3>Best vs the next trials, paired on the held-out questions ({esc(r['objective'])})</h3>"]
    parts += [note(n) for n in data.best_notes]
    if r.get("rows"):
        shown = [[*row[:3], format_p(row[3]), format_p(row[4]), *row[5:]] for row in r["rows"]]
        parts.append(table(RANKING_HEADER, shown, left=1))
    parts.append(note("Each row: the best trial's score minus this trial's, question by question, on the objective "
                      "itself; 95% bootstrap interval over questions; p: McNemar's exact test (peak, final) or a "
                      "sign-flip permutation test (auc), then Holm-adjusted for the number of rows (the verdict uses "
                      "the adjusted p at 5%). These intervals count the eval's question sampling only: each "
                      "configuration ran one training seed, whose run-to-run variation is often larger, and the best "
                      "was picked because it scored highest, so its lead is if anything overstated."))
    if r.get("skipped"):
        parts.append(note("Not compared: " + "; ".join(f"trial {k}: {v}" for k, v in r["skipped"].items()), "warn"))
    return parts


def main_figures(data: StudyData) -> dict[str, Any]:
    """The figures the page and ``--svg`` share, built once: ``curves`` ((figures, legend) or None),
    ``pareto``, ``importance`` and ``parallel`` (HTML fragments or None)."""
    return {"curves": curves_figure(data),
            "pareto": pareto_figure(data) if len(data.directions) > 1 else None,
            "importance": importance_figure(_named_keys(data, data.importances)),
            "parallel": parallel_figure(data)}


def render_study_html(data: StudyData, figs: dict[str, Any] | None = None) -> str:
    """The complete page for a collected study, as one HTML string (``figs``: :func:`main_figures`)."""
    figs = figs if figs is not None else main_figures(data)
    title = f"Study report: {data.name}"
    aliases = data.objective_aliases or [""] * len(data.objectives)
    objs = ", ".join(f"{o} ({d}" + (f"; the ablation's objective: {a})" if a and a != o else ")")
                     for o, d, a in zip(data.objectives, data.directions, aliases))
    states = ", ".join(f"{k}: {v}" for k, v in sorted(data.states.items())) or "no trials"
    if data.duplicates:
        states += (f" ({data.duplicates} of the pruned: proposed again with the configuration of an earlier trial, "
                   "not run again and in no table)")
    multi = len(data.directions) > 1
    best_title = "Pareto front" if multi else f"Best trials (top {TOP_N})"
    sections: list[tuple[str, str, list[str]]] = []
    best = [note(w, "warn") for w in data.best_warnings]
    named = {o: f"{_named(data, o)} (objective)" for o in data.objectives if _named(data, o) != o}
    best.append(frame_table(_cells(data.best.rename(columns=named))) if not data.best.empty
                else _missing("No completed trials."))
    if multi:
        best.append(figs["pareto"] or "")
    best += ranking_parts(data)
    sections.append(("best", best_title, best))
    curves = figs["curves"]
    sections.append(("curves", "Accuracy curves", [curves[1], curves[0]] if curves else
                     [_missing("No trial has a curve.csv yet.")]))
    for comp in data.comparisons:
        parts = [note(f"Completed trials by {comp.param}"
                      + (f" (retry: {comp.param} > 0, baseline: = 0)" if comp.param == "reward.retry" else "")
                      + (f", within each {', '.join(comp.context)}" if comp.context else "")
                      + f". Compared on {comp.metric}"
                      + (" (the study's objective)" if comp.metric != "peak" else "")
                      + "; CI: 95% Student-t interval of the mean over the row's trials (none for n = 1)"
                      + (f". Each row pools trials that differ in {', '.join(pooled)}, so its interval spans "
                         "those settings as well as seeds: a difference between rows can come from them"
                         if (pooled := pooled_params(data, comp)) else ", which differ only in their seed")
                      + "; the collapse step is averaged over the trials that collapsed."),
                 frame_table(_cells(comp.table), left=len(comp.context) + 1)]
        fig = comparison_figure(data, comp)
        if fig:
            parts.append(fig)
        if comp.paired:
            parts += ["<h3>Paired by seed</h3>", table(paired_header(comp.metric), comp.paired, left=3),
                      note("Differences within each seed, averaged; an interval that contains 0 is not significant. "
                           "With 2–3 seeds only a large difference can show.")]
        sections.append((f"comparison-{comp.param}", f"Comparison: {comp.param}", parts))
    parallel = figs["parallel"]
    sections.append(("parallel", "Parallel coordinates", [parallel] if parallel else [_missing("No completed trials.")]))
    scatter = scatter_figure(data)
    sections.append(("params", "Parameters vs objective", [scatter] if scatter else [_missing("No completed trials.")]))
    importance = [note(w, "warn") for w in data.warnings] + [figs["importance"] or ""]
    importance += [note(n) for n in data.notes]
    sections.append(("importance", "Parameter importances", importance))
    sections.append(("failed", "Failed trials", [frame_table(_cells(data.failed)) if not data.failed.empty
                                                 else _missing("None.")]))
    nav = "<nav>" + "".join(f'<a href="#{esc_attr(sid)}">{esc(name)}</a>' for sid, name, _ in sections) + "</nav>"
    body = [f"<h1>{esc(title)}</h1>", generated_line([data.storage]),
            f"<p><b>Objectives:</b> {esc(objs)}<br><b>Trials by state:</b> {esc(states)}<br>"
            f"<b>Parameters:</b> {esc(', '.join(data.params) or 'none')}</p>", nav]
    for sid, name, parts in sections:
        body.append(f'<h2 id="{esc_attr(sid)}">{esc(name)}</h2>')
        body += parts
    if not data.trials.empty:
        body.append(f"<details><summary>All {len(data.trials)} trials</summary>{frame_table(_cells(data.trials))}</details>")
    return page(title, body)


def study_figures(data: StudyData, figs: dict[str, Any] | None = None) -> dict[str, str]:
    """The report's main figures as standalone SVG documents, by file name: ``curves.svg``, ``pareto.svg``
    (multi-objective), ``importance.svg`` and ``parallel.svg``, where the study has them; a figure with
    several panels (curves by a second arm, importances of two objectives) gives ``NAME_2.svg``, ...
    (the curves' legend is HTML and stays in the page)."""
    figs = figs if figs is not None else main_figures(data)
    fragments = {**figs, "curves": figs["curves"][0] if figs["curves"] else None}
    out = {}
    for name, fragment in fragments.items():
        for i, text in enumerate(standalone_svgs(fragment) if fragment else []):
            out[f"{name}.svg" if i == 0 else f"{name}_{i + 1}.svg"] = text
    return out


def write_study_report(study_dir: Path, storage: str | None = None, study_name: str | None = None,
                       output: Path | None = None, svg_dir: Path | None = None) -> Path:
    """Render the study report and write it atomically (default ``study_dir/report.html``); with
    ``svg_dir``, also its main figures as standalone SVG files (:func:`study_figures`)."""
    study_dir = Path(study_dir)
    storage = storage or f"sqlite:///{(study_dir / 'study.db').resolve()}"
    output = Path(output) if output else study_dir / "report.html"
    data = collect(storage, study_name)
    figs = main_figures(data)
    atomic_write_bytes(output, render_study_html(data, figs).encode("utf-8", errors="replace"))
    if svg_dir is not None:
        Path(svg_dir).mkdir(parents=True, exist_ok=True)
        for name, text in study_figures(data, figs).items():
            atomic_write_bytes(Path(svg_dir) / name, text.encode("utf-8"))
    return output
