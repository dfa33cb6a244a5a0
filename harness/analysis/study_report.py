"""The study report: one self-contained HTML page summarising an Optuna sweep (``harness sweep``).

It reads the study from its RDB storage (``sqlite:///<study_dir>/study.db`` by default) and each
trial's ``curve.csv`` from the trial's ``run_dir`` attribute, and shows: the study header (objectives,
directions, counts by state, storage URL with the password masked), the best trials (top 10, or the
Pareto front of a multi-objective study), every trial's accuracy curve with peak and collapse
marked, parameter importances, parameter-vs-objective scatters, the retry-vs-baseline comparison
(when the study has a ``reward.retry`` parameter) and the failed trials with their reasons.

The comparison's 95% CI of mean peak accuracy is a Student-t interval across the seeds of a cell
(mean ± t(0.975, n−1)·sd/√n; none for n = 1). Like :mod:`harness.analysis.report`, the page has inline CSS,
base64 PNG figures, no script and a Content-Security-Policy; every text from the study is escaped.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from harness.analysis.report import CSS, _figure_uri, _fmt, _new_figure, _table
from harness.core.io import atomic_write_text

RETRY_PARAM, NOISE_PARAM = "reward.retry", "train_noise"
TOP_N = 10
ATTRS = ("peak", "peak_step", "collapse_step", "zero_step", "stopped", "run_dir")
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


# ---------------------------------------------------------------- loading


def mask_url(url: str) -> str:
    """The storage URL with any password replaced by ``***``.

    >>> mask_url("postgresql://me:s3cret@db:5432/optuna")
    'postgresql://me:***@db:5432/optuna'
    """
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: mask anything between ':' and '@' after the scheme
        import re

        return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


def resolve_study_name(storage: Any, study_name: str | None, where: str = "the storage") -> str:
    """``study_name``, or the only study in ``storage`` (a URL or an opened storage); a ValueError
    naming ``where`` lists the studies when that name is absent, or there are several or none."""
    import optuna

    names = optuna.study.get_all_study_names(storage=storage)
    if study_name is not None:
        if study_name not in names:
            raise ValueError(f"no study {study_name!r} in {where}; studies: {', '.join(names) or 'none'}")
        return study_name
    if len(names) != 1:
        raise ValueError(f"{where} holds {len(names)} studies ({', '.join(names) or 'none'}); "
                         "give study_name")
    return names[0]


def load_study(storage: str, study_name: str | None = None):
    """Load a study for reading (nothing is written); a missing SQLite file is a FileNotFoundError."""
    import optuna

    if storage.startswith("sqlite:///") and storage != "sqlite:///:memory:":
        path = Path(storage[len("sqlite:///"):])
        if not path.is_file():
            raise FileNotFoundError(f"no study database at {path}")
    rdb = optuna.storages.get_storage(storage)  # opened once: each opening checks the schema
    name = resolve_study_name(rdb, study_name, where=mask_url(storage))
    return optuna.load_study(study_name=name, storage=rdb)


def objective_names(study) -> list[str]:
    """The study's metric names, or ``value`` / ``value_0``, ``value_1``, ... when unnamed."""
    n = len(study.directions)
    names = getattr(study, "metric_names", None)
    return list(names) if names else (["value"] if n == 1 else [f"value_{i}" for i in range(n)])


def trials_frame(study) -> pd.DataFrame:
    """One row per trial: number, state, objective values, params (own columns), recorded attributes."""
    objectives = objective_names(study)
    rows = []
    for t in study.trials:
        values = t.values or [None] * len(objectives)
        row = {"number": t.number, "state": t.state.name, **dict(zip(objectives, values)), **t.params}
        row.update({k: t.user_attrs.get(k) for k in ATTRS})
        reason = t.user_attrs.get("fail_reason")
        row["fail_reason"] = reason if reason or t.state.name != "FAIL" else "(no reason recorded)"
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["number", "state"])


# ---------------------------------------------------------------- tables


