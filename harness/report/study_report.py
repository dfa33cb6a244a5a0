"""The study report: one self-contained HTML page summarising an Optuna sweep (``harness sweep``).

Sections (tables from :mod:`harness.report.study`): the header (objectives, directions, trials by
state, storage URL with the password masked); the best trials, or for a multi-objective study the
Pareto front with its figure, then the best trial against the next ones paired on the held-out
questions (and a warning when the objective is the same in every trial); every trial's accuracy
curve with peak and collapse marked; one comparison per arm parameter (e.g. ``preset: [rezero,
baseline]``) with its figure and the arms paired by seed; a parallel-coordinates figure of every
completed trial; each parameter against each objective (categorical parameters and seeds on
categorical axes); fANOVA importances, or a warning when there are too few trials for them; the
failed trials with their reasons.

Like :mod:`harness.report.run_report`, the page has inline CSS, figures drawn with seaborn and
matplotlib inlined as SVG with hover text (:mod:`harness.report.plot`), no script and a
Content-Security-Policy; every text from the study is escaped. ``harness report STUDY --figures DIR
--format svg|pdf|png`` also writes each figure as a file.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from harness.core.io import atomic_write_bytes, slug
from harness.core.numbers import finite, number
from harness.report.page import (
    esc,
    esc_attr,
    fmt,
    fmt_interval,
    frame_table,
    generated_line,
    note,
    page,
    table,
)
from harness.report.plot import (
    DASHES,
    GREY,
    Plot,
    color,
    handle,
    integer_steps,
    linestyle,
    save_all,
    series_style,
    short,
    style,
)
from harness.report.study import (
    TOP_N,
    Comparison,
    StudyData,
    arm_label,
    arm_params,
    collect,
    compared_metric,
    mask_url,
    overrides_text,
    paired_header,
    plain,
    study_summary,
)
from harness.stats.paired import format_p
from harness.stats.ranking import RANKING_HEADER

__all__ = ["main_figures", "mask_url", "render_study_html", "study_summary", "write_study_report"]


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


def _level_colour(levels: list[str], lv: str | None) -> tuple[int, str]:
    i = levels.index(lv) if lv in levels else len(levels)
    return i, color(i) if lv in levels else GREY


def curves_figure(data: StudyData) -> Plot | None:
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
    same = _identical_curves(curves)
    caption = " ".join(f"Trials {', '.join(map(str, g))} have identical curves (drawn on top of each other)."
                       for g in same)
    with style():
        plot = Plot("curves", "Held-out accuracy by step of every trial", 9.4 if len(panels) == 1 else
                    min(12.0, 4.6 * len(panels) + 2.4), 3.6, ncols=len(panels), sharey=True, caption=caption or None)
        for ax, pv in zip(plot.axes, panels):
            for row, curve in curves:
                if panel and arm_label(panel, row.get(panel)) != pv:
                    continue
                lv = arm_label(group, row.get(group)) if group and row.get(group) is not None else None
                i, col = _level_colour(levels, lv)
                rows = curve[curve["accuracy"].notna()]
                done = row["state"] == "COMPLETE"
                name = _trial_name(row, data.params) + ("" if done else f" ({row['state'].lower()})")
                (line,) = ax.plot(rows["step"], rows["accuracy"], color=col, linewidth=1.6, alpha=0.85,
                                  linestyle=linestyle(DASHES[i % len(DASHES)] if done else (2, 3)))
                plot.link(line, name)
                for key, marker, size in (("peak_step", "*", 150), ("collapse_step", "X", 70)):
                    step = plain(row.get(key))
                    at = rows[rows["step"] <= step] if step is not None else rows.iloc[0:0]
                    if len(at):
                        what = "peak" if key == "peak_step" else "collapse"
                        value = float(at["accuracy"].iloc[-1])
                        plot.link(ax.scatter([step], [value], color=col, marker=marker, s=size, edgecolor="#222",
                                             linewidth=0.5, zorder=4),
                                  [f"{name}: {what} at step {step} (accuracy {fmt(value)})"])
            ax.set(xlabel="step", ylabel="accuracy" if ax is plot.ax else None)
            ax.set_ylim(bottom=0)
            integer_steps(ax)
            if panel:
                ax.set_title(short(f"{panel} = {pv}", 50), fontsize="medium")
        handles = [handle(color(i), None, DASHES[i % len(DASHES)], f"{group} = {lv}") for i, lv in enumerate(levels)] \
            or [handle(GREY, None, "", "trial")]
        handles += [handle(GREY, "*", None, "peak", markersize=11), handle(GREY, "X", None, "collapse", markersize=8),
                    handle(GREY, None, (2, 3), "not completed")]
        plot.legend(handles)
        plot.heading("Held-out accuracy by step")
    return plot


def _identical_curves(curves: list[tuple[dict[str, Any], pd.DataFrame]]) -> list[list[int]]:
    """Trial numbers whose accuracy curves are identical, in groups of two or more."""
    seen: dict[tuple, list[int]] = {}
    for row, curve in curves:
        rows = curve[curve["accuracy"].notna()]
        key = tuple(zip(rows["step"].tolist(), [round(float(v), 9) for v in rows["accuracy"]]))
        seen.setdefault(key, []).append(row["number"])
    return [g for g in seen.values() if len(g) > 1]


def comparison_figure(data: StudyData, comp: Comparison) -> Plot | None:
    """Mean peak accuracy per arm with its 95% t-interval, and each trial's peak as a faint point beside
    it; the arms side by side within each combination of the other arm parameters."""
    if comp.table.empty:
        return None
    t = comp.table

    def ctx_of(r):
        return ", ".join(f"{k} {_pv(r[k])}" for k in comp.context)

    arms = list(dict.fromkeys(str(a) for a in t["arm"]))
    contexts = list(dict.fromkeys(ctx_of(r) for r in t.to_dict("records")))
    cats = [f"{c} · {a}" if c else a for c in contexts for a in arms]
    metric = comp.metric
    column = compared_metric(data)[0]
    done = data.done[data.done[comp.param].notna()]
    with style():
        plot = Plot(f"comparison_{slug(comp.param)}", f"{metric} accuracy by {comp.param}",
                    max(6.0, 1.15 * len(cats) + 1.5), 3.3)
        ax = plot.ax
        for j, arm in enumerate(arms):
            col, marker, _ = series_style(j)
            for r in t[t["arm"].astype(str) == arm].to_dict("records"):
                ctx = ctx_of(r)
                x = cats.index(f"{ctx} · {arm}" if ctx else arm)
                mean, lo, hi = plain(r[f"mean {metric}"]), plain(r["ci low"]), plain(r["ci high"])
                if finite(lo) and finite(hi) and finite(mean):
                    ax.errorbar([x - 0.08], [mean], yerr=[[mean - lo], [hi - mean]], fmt="none", ecolor=col,
                                elinewidth=1.6, capsize=4, zorder=2)
                if finite(mean):
                    plot.link(ax.scatter([x - 0.08], [mean], color=col, marker=marker, s=60, edgecolor="#222",
                                         linewidth=0.6, zorder=3),
                              [f"{comp.param} {arm}{', ' + ctx if ctx else ''}: mean {metric} {fmt(mean)} over "
                               f"{r['n']} trial(s), 95% t {fmt_interval(lo, hi)}"])
                members = done[[arm_label(comp.param, v) == arm for v in done[comp.param]]]
                for c in comp.context:
                    members = members[members[c].map(lambda v, c=c, r=r: str(plain(v)) == str(plain(r[c])))]
                peaks = [(plain(p), row) for p, row in zip(members[column], members.to_dict("records"))
                         if plain(p) is not None]
                if peaks:
                    plot.link(ax.scatter([x + 0.12 + _jitter(row["number"]) * 0.25 for _, row in peaks],
                                         [p for p, _ in peaks], color=col, s=14, alpha=0.6, edgecolor="none", zorder=3),
                              [_trial_name(row, data.params) + f": {metric} {fmt(p)}" for p, row in peaks])
        ax.set_xticks(range(len(cats)), [short(c, 40).replace(" · ", "\n") for c in cats])
        ax.set_xlim(-0.5, len(cats) - 0.5)
        ax.set_ylim(bottom=0)
        ax.set_ylabel(f"{metric} accuracy")
        plot.heading(f"{'AUC' if metric == 'auc' else metric.capitalize()} accuracy by {comp.param} "
                     "(mean, 95% t-interval; dots: trials)")
    return plot


def _axis_values(data: StudyData, done: pd.DataFrame, name: str) -> tuple[list[float | None], list[str] | None]:
    """Positions in [0, 1] of each completed trial on one axis, and the category labels (None when numeric)."""
    values = [plain(v) for v in done[name]]
    categorical = name in data.categorical or not all(isinstance(v, (int, float)) for v in values if v is not None)
    if categorical:
        present = {str(v) for v in values if v is not None}
        listed = [str(c) for c in data.values.get(name, []) if str(c) in present]
        levels = listed + sorted(present - set(listed),
                                 key=lambda s: (0, float(s), s) if number(s) is not None else (1, 0.0, s))
        pos = {lv: (i / (len(levels) - 1) if len(levels) > 1 else 0.5) for i, lv in enumerate(levels)}
        return [pos[str(v)] if v is not None else None for v in values], levels
    nums = [float(v) for v in values if v is not None]
    lo, hi = (min(nums), max(nums)) if nums else (0.0, 1.0)
    span = (hi - lo) or 1.0
    return [(float(v) - lo) / span if v is not None else None for v in values], [fmt(lo), fmt(hi)] if nums else None


def parallel_figure(data: StudyData) -> Plot | None:
    """Parallel coordinates: one vertical axis per parameter and objective, one line per completed
    trial, coloured by the first objective (viridis: dark is low, yellow is high); hover names the trial.
    seaborn has no such plot: the lines are matplotlib's, on a seaborn style."""
    import matplotlib as mpl

    done = data.done
    axes = [p for p in data.params if p in done and done[p].notna().any()] + \
           [o for o in data.objectives if o in done and done[o].notna().any()]
    if len(done) == 0 or len(axes) < 2:
        return None
    cols = {a: _axis_values(data, done, a) for a in axes}
    obj = data.objectives[0]
    ovals = [plain(v) for v in done[obj]] if obj in done else []
    onum = [v for v in ovals if isinstance(v, (int, float))]
    norm = mpl.colors.Normalize(*((min(onum), max(onum)) if onum and min(onum) < max(onum) else (0.0, 1.0)))
    cmap = mpl.colormaps["viridis"]
    records = done.to_dict("records")
    order = sorted(range(len(records)), key=lambda i: ovals[i] if isinstance(ovals[i], (int, float)) else -math.inf)
    with style():
        plot = Plot("parallel", "Parallel coordinates of every completed trial", max(7.0, 1.9 * len(axes) + 1.5), 3.7)
        ax = plot.ax
        for i in order:
            pts = [cols[a][0][i] for a in axes]
            if any(p is None for p in pts):
                continue
            shade = cmap(norm(ovals[i])) if isinstance(ovals[i], (int, float)) else GREY
            (line,) = ax.plot(range(len(axes)), pts, color=shade, linewidth=2, alpha=0.8)
            plot.link(line, _trial_name(records[i], data.params) + ", " + ", ".join(
                f"{o} {fmt(plain(records[i].get(o)))}" for o in data.objectives))
        for x, a in enumerate(axes):
            ax.axvline(x, color="#444", linewidth=1.2, zorder=1)
            labels = cols[a][1] or []
            if a in data.categorical or not _numeric_axis(data, done, a):
                ticks = [(j / (len(labels) - 1) if len(labels) > 1 else 0.5, lv) for j, lv in enumerate(labels)]
            else:
                ticks = list(zip((0.0, 1.0), labels))
            for y, lv in ticks:
                ax.text(x + 0.04, y, short(lv, 16), fontsize="small", va="center", ha="left",
                        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 1})
        ax.set_xticks(range(len(axes)), [short(_named(data, a), 24) for a in axes], fontweight="bold")
        ax.xaxis.set_ticks_position("top")
        ax.set_xlim(-0.15, len(axes) - 0.7)
        ax.set_ylim(-0.05, 1.05)
        ax.set_yticks([])
        ax.grid(False)
        ax.spines[:].set_visible(False)
        plot.fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=short(_named(data, obj), 30),
                          shrink=0.9)
        plot.heading(f"Every completed trial (colour: {short(_named(data, obj), 40)}, yellow is higher)")
    return plot


