"""The run report's figures, drawn with seaborn and matplotlib (:mod:`harness.report.plot`); every
point has hover text.

Evaluation runs: accuracy with its interval per policy and noise level; persistence, recovery,
wasted retries and premature answers side by side; the distribution of searches per episode.
Training runs: accuracy by step (interval band, peak star, collapse line, faults on the top edge),
reward components, retry-aware metrics and leading indicators by step, and seed aggregates (mean
with a Student-t band across seeds, each seed drawn thin).

Each function returns a :class:`~harness.report.plot.Plot` (or None when there is nothing to draw);
the report puts ``plot.html()`` in the page and ``harness report --figures DIR`` saves the same plots.
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

from harness.core.numbers import finite
from harness.report.page import fmt, fmt_interval
from harness.report.plot import GREY, Plot, handle, integer_steps, linestyle, series_style, short, style
from harness.report.tables import Column
from harness.stats.intervals import t_interval, wilson

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


def _rate_axes(plot: Plot, ax: Any, cols: Sequence[Column], key: str, n_key: str | None) -> None:
    """A rate per policy (x) and noise level (colour and marker) with its Wilson interval."""
    policies, noises = _policy_axis(cols)
    k = len(noises)
    for j, noise in enumerate(noises):
        col, mark, _ = series_style(j)
        xs, ys, lo, hi, tips = [], [], [], [], []
        for c in cols:
            if c.noise != noise:
                continue
            value, n = c.metrics.get(key), c.metrics.get(n_key or "n")
            name = " / ".join(x for x in (c.run, c.policy) if x)
            x = policies.index(name) + (j - (k - 1) / 2) * min(0.22, 0.7 / k)
            if not finite(value):
                ax.text(x, 0.02, "n/a", color=col, fontsize="small", ha="center", va="bottom", rotation=90)
                continue
            ci = wilson(round(value * n), n) if finite(n) and n > 0 else None
            count = f" ({round(value * n)}/{n})" if finite(n) and n else ""
            interval = f", 95% CI {fmt_interval(*ci)}" if ci else ""
            xs.append(x)
            ys.append(value)
            lo.append(value - ci[0] if ci else math.nan)
            hi.append(ci[1] - value if ci else math.nan)
            tips.append(f"{name}, {noise}: {key} {fmt(value)}{count}{interval}")
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="none", ecolor=col, elinewidth=1.5, capsize=3.5, zorder=2)
            points = ax.scatter(xs, ys, color=col, marker=mark, s=42, edgecolor="#222", linewidth=0.6, zorder=3,
                                label=noise)
            plot.link(points, tips)
    labels = [short(p, 44).replace(" / ", "\n") for p in policies]
    ax.set_xticks(range(len(policies)), labels)
    longest = max(len(line) for label in labels for line in label.split("\n"))
    if longest * 0.07 > ax.get_figure().get_figwidth() / len(plot.axes[:4]) / max(len(policies), 1):
        ax.tick_params(axis="x", labelrotation=30)  # too long to stand side by side
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    ax.set_xlim(-0.5, len(policies) - 0.5)
    ax.set_ylim(-0.03, 1.03)


def _noise_legend(plot: Plot, cols: Sequence[Column]) -> None:
    _, noises = _policy_axis(cols)
    plot.legend([handle(col, mark, None, n, markersize=6) for j, n in enumerate(noises)
                 for col, mark, _ in [series_style(j)]])


def accuracy_figure(cols: Sequence[Column]) -> Plot:
    """Accuracy with its 95% Wilson interval per policy and noise level."""
    with style():
        plot = Plot("accuracy", "Accuracy per policy and noise level",
                    max(5.6, 1.35 * len(_policy_axis(cols)[0]) + 1.6), 3.3)
        _rate_axes(plot, plot.ax, cols, "accuracy", "n")
        plot.heading("Accuracy per policy and noise level (95% Wilson interval)")
        plot.ax.set_ylabel("accuracy")
        _noise_legend(plot, cols)
    return plot


def retry_figure(cols: Sequence[Column]) -> Plot:
    """Persistence, recovery, wasted retries and premature answers, one panel each, side by side."""
    width = max(2.6, 0.75 * len(_policy_axis(cols)[0]) + 0.55)
    ncols = next(n for n in (4, 2, 1) if n * width + 0.6 <= 12.2 or n == 1)  # the page is about 12 inches wide
    with style():
        plot = Plot("retry", "Retry behaviour: persistence, recovery, wasted retries, premature answers",
                    ncols * width + 0.6, 2.9 * (4 // ncols) + 0.3, nrows=4 // ncols, ncols=ncols, sharey=True)
        for ax, (key, n_key, meaning) in zip(plot.axes, RETRY_PANELS):
            _rate_axes(plot, ax, cols, key, n_key)
            ax.set_title(key.replace("_", " "))
            ax.set_xlabel(f"P({meaning})", fontsize="small")
            ax.tick_params(axis="x", labelsize="small")
        _noise_legend(plot, cols)
    return plot


def searches_figure(cols: Sequence[Column]) -> Plot | None:
    """Distribution of searches per episode: one row per policy and noise level, one column per count,
    shaded by the cell's share of its row."""
    import numpy as np
    import seaborn as sns
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    hists = [(c, c.metrics.get("searches_hist")) for c in cols]
    hists = [(c, h) for c, h in hists if isinstance(h, dict) and h]
    if not hists:
        return None
    top = max((int(k) for _, h in hists for k in h if str(k).isdigit()), default=0)
    rows = [" / ".join(x for x in (c.run, c.policy, c.noise) if x) for c, _ in hists]
    counts = np.array([[int(h.get(str(i), 0) or 0) for i in range(top + 1)] for _, h in hists])
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    with style():
        plot = Plot("searches", "Searches per episode", min(11.5, 3.2 + 0.34 * (top + 1)), 1.2 + 0.3 * len(rows))
        ax = plot.ax
        sns.heatmap(shares, ax=ax, mask=counts == 0, cmap="Blues", vmin=0, vmax=1, linewidths=0.8, linecolor="white",
                    annot=np.where(counts > 0, counts.astype(str), ""), fmt="", annot_kws={"fontsize": "small"},
                    cbar_kws={"label": "share of the row", "shrink": 0.9},
                    xticklabels=[str(i) for i in range(top + 1)], yticklabels=[short(r, 60) for r in rows])
        cells = [(i, j) for i in range(len(rows)) for j in range(top + 1)]
        hover = PatchCollection([Rectangle((j, i), 1, 1) for i, j in cells], facecolor=(0, 0, 0, 0), edgecolor="none")
        ax.add_collection(hover)
        plot.link(hover, [f"{rows[i]}: {counts[i, j]} episode(s) with {j} searches ({shares[i, j]:.0%})"
                          for i, j in cells])
        plot.heading("Searches per episode (episodes per count; shade: share of the row)")
        ax.set_xlabel("searches in the episode")
        ax.tick_params(axis="both", rotation=0)
        ax.grid(False)
    return plot