@dataclass
class StudyData:
    """Everything the report and the JSON summary show, as plain frames."""

    name: str
    storage: str
    directions: list[str]
    objectives: list[str]
    params: list[str]
    trials: pd.DataFrame
    states: dict[str, int] = field(default_factory=dict)
    best: pd.DataFrame = field(default_factory=pd.DataFrame)
    comparison: pd.DataFrame = field(default_factory=pd.DataFrame)
    failed: pd.DataFrame = field(default_factory=pd.DataFrame)
    importances: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def best_trials(study, trials: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Top ``TOP_N`` complete trials by value (single objective) or the Pareto front (multi)."""
    if len(study.directions) > 1:
        numbers = [t.number for t in study.best_trials]
        return trials[trials["number"].isin(numbers)][columns].sort_values("number")
    done = trials[trials["state"] == "COMPLETE"]
    ascending = study.direction.name == "MINIMIZE"
    return done.sort_values("value", ascending=ascending).head(TOP_N)[columns]


# Student-t 97.5% quantiles for 1..30 degrees of freedom (two-sided 95%); scipy.stats is slow to import.
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)


def t975(df: int) -> float:
    """The 97.5% Student-t quantile: tabulated to 30 df, Cornish-Fisher expansion beyond.

    >>> t975(2), round(t975(60), 3), round(t975(120), 3)
    (4.303, 2.0, 1.98)
    """
    if df <= len(T975):
        return T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def t_interval(values: list[float]) -> tuple[float | None, float | None]:
    """95% Student-t confidence interval of the mean; (None, None) for fewer than two values.

    >>> [round(x, 4) for x in t_interval([0.4, 0.5, 0.6])]
    [0.2516, 0.7484]
    """
    n = len(values)
    if n < 2:
        return None, None
    mean = sum(values) / n
    half = t975(n - 1) * math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) / math.sqrt(n)
    return mean - half, mean + half


def retry_comparison(trials: pd.DataFrame) -> pd.DataFrame:
    """Completed trials grouped by retry arm (and train noise): mean peak with 95% t-CI, steps, n."""
    if RETRY_PARAM not in trials.columns:
        return pd.DataFrame()
    done = trials[(trials["state"] == "COMPLETE") & trials[RETRY_PARAM].notna()].copy()
    done["arm"] = ["retry" if float(v) > 0 else "baseline" for v in done[RETRY_PARAM]]
    keys = [NOISE_PARAM, "arm"] if NOISE_PARAM in done.columns else ["arm"]
    rows = []
    for key, cell in done.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        peaks = [float(p) for p in cell["peak"] if p is not None and not pd.isna(p)]
        low, high = t_interval(peaks)
        collapses = [float(c) for c in cell["collapse_step"] if c is not None and not pd.isna(c)]
        rows.append({**dict(zip(keys, key)), "n": len(cell),
                     "mean peak": sum(peaks) / len(peaks) if peaks else None, "ci low": low, "ci high": high,
                     "mean peak step": pd.to_numeric(cell["peak_step"], errors="coerce").mean(),
                     "mean collapse step": sum(collapses) / len(collapses) if collapses else None,
                     "collapsed": f"{len(collapses)}/{len(cell)}"})
    return pd.DataFrame(rows)


def param_importances(study, objectives: list[str]) -> tuple[dict[str, dict[str, float]], list[str]]:
    """fANOVA importances per objective, and notes for any that could not be computed."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    out, notes = {}, []
    for i, name in enumerate(objectives):
        try:
            target = None if len(objectives) == 1 else (lambda t, i=i: t.values[i])
            imp = optuna.importance.get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0),
                                                          target=target)
            out[name] = {k: float(v) for k, v in imp.items()}
        except Exception as err:  # too few trials, no varying parameter, ...
            notes.append(f"Importances for {name} unavailable: {err}")
    return out, notes