def _numeric_axis(data: StudyData, done: pd.DataFrame, name: str) -> bool:
    return name not in data.categorical and all(isinstance(plain(v), (int, float))
                                                for v in done[name] if plain(v) is not None)


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


def pareto_figure(data: StudyData) -> Plot | None:
    """The first two objectives of every completed trial, the Pareto front joined and highlighted; the
    caption says how many front trials share a point (ties draw on top of each other)."""
    if len(data.objectives) < 2 or data.best.empty:
        return None
    o0, o1 = data.objectives[:2]
    n0, n1 = _named(data, o0), _named(data, o1)
    front = set(data.best["number"])
    rest = [r for r in data.done.to_dict("records") if r["number"] not in front]
    best = sorted(data.best.to_dict("records"), key=lambda r: (r[o0], r[o1]))
    points: dict[tuple, list[int]] = {}
    for r in best:
        points.setdefault((plain(r[o0]), plain(r[o1])), []).append(int(r["number"]))
    ties = [f"trials {', '.join(map(str, ns))} share ({fmt(a)}, {fmt(b)})"
            for (a, b), ns in points.items() if len(ns) > 1]
    caption = (f"Directions: {', '.join(f'{_named(data, o)} {d}' for o, d in zip(data.objectives, data.directions))}; "
               "diamonds: trials no other trial beats on every objective"
               + (f"; {'; '.join(ties)} (drawn on top of each other)" if ties else "") + ".")
    if n1 == "collapse_step":
        caption += " A trial that did not collapse counts one step past its last step."
    with style():
        plot = Plot("pareto", f"Pareto front ({n0} vs {n1})", 6.4, 4.0, caption=caption)
        ax = plot.ax
        if rest:
            plot.link(ax.scatter([r[o0] for r in rest], [r[o1] for r in rest], color="#bbbbbb", s=30,
                                 edgecolor="#888", linewidth=0.5, label="other trials"),
                      [_trial_name(r, data.params) + f": {n0} {fmt(r[o0])}, {n1} {fmt(r[o1])}" for r in rest])
        ax.plot([r[o0] for r in best], [r[o1] for r in best], color=color(3), linewidth=1.5, linestyle=(0, (5, 3)))
        plot.link(ax.scatter([r[o0] for r in best], [r[o1] for r in best], color=color(3), marker="D", s=46,
                             edgecolor="#222", linewidth=0.6, zorder=3, label="Pareto front"),
                  [_trial_name(r, data.params) + f": {n0} {fmt(r[o0])}, {n1} {fmt(r[o1])} (Pareto-optimal)"
                   for r in best])
        ax.set(xlabel=short(n0, 40), ylabel=short(n1, 40))
        ax.legend(loc="best")
        plot.heading(f"Pareto front ({short(n0, 30)} vs {short(n1, 30)})")
    return plot


