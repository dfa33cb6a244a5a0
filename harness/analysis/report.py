"""Self-contained HTML reports comparing runs: curves, peak/collapse tables, metrics, episodes.

A run directory may hold ``curve.csv`` (training curve), ``results.json`` (a dict: ``config``,
``metrics``, ``peak``, ``model``, ``task``), ``samples.jsonl`` (one episode per line) and
``eval_samples/step_XXXXX.jsonl``; every one of them is optional and read defensively.

The page needs no network: CSS is inline, figures are base64 PNG data URIs, there is no script,
and a Content-Security-Policy forbids everything else. All model and data text is HTML-escaped
before protocol tags are highlighted on the escaped text.

Usage: ``python -m harness.analysis.report RUN_DIR [RUN_DIR ...] [-o OUT.html] [--title TITLE]``.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from harness.analysis.curves import analyze, load_curve
from harness.core.io import atomic_write_text, slug

MAX_SAMPLES = 50
MAX_MESSAGE_CHARS = 20_000
PROTOCOL_TAGS = ("think", "search", "information", "answer")
RETRY_COLUMNS = ("persistence", "recovery", "retry_rate", "searches_per_episode", "answer_rate",
                 "format_validity")
INDICATOR_COLUMNS = ("entropy", "kl", "reward_std", "completion_length")

_TAG_RE = re.compile(
    r"&lt;(?P<open>{t})&gt;(?P<body>.*?)&lt;/(?P=open)&gt;|&lt;/?(?P<lone>{t})&gt;".format(
        t="|".join(PROTOCOL_TAGS)),
    re.DOTALL,
)

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;
padding:1rem 2rem;color:#222;line-height:1.4}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.muted{color:#666;font-size:.9rem}nav a{margin-right:1rem}
table.data{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
table.data th,table.data td{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
table.data th{background:#f2f2f2}table.data td:first-child,table.data th:first-child{text-align:left}
img.fig{max-width:100%;border:1px solid #eee;margin:.5rem 0}
details{border:1px solid #ddd;border-radius:4px;margin:.3rem 0;padding:.2rem .6rem}
details>summary{cursor:pointer;font-family:ui-monospace,monospace;font-size:.85rem}
.ok{color:#1a7f37;font-weight:bold}.bad{color:#c62828;font-weight:bold}
.msg{margin:.4rem 0;border-left:4px solid #bbb;padding-left:.6rem}
.msg-system{border-color:#999}.msg-user{border-color:#1565c0}.msg-assistant{border-color:#6a1b9a}
.role{font-size:.75rem;text-transform:uppercase;color:#666}
pre.text{white-space:pre-wrap;word-break:break-word;margin:.2rem 0;font-size:.8rem}
.tag{font-weight:bold}.tag-think{background:#ede7f6;color:#4527a0}
.tag-search{background:#e3f2fd;color:#0d47a1}.tag-information{background:#e8f5e9;color:#1b5e20}
.tag-answer{background:#fff3e0;color:#e65100}.problem{color:#c62828}
"""


@dataclass
class Run:
    """Everything read from one run directory (missing pieces are None or empty)."""

    name: str
    path: Path
    curve: pd.DataFrame | None = None
    results: dict[str, Any] = field(default_factory=dict)
    samples: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    analysis: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)


def highlight_protocol(text: str) -> str:
    """HTML-escape ``text``, then wrap protocol tags (think/search/information/answer) in spans.

    >>> highlight_protocol("<b>x</b><answer>")
    '&lt;b&gt;x&lt;/b&gt;<span class="tag tag-answer">&lt;answer&gt;</span>'
    """
    return _TAG_RE.sub(_tag_span, html.escape(str(text)))


def _tag_span(match: re.Match[str]) -> str:
    """Replacement for one protocol tag pair (recursing into its body) or a lone tag."""
    if match.group("lone"):
        return f'<span class="tag tag-{match.group("lone")}">{match.group(0)}</span>'
    tag, body = match.group("open"), _TAG_RE.sub(_tag_span, match.group("body"))
    return (f'<span class="tag-{tag}"><span class="tag">&lt;{tag}&gt;</span>{body}'
            f'<span class="tag">&lt;/{tag}&gt;</span></span>')