def collect(storage: str, study_name: str | None = None) -> StudyData:
    """Load the study and build every table of the report."""
    study = load_study(storage, study_name)
    trials, objectives = trials_frame(study), objective_names(study)
    params = sorted({p for t in study.trials for p in t.params})
    data = StudyData(study.study_name, mask_url(storage), [d.name.lower() for d in study.directions],
                     objectives, params, trials, states=trials["state"].value_counts().to_dict())
    shown = ["number", *objectives, *params, "peak", "peak_step", "collapse_step", "run_dir"]
    data.best = best_trials(study, trials, shown) if len(trials) else pd.DataFrame()
    data.comparison = retry_comparison(trials)
    if len(trials):
        data.failed = trials[trials["state"] == "FAIL"][["number", *params, "fail_reason", "run_dir"]]
    if (trials.get("state") == "COMPLETE").sum() >= 2:
        data.importances, data.notes = param_importances(study, objectives)
    else:
        data.notes.append("Importances need at least two completed trials.")
    return data


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-safe records: NaN becomes None, numpy scalars become Python numbers."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _plain(v: Any) -> Any:
    """A JSON-safe scalar."""
    if hasattr(v, "item"):
        v = v.item()
    return None if isinstance(v, float) and math.isnan(v) else v


def study_summary(storage: str, study_name: str | None = None) -> dict[str, Any]:
    """The report's tables as JSON-serialisable records (for ``harness sweep ... --json``)."""
    d = collect(storage, study_name)
    return {"study": d.name, "storage": d.storage, "directions": d.directions, "objectives": d.objectives,
            "states": {k: int(v) for k, v in d.states.items()}, "params": d.params,
            "best_kind": "pareto_front" if len(d.directions) > 1 else f"top_{TOP_N}",
            "best": _records(d.best), "comparison": _records(d.comparison),
            "comparison_ci": "95% Student-t interval across seeds", "importances": d.importances,
            "failed": _records(d.failed), "notes": d.notes}


# ---------------------------------------------------------------- figures


def _group_param(data: StudyData) -> str | None:
    """The colour grouping: ``reward.retry`` when present, else the first param with 2–10 values."""
    if RETRY_PARAM in data.params:
        return RETRY_PARAM
    return next((p for p in data.params if 2 <= data.trials[p].nunique() <= 10), None)


def curves_figure(data: StudyData) -> str | None:
    """Accuracy by step for every trial with a curve; star = peak, x = collapse; coloured by group,
    one panel per train noise level when there are many trials."""
    import seaborn as sns

    from harness.analysis.curves import load_curve

    curves = []
    for row in data.trials.to_dict("records"):
        try:
            curves.append((row, load_curve(Path(row["run_dir"]))))
        except (TypeError, OSError, ValueError):
            continue
    if not curves:
        return None
    group = _group_param(data)
    panel = NOISE_PARAM if NOISE_PARAM in data.params and NOISE_PARAM != group and len(curves) > 8 else None
    panels = _levels([row.get(panel) for row, _ in curves]) if panel else [None]
    levels = _levels([row.get(group) for row, _ in curves]) if group else [None]
    colors = dict(zip(levels, sns.color_palette("tab10", len(levels))))
    with sns.axes_style("whitegrid"):
        fig, axes = _new_figure(len(panels), height=3.6)
        for ax, pv in zip(axes, panels):
            for row, curve in curves:
                if panel and row.get(panel) != pv:
                    continue
                _plot_trial(ax, row, curve[curve["accuracy"].notna()], colors.get(row.get(group), "gray"))
            ax.set(xlabel="step", ylabel="accuracy", title=f"{panel} = {_fmt(pv)}" if panel else "All trials")
        top = max((float(c["accuracy"].max()) for _, c in curves if c["accuracy"].notna().any()), default=1.0)
        for ax in axes:  # one scale, so panels compare at a glance
            ax.set_ylim(0, max(top, 0.01) * 1.08)
        handles = [_line(colors[lv], f"{group} = {_fmt(lv)}" if group else "trial") for lv in levels]
        handles += [_line("gray", "peak", marker="*", ls="none"), _line("gray", "collapse", marker="X", ls="none")]
        fig.legend(handles=handles, fontsize=8, loc="outside right upper")
        fig.suptitle("Per-trial accuracy (dotted: not completed)")
        return _figure_uri(fig)