def scatter_figure(data: StudyData) -> Plot | None:
    """Each objective against each parameter (three panels a row); categorical parameters and the seed
    on categorical axes, equal values spread by a small fixed jitter."""
    import seaborn as sns

    done = data.done
    pairs = [(o, p) for o in data.objectives for p in data.params if p in done and done[p].notna().any()]
    if done.empty or not pairs:
        return None
    ncols = min(3, len(pairs))
    nrows = math.ceil(len(pairs) / ncols)
    with style():
        plot = Plot("params", "Each objective against each parameter", 3.5 * ncols, 2.7 * nrows, nrows=nrows,
                    ncols=ncols)
        for ax, (obj, param) in zip(plot.axes, pairs):
            rows = [r for r in done.to_dict("records") if r.get(param) is not None and plain(r.get(obj)) is not None]
            tips = [_trial_name(r, data.params) + f": {_named(data, obj)} {fmt(plain(r[obj]))}" for r in rows]
            ys = [float(plain(r[obj])) for r in rows]
            if _numeric_axis(data, done, param):
                xs = [float(plain(r[param])) for r in rows]
            else:
                levels = _axis_values(data, done, param)[1] or []
                xs = [levels.index(str(plain(r[param]))) + _jitter(r["number"]) for r in rows]
                ax.set_xticks(range(len(levels)), [short(lv, 14) for lv in levels])
                ax.set_xlim(-0.5, len(levels) - 0.5)
            sns.scatterplot(x=xs, y=ys, color=color(0), s=34, alpha=0.8, edgecolor="#222", linewidth=0.4, ax=ax)
            plot.link(ax.collections[-1], tips)
            ax.set_title(short(f"{_named(data, obj)} vs {param}", 40), fontsize="medium")
            ax.set_xlabel(short(param, 30))
        for ax in plot.axes[len(pairs):]:
            ax.set_visible(False)
    return plot