def load_run(path: Path, name: str | None = None, max_samples: int = MAX_SAMPLES) -> Run:
    """Read a run directory; unreadable files are recorded in ``problems`` instead of raising."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"run directory not found: {path}")
    run = Run(name=name or path.name, path=path)
    if (path / "curve.csv").is_file():
        try:
            run.curve = _numeric_curve(load_curve(path))
            run.analysis = analyze(run.curve)
        except (ValueError, pd.errors.ParserError) as err:
            run.problems.append(f"curve.csv: {err}")
    if (path / "results.json").is_file():
        try:
            results = json.loads((path / "results.json").read_text(encoding="utf-8"))
            run.results = results if isinstance(results, dict) else {}
        except (ValueError, OSError) as err:
            run.problems.append(f"results.json: {err}")
    if (path / "samples.jsonl").is_file():
        run.samples.append(("samples.jsonl", _read_jsonl(path / "samples.jsonl", max_samples, run)))
    peak_step = run.analysis["peak_step"] if run.analysis else None
    for label, file in _eval_sample_files(path / "eval_samples", peak_step):
        run.samples.append((label, _read_jsonl(file, max_samples, run)))
    return run


def _numeric_curve(curve: pd.DataFrame) -> pd.DataFrame:
    """Coerce every column to numbers (bad cells become NaN) and add ``reward_std`` as the mean of
    the ``reward_<name>_std`` columns when it is not logged."""
    curve = curve.apply(pd.to_numeric, errors="coerce")
    parts = [c for c in curve.columns if re.fullmatch(r"reward_.+_std", str(c))]
    if "reward_std" not in curve.columns and parts:
        curve = curve.assign(reward_std=curve[parts].mean(axis=1))
    return curve


def _read_jsonl(path: Path, limit: int, run: Run) -> list[dict[str, Any]]:
    """Up to ``limit`` dict records from a JSON-lines file; bad lines are counted as a problem."""
    records, bad = [], 0
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if len(records) >= limit:
                break
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                bad += 1
    if bad:
        run.problems.append(f"{path.name}: skipped {bad} malformed line(s)")
    return records


def _eval_sample_files(folder: Path, peak_step: Any) -> list[tuple[str, Path]]:
    """The eval-sample files at (or just before) the peak step and at the last step."""
    files = sorted((int(m.group(1)), p) for p in folder.glob("step_*.jsonl")
                   if (m := re.fullmatch(r"step_(\d+)\.jsonl", p.name)))
    if not files:
        return []
    chosen: dict[int, str] = {}
    if peak_step is not None:
        at_peak = [s for s, _ in files if s <= peak_step] or [files[0][0]]
        chosen[at_peak[-1]] = "peak"
    chosen.setdefault(files[-1][0], "last")
    by_step = dict(files)
    return [(f"eval_samples step {s} ({what})", by_step[s]) for s, what in sorted(chosen.items())]


# ---------------------------------------------------------------- figures


def _figure_uri(fig: Any) -> str:
    """Encode a matplotlib Figure as a PNG data URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _new_figure(n_panels: int, height: float = 3.2) -> tuple[Any, list[Any]]:
    """A pyplot-free Figure (Agg rendering, no global backend change) with n panels, 3 a row."""
    from matplotlib.figure import Figure

    cols = min(3, n_panels)
    rows = -(-n_panels // cols)
    fig = Figure(figsize=(4.2 * cols if n_panels > 1 else 10, height * rows), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n_panels)]
    return fig, axes


def _colors(runs: list[Run]) -> dict[str, Any]:
    """One colour per run, stable across figures."""
    import seaborn as sns

    return dict(zip([r.name for r in runs], sns.color_palette("tab10", max(len(runs), 1))))