# ---------------------------------------------------------------- training runs


def _eval_rows(run: Any, column: str = "accuracy") -> Any:
    return run.curve[run.curve[column].notna()] if run.curve is not None and column in run.curve else None


def accuracy_band(rows: Any) -> tuple[list[Any], list[Any]]:
    """The 95% interval of each eval's accuracy: Wilson from the eval size when the curve has an ``n``
    column (as every interval of the report), else the curve's own ``accuracy_ci_low/high``; empty
    lists when neither is there."""
    if "n" in rows and rows["n"].notna().any():
        cis = [wilson(round(a * n), n) if finite(n) and n > 0 else None for a, n in zip(rows["accuracy"], rows["n"])]
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


def _reported_rows(run: Any) -> Any:
    """The curve rows where the reported split was evaluated, when it is not the selection split; else None."""
    curve, rec = run.curve, run.record
    if curve is None or "test_accuracy" not in curve:
        return None
    if rec is not None and rec.peak is not None and rec.peak.optimistic:
        return None
    rows = curve[curve["test_accuracy"].notna()]
    return rows if len(rows) else None


def accuracy_by_step(runs: Sequence[Any]) -> Plot | None:
    """Accuracy by step per run: interval band (up to three runs), peak (star), collapse (dashed vertical),
    faults (triangles on the top edge); identical curves drawn slightly offset."""
    curved = [(i, r) for i, r in enumerate(runs) if _eval_rows(r) is not None and not _eval_rows(r).empty]
    if not curved:
        return None
    same = identical_groups([r for _, r in curved])
    span = max(float(r.curve["step"].max()) for _, r in curved) or 1.0
    dodge = {label: (k - (len(g) - 1) / 2) * span * 0.006 for g in same for k, label in enumerate(g)}
    note = " ".join(f"Runs {', '.join(g)} have identical accuracy curves (drawn slightly offset)." for g in same)
    with style():
        plot = Plot("accuracy_by_step", "Held-out accuracy by step", 9.4, 3.9, caption=note or None)
        ax, handles, xs_all = plot.ax, [], []
        for i, run in curved:
            col, mark, dash = series_style(i)
            rows, a, shift = _eval_rows(run), run.analysis or {}, dodge.get(run.label, 0.0)
            xs, ys = [s + shift for s in rows["step"]], rows["accuracy"].tolist()
            lo, hi = accuracy_band(rows)
            band = [(x, a_, b) for x, a_, b in zip(xs, lo, hi) if finite(a_) and finite(b)]
            if len(curved) <= 3 and len(band) > 1:
                ax.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band], color=col,
                                alpha=0.14, linewidth=0)
            ax.plot(xs, ys, color=col, linestyle=linestyle(dash), linewidth=1.8)
            n = rows["n"].tolist() if "n" in rows else [None] * len(rows)
            plot.link(ax.scatter(xs, ys, color=col, marker=mark, s=26, edgecolor="#222", linewidth=0.5, zorder=3),
                      [f"{run.label}: step {int(s)}, accuracy {fmt(v)}" + (f" (n={int(k)})" if finite(k) else "")
                       for s, v, k in zip(rows["step"], ys, n)])
            reported = _reported_rows(run)
            if reported is not None:
                xs_all += [s + shift for s in reported["step"]]
                plot.link(ax.scatter([s + shift for s in reported["step"]], reported["test_accuracy"], marker="o", s=46,
                                     facecolor="none", edgecolor=col, linewidth=1.3, zorder=3),
                          [f"{run.label}: reported split at step {int(s)}, accuracy {fmt(v)}"
                           for s, v in zip(reported["step"], reported["test_accuracy"])])
            if a.get("peak_step") is not None and a.get("peak_raw") is not None:
                plot.link(ax.scatter([a["peak_step"] + shift], [a["peak_raw"]], color=col, marker="*", s=190,
                                     edgecolor="#222", linewidth=0.6, zorder=4),
                          [f"{run.label}: peak {fmt(a['peak_raw'])} at step {a['peak_step']}"])
            if a.get("collapse_step") is not None:
                plot.link(ax.axvline(a["collapse_step"], color=col, linestyle=(0, (6, 3)), linewidth=1.4),
                          f"{run.label}: collapse at step {a['collapse_step']} (accuracy below "
                          f"{fmt(a.get('collapse_threshold'))} and staying)")
            if run.curve is not None and "rollback_to" in run.curve:
                for _, r in run.curve[run.curve["rollback_to"].notna()].iterrows():
                    plot.link(ax.axvline(float(r["step"]) + shift, color=col, linestyle=(0, (1, 2)), linewidth=1.6),
                              f"{run.label}: rollback at step {int(r['step'])} to step {int(r['rollback_to'])}"
                              + (f", learning rate x{fmt(r['lr_scale'])}" if "lr_scale" in run.curve else ""))
            faults = list(run.faults)
            if faults:
                plot.link(ax.scatter([float(f.step) for f in faults], [1.0] * len(faults), marker="v", s=60,
                                     color=col, edgecolor="#222", linewidth=0.6, transform=ax.get_xaxis_transform(),
                                     clip_on=False, zorder=5),
                          [f"{run.label}: {f.kind} at step {f.step}: {f.detail}" for f in faults])
            xs_all += xs + [float(f.step) for f in faults]
            handles.append(handle(col, mark, dash, run.label))
        handles += [handle(GREY, "*", None, "peak (selection split)", markersize=11),
                    handle(GREY, None, (6, 3), "collapse (dashed vertical)")]
        if any(_reported_rows(r) is not None for _, r in curved):
            handles.append(handle(GREY, "o", None, "reported split (test), where evaluated", markerfacecolor="none"))
        if any(r.faults for _, r in curved):
            handles.append(handle(GREY, "v", None, "fault (top edge; hover for details)"))
        if any(r.curve is not None and "rollback_to" in r.curve and r.curve["rollback_to"].notna().any()
               for _, r in curved):
            handles.append(handle(GREY, None, (1, 2), "rollback (dotted vertical)"))
        pad = (max(xs_all) - min(xs_all)) * 0.02 or 0.5
        ax.set_xlim(min(xs_all) - pad, max(xs_all) + pad)
        _accuracy_axes(plot, ax, "Held-out accuracy by step", handles)
    return plot