def _levels(values: list[Any]) -> list[Any]:
    """The distinct non-missing values, numbers in numeric order before anything else.

    >>> _levels([1.0, 0.25, None, "x", 10, 0.25])
    [0.25, 1.0, 10, 'x']
    """
    seen = {v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))}
    return sorted(seen, key=lambda v: (0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v)))


def _line(color: Any, label: str, marker: str | None = None, ls: str = "-"):
    """A legend handle."""
    from matplotlib.lines import Line2D

    return Line2D([], [], color=color, marker=marker, linestyle=ls, markersize=9, label=label)


def _plot_trial(ax: Any, row: dict[str, Any], rows: pd.DataFrame, color: Any) -> None:
    """One trial's curve with its recorded peak (star) and collapse (X) marked on it."""
    done = row["state"] == "COMPLETE"
    ax.plot(rows["step"], rows["accuracy"], color=color, alpha=0.8 if done else 0.5, linewidth=1.2,
            linestyle="-" if done else ":")
    for key, marker, size in (("peak_step", "*", 12), ("collapse_step", "X", 8)):
        step = row.get(key)
        at = rows[rows["step"] <= step] if step is not None and not pd.isna(step) else rows.iloc[0:0]
        if len(at):
            ax.plot([step], [at["accuracy"].iloc[-1]], marker=marker, markersize=size, color=color,
                    markeredgecolor="black", linestyle="none")


def scatter_figure(data: StudyData) -> str | None:
    """One panel per (objective, param): completed trials' objective value against the param."""
    import seaborn as sns

    done = data.trials[data.trials["state"] == "COMPLETE"]
    pairs = [(o, p) for o in data.objectives for p in data.params if done[p].notna().any()]
    if done.empty or not pairs:
        return None
    with sns.axes_style("whitegrid"):
        fig, axes = _new_figure(len(pairs), height=3.0)
        for ax, (obj, param) in zip(axes, pairs):
            rows = done[done[param].notna()]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in rows[param])
            x = rows[param].astype(float) if numeric else rows[param].astype(str)
            sns.stripplot(x=x, y=rows[obj].astype(float), ax=ax, native_scale=numeric, jitter=0.1, size=6,
                          color="#1565c0", alpha=0.7)
            ax.set(xlabel=param, ylabel=obj, title=f"{obj} vs {param}")
            if not numeric:
                ax.tick_params(axis="x", labelrotation=20)
        return _figure_uri(fig)


def comparison_figure(table: pd.DataFrame) -> str | None:
    """Mean peak accuracy per arm (and noise level) with 95% t-CI error bars."""
    import seaborn as sns

    if table.empty:
        return None
    xs = sorted(table[NOISE_PARAM].unique(), key=float) if NOISE_PARAM in table else [None]
    with sns.axes_style("whitegrid"):
        fig, (ax,) = _new_figure(1, height=3.6)
        for offset, (arm, color) in zip((-0.08, 0.08), (("baseline", "#757575"), ("retry", "#1565c0"))):
            cells = table[table["arm"] == arm]
            if cells.empty:
                continue
            pos = [xs.index(v) for v in cells[NOISE_PARAM]] if NOISE_PARAM in cells else [0] * len(cells)
            mean = cells["mean peak"].astype(float)
            err = [(mean - cells["ci low"].astype(float)).fillna(0), (cells["ci high"].astype(float) - mean).fillna(0)]
            ax.errorbar([p + offset for p in pos], mean, yerr=err, fmt="o", capsize=5, color=color, label=arm,
                        markersize=8)
        ax.set_xticks(range(len(xs)), [f"{NOISE_PARAM} = {_fmt(v)}" if v is not None else "all" for v in xs])
        ax.set(ylabel="mean peak accuracy", title="Retry reward vs baseline (95% t-CI across seeds)")
        ax.set_xlim(-0.5, len(xs) - 0.5)
        ax.legend()
        return _figure_uri(fig)