def accuracy_figure(runs: list[Run], colors: dict[str, Any]) -> str | None:
    """Accuracy by step per run with CI band, peak (star) and collapse (dashed line) marked."""
    import seaborn as sns

    curved = [r for r in runs if r.curve is not None and r.analysis]
    if not curved:
        return None
    with sns.axes_style("whitegrid"):
        fig, (ax,) = _new_figure(1, height=4.5)
        for run in curved:
            rows, a, color = run.curve[run.curve["accuracy"].notna()], run.analysis, colors[run.name]
            if {"accuracy_ci_low", "accuracy_ci_high"} <= set(rows.columns):
                ax.fill_between(rows["step"], rows["accuracy_ci_low"], rows["accuracy_ci_high"],
                                color=color, alpha=0.15, linewidth=0)
            sns.lineplot(x=rows["step"], y=rows["accuracy"], ax=ax, color=color, marker="o",
                         markersize=4, label=run.name, estimator=None)
            ax.plot([a["peak_step"]], [a["peak_raw"]], marker="*", markersize=16, color=color,
                    markeredgecolor="black", linestyle="none")
            ax.annotate(f"peak {a['peak_raw']:.2%} @ {a['peak_step']}", (a["peak_step"], a["peak_raw"]),
                        textcoords="offset points", xytext=(8, 8), fontsize=9, color=color)
            if a["collapse_step"] is not None:
                ax.axvline(a["collapse_step"], color=color, linestyle="--", linewidth=1.2)
                ax.annotate(f"collapse @ {a['collapse_step']}", (a["collapse_step"], 0),
                            textcoords="offset points", xytext=(4, 4), fontsize=9, color=color)
        ax.set(xlabel="step", ylabel="accuracy", title="Accuracy by step (dashed: collapse onset)")
        ax.set_ylim(bottom=0)
        return _figure_uri(fig)


def panels_figure(runs: list[Run], columns: list[str], colors: dict[str, Any], title: str) -> str | None:
    """One panel per column (those logged by any run), runs overlaid, collapse steps dashed."""
    import seaborn as sns

    columns = [c for c in columns if any(r.curve is not None and c in r.curve and
                                         r.curve[c].notna().any() for r in runs)]
    if not columns:
        return None
    with sns.axes_style("whitegrid"):
        fig, axes = _new_figure(len(columns))
        for ax, column in zip(axes, columns):
            for run in runs:
                if run.curve is None or column not in run.curve:
                    continue
                rows = run.curve[run.curve[column].notna()]
                sns.lineplot(x=rows["step"], y=rows[column], ax=ax, color=colors[run.name],
                             label=run.name, estimator=None)
                if run.analysis and run.analysis["collapse_step"] is not None:
                    ax.axvline(run.analysis["collapse_step"], color=colors[run.name], linestyle="--",
                               linewidth=1)
            ax.set(title=column, xlabel="step", ylabel="")
            if ax.get_legend() and ax is not axes[0]:
                ax.get_legend().remove()
        fig.suptitle(title)
        return _figure_uri(fig)


# ---------------------------------------------------------------- tables


def _fmt(value: Any) -> str:
    """A table cell: '—' for missing, integers as is, floats to 4 significant digits."""
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def _describe(value: Any) -> str:
    """A short label for ``task``/``model`` values, which may be strings or dicts.

    >>> _describe({"name": "apollo3", "version": 1}), _describe({"backend": "hf", "model": "m"})
    ('apollo3 v1', 'm (hf)')
    """
    if not isinstance(value, dict):
        return _fmt(value)
    main = value.get("name") or value.get("model")
    if main is None:
        return json.dumps(value, sort_keys=True, default=str)
    suffix = f" v{value['version']}" if "version" in value else ""
    return f"{main}{suffix}" + (f" ({value['backend']})" if "backend" in value else "")


def _table(frame: pd.DataFrame, index: bool = True) -> str:
    """Escaped HTML for a table of already formatted cells."""
    return frame.to_html(classes="data", border=0, escape=True, na_rep="—", index=index)


def summary_table(runs: list[Run]) -> pd.DataFrame:
    """Peak, collapse, zero step and final accuracy per run (formatted strings)."""
    rows = []
    for run in runs:
        a = run.analysis or {}
        ci = a.get("peak_ci")
        rows.append({
            "run": run.name, "task": _describe(run.results.get("task")),
            "model": _describe(run.results.get("model")),
            "evals": _fmt(a.get("n_evals")), "peak step": _fmt(a.get("peak_step")),
            "peak accuracy": _fmt(a.get("peak")),
            "peak CI": f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "—",
            "collapse step": _fmt(a.get("collapse_step")), "zero step": _fmt(a.get("zero_step")),
            "final step": _fmt(a.get("final_step")), "final accuracy": _fmt(a.get("final_accuracy")),
        })
    return pd.DataFrame(rows).set_index("run", drop=False)


def indicator_table(runs: list[Run]) -> pd.DataFrame:
    """Onset step and lead time of each leading indicator per run."""
    cells: dict[str, dict[str, str]] = {}
    for run in runs:
        for name, ind in ((run.analysis or {}).get("indicators") or {}).items():
            cells.setdefault(run.name, {})[name] = (
                f"onset {_fmt(ind['onset_step'])}, lead {_fmt(ind['lead_time'])}")
    table = pd.DataFrame.from_dict(cells, orient="index").fillna("—")
    return table.rename_axis("run").reset_index() if not table.empty else table