def panels_by_step(runs: Sequence[Any], columns: Sequence[str], name: str, title: str,
                   caption: str | None = None) -> Plot | None:
    """One small panel per logged column, runs overlaid (colour, marker and dash per run), collapse steps
    dashed; three panels a row; ``caption`` under the figure."""
    present = [c for c in columns if any(r.curve is not None and c in r.curve and r.curve[c].notna().any()
                                         for r in runs)]
    if not present:
        return None
    ncols = min(3, len(present))
    nrows = math.ceil(len(present) / ncols)
    several = len(runs) > 1
    with style():
        plot = Plot(name, title, 3.5 * ncols, 2.35 * nrows + (0.35 if several else 0), nrows=nrows, ncols=ncols,
                    caption=caption)
        for ax, column in zip(plot.axes, present):
            for i, run in enumerate(runs):
                rows = _eval_rows(run, column)
                if rows is None or rows.empty:
                    continue
                col, mark, dash = series_style(i)
                ax.plot(rows["step"], rows[column], color=col, linestyle=linestyle(dash), linewidth=1.4)
                if len(rows) <= 60:
                    plot.link(ax.scatter(rows["step"], rows[column], color=col, marker=mark, s=12, zorder=3,
                                         edgecolor="none"),
                              [f"{run.label}: step {int(s)}, {column} {fmt(v)}"
                               for s, v in zip(rows["step"], rows[column])])
                if run.analysis and run.analysis.get("collapse_step") is not None:
                    ax.axvline(run.analysis["collapse_step"], color=col, linestyle=(0, (6, 3)), linewidth=1.2)
            ax.set_title(column, fontsize="medium")
            ax.set_xlabel("step")
            integer_steps(ax)
        for ax in plot.axes[len(present):]:
            ax.set_visible(False)
        if several:
            plot.legend([handle(*series_style(i), r.label) for i, r in enumerate(runs)])
    return plot