def _jitter(number: Any) -> float:
    """A small deterministic horizontal offset per trial, so equal values stay visible.

    >>> _jitter(3) == _jitter(3) and abs(_jitter(3)) <= 0.15
    True
    """
    h = int(hashlib.sha1(str(number).encode()).hexdigest()[:6], 16) / 0xFFFFFF
    return (h - 0.5) * 0.3


def importance_figure(importances: dict[str, dict[str, float]]) -> Plot | None:
    """Bars of each objective's parameter importances (fANOVA), one panel per objective."""
    import seaborn as sns

    if not importances:
        return None
    widest = max(len(imp) for imp in importances.values())
    with style():
        plot = Plot("importance", "Parameter importances (fANOVA)", len(importances) * max(3.4, 0.9 * widest + 1.2),
                    2.9, ncols=len(importances), sharey=True)
        for ax, (name, imp) in zip(plot.axes, importances.items()):
            params = [short(p, 20) for p in imp]
            sns.barplot(x=params, y=list(imp.values()), color=color(0), width=0.6, ax=ax)
            for bar, (p, v) in zip(ax.patches, imp.items()):
                plot.link(bar, f"{p}: {v:.3f}")
            ax.set_ylim(0, 1)
            ax.set_title(short(f"importance for {name} (fANOVA)", 50), fontsize="medium")
    return plot