def numeric_leaves(obj: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """(path, number) for every numeric leaf of nested dicts/lists; booleans are skipped.

    >>> list(numeric_leaves({"em": 0.5, "noise": {"0.3": {"em": 0.25}}, "model": "x"}))
    [('em', 0.5), ('noise / 0.3 / em', 0.25)]
    """
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from numeric_leaves(value, f"{prefix} / {key}" if prefix else str(key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from numeric_leaves(value, f"{prefix}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield prefix, obj


def metrics_table(runs: list[Run]) -> pd.DataFrame:
    """Every numeric leaf of ``results.json`` ``metrics`` (or lm-eval style ``results``), a column per run."""
    sources = {r.name: r.results.get("metrics", r.results.get("results")) for r in runs}
    columns = {name: {k: _fmt(v) for k, v in numeric_leaves(tree)} for name, tree in sources.items()}
    return pd.DataFrame(columns).fillna("—")


# ---------------------------------------------------------------- episodes


_MARKS = {True: '<span class="ok">✓</span>', False: '<span class="bad">✗</span>'}


def episode_html(episode: dict[str, Any], open_: bool = False) -> str:
    """One collapsible episode: header line, question/gold/answer/rewards, then the messages."""
    e = html.escape
    correct = episode.get("correct")
    mark = _MARKS[correct] if isinstance(correct, bool) else "?"
    fields = [episode.get(k) for k in ("qid", "end_reason", "n_searches", "answer")]
    qid, end, searches, answer = (e("—" if v is None else str(v)) for v in fields)
    head = f"{qid} · {end} · searches {searches} · answer: {answer}"
    for key in ("policy", "noise_level"):  # written by harness run next to each episode
        head += f" · {key} {e(str(episode[key]))}" if key in episode else ""
    meta = [f"<b>{e(k)}</b>: {highlight_protocol(str(episode[k]))}"
            for k in ("question", "gold_answer") if k in episode]
    for key in ("rewards", "judge"):
        if isinstance(episode.get(key), dict):
            meta.append(f"<b>{key}</b>: {e(json.dumps(episode[key], ensure_ascii=False))}")
    messages = []
    raw = episode.get("messages")
    for msg in raw if isinstance(raw, list) else [] if raw is None else [raw]:
        msg = msg if isinstance(msg, dict) else {"content": msg}
        role = str(msg.get("role", "?"))
        css = role if role in ("system", "user", "assistant") else "other"
        text = str(msg.get("content", ""))
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[:MAX_MESSAGE_CHARS] + f"\n… [truncated {len(text) - MAX_MESSAGE_CHARS} chars]"
        messages.append(f'<div class="msg msg-{css}"><div class="role">{e(role)}</div>'
                        f'<pre class="text">{highlight_protocol(text)}</pre></div>')
    return (f"<details{' open' if open_ else ''}><summary>{mark} {head}</summary>"
            f"<div>{'<br>'.join(meta)}</div>{''.join(messages)}</details>")


# ---------------------------------------------------------------- page


def render_report_html(run_dirs: list[Path], title: str | None = None,
                       max_samples: int = MAX_SAMPLES) -> str:
    """The complete report page for the given run directories, as one HTML string."""
    if not run_dirs:
        raise ValueError("no run directories given")
    runs = [load_run(Path(p), name, max_samples) for p, name in zip(run_dirs, _run_names(run_dirs))]
    title = title or "Run report: " + " vs ".join(r.name for r in runs)
    e = html.escape
    header = [f"<h1>{e(title)}</h1>",
              f'<p class="muted">Generated {e(datetime.now().isoformat(timespec="seconds"))} from '
              + ", ".join(f"<code>{e(str(r.path))}</code>" for r in runs) + "</p>",
              '<nav><a href="#summary">Summary</a><a href="#figures">Figures</a>'
              '<a href="#metrics">Metrics</a><a href="#samples">Episodes</a></nav>']
    body = header + _summary_section(runs) + _figures_section(runs) + _metrics_section(runs)
    body += _episodes_section(runs, max_samples)
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            f"<title>{e(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _summary_section(runs: list[Run]) -> list[str]:
    """Peak/collapse table, the detector parameters, and the leading-indicator table."""
    e = html.escape
    params = next((r.analysis["params"] for r in runs if r.analysis), {})
    parts = ['<h2 id="summary">Peak and collapse</h2>', _table(summary_table(runs), index=False),
             '<p class="muted">Collapse: first eval after the peak below (1 − δ) × peak for m evals in a '
             "row (or to the end); zero step: first step of zero accuracy to the end. "
             f"{e(json.dumps(params))}</p>"]
    indicators = indicator_table(runs)
    if not indicators.empty:
        rules = {n: i["rule"] for r in runs if r.analysis for n, i in r.analysis["indicators"].items()}
        parts += ["<h3>Leading indicators (lead = collapse step − onset step)</h3>",
                  _table(indicators, index=False),
                  "<details><summary>Indicator rules</summary><ul class='muted'>"
                  + "".join(f"<li><b>{e(n)}</b>: {e(t)}</li>" for n, t in rules.items()) + "</ul></details>"]
    return parts


def _figures_section(runs: list[Run]) -> list[str]:
    """Accuracy, reward components, retry-aware metrics and indicators as embedded PNGs."""
    colors = _colors(runs)
    rewards = sorted({c for r in runs if r.curve is not None for c in r.curve.columns
                      if re.fullmatch(r"reward_.+_mean", str(c))})
    figures = [accuracy_figure(runs, colors),
               panels_figure(runs, rewards, colors, "Reward components (mean per step)"),
               panels_figure(runs, list(RETRY_COLUMNS), colors, "Retry-aware metrics"),
               panels_figure(runs, list(INDICATOR_COLUMNS), colors, "Leading indicators")]
    images = [f'<img class="fig" alt="figure" src="{uri}">' for uri in figures if uri]
    images = images or ["<p class='muted'>No curve.csv in these runs.</p>"]
    return ['<h2 id="figures">Figures</h2>'] + images


def _metrics_section(runs: list[Run]) -> list[str]:
    """Metrics comparison table, each run's recorded peak and config, and reading problems."""
    e = html.escape
    metrics = metrics_table(runs)
    parts = ['<h2 id="metrics">Metrics (results.json)</h2>',
             _table(metrics) if not metrics.empty else "<p class='muted'>No numeric metrics.</p>"]
    for run in runs:
        extra = {k: run.results[k] for k in ("peak", "config") if k in run.results}
        if extra:
            parts.append(f"<details><summary>{e(run.name)}: recorded peak and config</summary>"
                         f"<pre class='text'>{e(json.dumps(extra, indent=2, default=str))}</pre></details>")
        parts += [f"<p class='problem'>{e(run.name)}: {e(p)}</p>" for p in run.problems]
    return parts


def _episodes_section(runs: list[Run], max_samples: int) -> list[str]:
    """The episode browser: one heading per sample file, the first episode open."""
    parts = [f'<h2 id="samples">Episodes (first {max_samples} per file)</h2>']
    for run in runs:
        for label, episodes in run.samples:
            parts.append(f"<h3>{html.escape(run.name)} — {html.escape(label)} ({len(episodes)})</h3>")
            parts += [episode_html(ep, open_=i == 0) for i, ep in enumerate(episodes)]
    return parts


def _run_names(run_dirs: list[Path]) -> list[str]:
    """Directory names, prefixed by the parent's name where two runs share a name."""
    names = [Path(p).resolve().name for p in run_dirs]
    return [f"{Path(p).resolve().parent.name}/{n}" if names.count(n) > 1 else n
            for p, n in zip(run_dirs, names)]


def write_report(run_dirs: list[Path], output: Path | None = None, title: str | None = None) -> Path:
    """Render the report and write it atomically; default ``reports/<names>-<timestamp>.html``."""
    text = render_report_html(run_dirs, title=title)
    if output is None:
        output = Path("reports") / f"{slug('-vs-'.join(_run_names(run_dirs)))}-{datetime.now():%Y%m%d-%H%M%S}.html"
    output = Path(output)
    atomic_write_text(output, text)
    return output


def main(argv: list[str] | None = None) -> None:
    """Command line: write a report for the given run directories and print its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path)
    parser.add_argument("--title")
    args = parser.parse_args(argv)
    print(write_report(args.run_dirs, args.output, args.title))


if __name__ == "__main__":
    main()