def _t_band(values: Any) -> tuple[float, float]:
    """The 95% Student-t interval of a mean of accuracies, cut to [0, 1] (NaN for one value): seaborn's
    ``errorbar`` for the seed aggregate."""
    lo, hi = t_interval([float(v) for v in values])
    return (max(0.0, lo), min(1.0, hi)) if lo is not None else (math.nan, math.nan)


def seed_figure(groups: Sequence[tuple[str, Sequence[Any]]], name: str = "seeds") -> Plot | None:
    """Per group of seeds: thin per-seed curves, the mean at the steps every seed evaluated, and a 95%
    Student-t band across seeds (seaborn's ``lineplot`` with a t-interval ``errorbar``)."""
    import pandas as pd
    import seaborn as sns

    if not groups:
        return None
    with style():
        plot = Plot(name, "Accuracy by step across seeds", 9.4, 3.8)
        ax, handles, frames = plot.ax, [], []
        for g, (label, runs) in enumerate(groups):
            col, mark, dash = series_style(g)
            series = {}
            for run in runs:
                rows = _eval_rows(run)
                if rows is None:
                    continue
                series[run.seed] = dict(zip(rows["step"].tolist(), rows["accuracy"].tolist()))
                (line,) = ax.plot(rows["step"], rows["accuracy"], color=col, linewidth=0.9, alpha=0.55,
                                  linestyle=(0, (3, 2)))
                plot.link(line, f"{label}, seed {run.seed}")
            steps = sorted(set.intersection(*(set(s) for s in series.values()))) if series else []
            frames.append(pd.DataFrame([(label, seed, s, float(v[s])) for seed, v in series.items() for s in steps],
                                       columns=["group", "seed", "step", "accuracy"]))
            means, tips = [], []
            for s in steps:
                vals = [series[k][s] for k in series]
                lo, hi = t_interval(vals)
                means.append(sum(vals) / len(vals))
                tips.append(f"{label}, step {int(s)}: mean {fmt(means[-1])} over {len(vals)} seeds "
                            f"({', '.join(fmt(v) for v in vals)})"
                            + (f", 95% t {fmt_interval(lo, hi)}" if lo is not None else ""))
            if steps:
                plot.link(ax.scatter(steps, means, color=col, marker=mark, s=34, edgecolor="#222", linewidth=0.5,
                                     zorder=4), tips)
            handles.append(handle(col, mark, dash, f"{label} (mean of {len(series)} seeds)", linewidth=2.2))
        data = pd.concat(frames, ignore_index=True)
        if not data.empty:
            labels = [label for label, _ in groups]
            sns.lineplot(data=data, x="step", y="accuracy", hue="group", style="group", hue_order=labels,
                         style_order=labels, palette=[series_style(g)[0] for g in range(len(groups))],
                         dashes=[series_style(g)[2] for g in range(len(groups))], estimator="mean", errorbar=_t_band,
                         err_kws={"alpha": 0.15, "linewidth": 0}, linewidth=2.2, legend=False, ax=ax)
        handles.append(handle(GREY, None, (3, 2), "one seed", linewidth=0.9))
        _accuracy_axes(plot, ax, "Accuracy by step across seeds (mean, 95% t-band)", handles)
    return plot