# ---------------------------------------------------------------- page


def _cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as a plain Python value (numpy scalars and NaN converted); a step column's whole numbers as
    integers (a float column printed step 0 as "0.000" beside "50").

    >>> _cells(pd.DataFrame({"peak_step": [0.0, 50.0, None], "peak": [1.0, 0.5, 0.25]})).to_dict("list")
    {'peak_step': [0, 50, None], 'peak': [1.0, 0.5, 0.25]}
    """
    if frame.empty:
        return frame

    def step(v: Any) -> Any:
        if isinstance(v, float):
            return None if v != v else int(v) if v.is_integer() else v
        return v

    out = frame.apply(lambda col: col.map(plain))
    for name in out.columns:
        if name == "step" or str(name).endswith("_step"):
            out[name] = pd.Series([step(v) for v in out[name]], index=out.index, dtype=object)
    return out


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


def main_figures(data: StudyData) -> dict[str, Plot | None]:
    """Every figure of the page, built once, by name (the file stem of ``--figures DIR``): ``curves``,
    ``pareto`` (multi-objective), ``comparison_<param>`` per arm comparison, ``parallel``, ``params``
    (objectives against parameters) and ``importance``; None where the study has nothing to draw."""
    figs = {"curves": curves_figure(data),
            "pareto": pareto_figure(data) if len(data.directions) > 1 else None}
    for comp in data.comparisons:
        figs[f"comparison_{slug(comp.param)}"] = comparison_figure(data, comp)
    figs.update(parallel=parallel_figure(data), params=scatter_figure(data),
                importance=importance_figure(_named_keys(data, data.importances)))
    return figs


def _html(plot: Plot | None) -> str:
    return plot.html() if plot is not None else ""


def render_study_html(data: StudyData, figs: dict[str, Plot | None] | None = None) -> str:
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
    from harness.core.record import OPTIMISTIC
    from harness.report.protocol import protocol_html

    sections: list[tuple[str, str, list[str]]] = [("protocol", "Protocol", protocol_html(data.protocol, "trials"))]
    if data.selection is not None:
        sections[0][2].append(note(
            f"Objectives, pruning and the peak read the {data.selection} split; test_at_selected is the reported "
            f"split at each trial's selected step, the number to quote"
            + (f". Selected on {data.selection}: {OPTIMISTIC}." if data.optimistic else "."),
            "warn" if data.optimistic else "muted"))
    best = [note(w, "warn") for w in data.best_warnings]
    named = {o: f"{_named(data, o)} (objective)" for o in data.objectives if _named(data, o) != o}
    best.append(frame_table(_cells(data.best.rename(columns=named))) if not data.best.empty
                else _missing("No completed trials."))
    if multi:
        best.append(_html(figs["pareto"]))
    best += ranking_parts(data)
    sections.append(("best", best_title, best))
    curves = figs["curves"]
    sections.append(("curves", "Accuracy curves", [curves.html()] if curves else
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
        parts.append(_html(figs.get(f"comparison_{slug(comp.param)}")))
        if comp.paired:
            parts += ["<h3>Paired by seed</h3>", table(paired_header(comp.metric), comp.paired, left=3),
                      note("Differences within each seed, averaged; an interval that contains 0 is not significant. "
                           "With 2–3 seeds only a large difference can show.")]
        sections.append((f"comparison-{comp.param}", f"Comparison: {comp.param}", parts))
    for sid, name in (("parallel", "Parallel coordinates"), ("params", "Parameters vs objective")):
        sections.append((sid, name, [_html(figs[sid])] if figs[sid] else [_missing("No completed trials.")]))
    importance = [note(w, "warn") for w in data.warnings] + [_html(figs["importance"])]
    importance += [note(n) for n in data.notes]
    sections.append(("importance", "Parameter importances", importance))
    sections.append(("failed", "Failed trials", [frame_table(_cells(data.failed)) if not data.failed.empty
                                                 else _missing("None.")]))
    nav = "<nav>" + "".join(f'<a href="#{esc_attr(sid)}">{esc(name)}</a>' for sid, name, _ in sections) + "</nav>"
    overridden = overrides_text(data.overrides, len(data.trials))
    body = [f"<h1>{esc(title)}</h1>", generated_line([data.storage]),
            f"<p><b>Objectives:</b> {esc(objs)}<br><b>Trials by state:</b> {esc(states)}<br>"
            f"<b>Parameters:</b> {esc(', '.join(data.params) or 'none')}</p>",
            *([note(overridden, "warn")] if overridden else []), nav]
    for sid, name, parts in sections:
        body.append(f'<h2 id="{esc_attr(sid)}">{esc(name)}</h2>')
        body += parts
    if not data.trials.empty:
        body.append(f"<details><summary>All {len(data.trials)} trials</summary>"
                    f"{frame_table(_cells(data.trials))}</details>")
    return page(title, body)


def write_study_report(study_dir: Path, storage: str | None = None, study_name: str | None = None,
                       output: Path | None = None, figures_dir: Path | None = None, fmt: str = "svg",
                       data: StudyData | None = None) -> Path:
    """Render the study report and write it atomically (default ``study_dir/report.html``); with
    ``figures_dir``, also each of its figures as a standalone ``fmt`` file (svg, pdf or png) named as in
    :func:`main_figures`."""
    study_dir = Path(study_dir)
    storage = storage or f"sqlite:///{(study_dir / 'study.db').resolve()}"
    output = Path(output) if output else study_dir / "report.html"
    data = data if data is not None else collect(storage, study_name)
    figs = main_figures(data)
    atomic_write_bytes(output, render_study_html(data, figs).encode("utf-8", errors="replace"))
    if figures_dir is not None:
        save_all([p for p in figs.values() if p is not None], figures_dir, fmt)
    return output