def importance_figure(importances: dict[str, dict[str, float]]) -> str | None:
    """Horizontal bars of each objective's parameter importances."""
    if not importances:
        return None
    fig, axes = _new_figure(len(importances), height=0.5 + 0.4 * max(len(v) for v in importances.values()))
    for ax, (name, imp) in zip(axes, importances.items()):
        ax.barh(list(imp)[::-1], list(imp.values())[::-1], color="#1565c0")
        ax.set(xlabel="importance (fANOVA)", title=name, xlim=(0, 1))
    return _figure_uri(fig)


# ---------------------------------------------------------------- page


def _cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell formatted for display (numbers to 4 significant digits, missing as —)."""
    return frame.apply(lambda col: col.map(lambda v: _fmt(_plain(v))))


def _img(uri: str | None, missing: str) -> str:
    """An embedded figure, or a muted note when there is none."""
    return f'<img class="fig" alt="figure" src="{uri}">' if uri else f"<p class='muted'>{html.escape(missing)}</p>"


def render_study_html(data: StudyData) -> str:
    """The complete page for a collected study, as one HTML string."""
    e = html.escape
    title = f"Study report: {data.name}"
    objs = ", ".join(f"{o} ({d})" for o, d in zip(data.objectives, data.directions))
    states = ", ".join(f"{k}: {v}" for k, v in sorted(data.states.items())) or "no trials"
    best_title = "Pareto front" if len(data.directions) > 1 else f"Best trials (top {TOP_N})"
    parts = [f"<h1>{e(title)}</h1>",
             f"<p class='muted'>Generated {e(datetime.now().isoformat(timespec='seconds'))} from "
             f"<code>{e(data.storage)}</code></p>",
             f"<p><b>Objectives:</b> {e(objs)}<br><b>Trials by state:</b> {e(states)}</p>",
             f'<h2 id="best">{e(best_title)}</h2>',
             _table(_cells(data.best), index=False) if not data.best.empty
             else "<p class='muted'>No completed trials.</p>",
             '<h2 id="curves">Accuracy curves</h2>', _img(curves_figure(data), "No trial has a curve.csv yet.")]
    if not data.comparison.empty:
        parts += ['<h2 id="comparison">Retry reward vs baseline</h2>',
                  "<p class='muted'>Completed trials with reward.retry &gt; 0 (retry) or = 0 (baseline). "
                  "Peak CI: 95% Student-t interval of the mean across seeds (none for n = 1); collapse step "
                  "is averaged over the trials that collapsed.</p>",
                  _table(_cells(data.comparison), index=False), _img(comparison_figure(data.comparison), "")]
    parts += ['<h2 id="importance">Parameter importances</h2>', _img(importance_figure(data.importances), "")]
    parts += [f"<p class='muted'>{e(n)}</p>" for n in data.notes]
    parts += ['<h2 id="params">Parameters vs objective</h2>', _img(scatter_figure(data), "No completed trials.")]
    parts += ['<h2 id="failed">Failed trials</h2>',
              _table(_cells(data.failed), index=False) if not data.failed.empty else "<p class='muted'>None.</p>"]
    if not data.trials.empty:
        parts.append(f"<details><summary>All {len(data.trials)} trials</summary>"
                     f"{_table(_cells(data.trials), index=False)}</details>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>{e(title)}</title><style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def write_study_report(study_dir: Path, storage: str | None = None, study_name: str | None = None,
                       output: Path | None = None) -> Path:
    """Render the study report and write it atomically (default ``study_dir/report.html``)."""
    study_dir = Path(study_dir)
    storage = storage or f"sqlite:///{(study_dir / 'study.db').resolve()}"
    output = Path(output) if output else study_dir / "report.html"
    atomic_write_text(output, render_study_html(collect(storage, study_name)))
    return output