def _accuracy_axes(plot: Plot, ax: Any, heading: str, handles: list) -> None:
    """The finish every accuracy-by-step figure shares: y from 0, whole steps, labels, heading, legend."""
    ax.set_ylim(bottom=0)
    integer_steps(ax)
    ax.set(xlabel="step", ylabel="accuracy")
    plot.heading(heading)
    plot.legend(handles)


def reward_columns(runs: Sequence[Any]) -> list[str]:
    """The ``reward_<name>_mean`` columns logged by any run."""
    return sorted({c for r in runs if r.curve is not None for c in r.curve.columns
                   if re.fullmatch(r"reward_.+_mean", str(c))})


def missing_reward_lines(runs: Sequence[Any], columns: Sequence[str]) -> str | None:
    """A sentence naming the runs that have no line in a reward panel, and why: a training run computes only
    the rewards its weights use, so a reward of weight 0 (the baseline's retry) is not in its curve.

    >>> class R:
    ...     def __init__(self, label, cols, weights):
    ...         import pandas as pd
    ...         self.label, self.curve = label, pd.DataFrame({c: [0.5] for c in cols})
    ...         self.record = type("Rec", (), {"reward_weights": weights})()
    >>> runs = [R("rezero", ["reward_retry_mean"], {"retry": 1.0}), R("baseline", [], {"retry": 0.0})]
    >>> missing_reward_lines(runs, ["reward_retry_mean"])
    'No line for baseline in reward_retry_mean: its weight is 0, so training did not compute it.'
    >>> missing_reward_lines(runs[:1], ["reward_retry_mean"]) is None
    True
    """
    parts = []
    for column in columns:
        reward = column.removeprefix("reward_").removesuffix("_mean")
        absent = [r for r in runs
                  if r.curve is not None and (column not in r.curve or not r.curve[column].notna().any())]
        if not absent:
            continue
        zero = [r.label for r in absent if r.record is not None and (r.record.reward_weights or {}).get(reward) == 0]
        other = [r.label for r in absent if r.label not in zero]
        why = []
        if zero:
            why.append(f"{', '.join(zero)} in {column}: {'its' if len(zero) == 1 else 'their'} weight is 0, so "
                       "training did not compute it")
        if other:
            why.append(f"{', '.join(other)} in {column}: not in {'its' if len(other) == 1 else 'their'} curve")
        parts += why
    return ("No line for " + "; no line for ".join(parts) + ".") if parts else None

