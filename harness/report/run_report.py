"""Self-contained HTML reports of evaluation and training runs (``harness report``, ``harness run``,
``harness train``).

One page per set of run directories (see :mod:`harness.report.runs` for what a run directory may
hold), in sections that appear when the runs have something for them:

- **Protocol** (several runs): every field of the runs' comparability records that differs between
  them (:mod:`harness.report.protocol`), before any comparison; comparisons across protocols say so.
- **Runs**: each run labelled by what differs between the runs (preset, reward weights, noise,
  seed, ...), with its task, policies and noise levels.
- **Comparison** (evaluation runs): policies x noise levels against the grouped retry-aware metrics,
  intervals, best value per row (:mod:`harness.report.tables`); figures of accuracy, persistence,
  recovery, wasted retries, premature answers and searches per episode (:mod:`harness.report.figures`);
  per-question agreement between policies on shared questions.
- **Training** (runs with a ``curve.csv``): peak, collapse and faults per run, accuracy by step with
  faults marked, seed aggregates, reward / retry / indicator panels, the final evaluation's table.
- **Episodes**: every policy and noise level (or eval step), filterable, sampled fairly
  (:mod:`harness.report.episodes`).

The page has no script and a strict Content-Security-Policy; figures are drawn with seaborn and
matplotlib and inlined as SVG (:mod:`harness.report.plot`), and can be written as SVG, PDF or PNG
files too (:func:`write_report` ``figures_dir``); every text
from a run is escaped with invisible characters made visible (:mod:`harness.report.page`), and
model-written fields are capped, so a report stays at most a few MB whatever the run holds.

Usage: ``python -m harness.report.run_report RUN_DIR [RUN_DIR ...] [-o OUT.html] [--title TITLE]``.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Sequence

from harness.core.errors import ConfigError
from harness.core.io import atomic_write_bytes, slug
from harness.report import figures as figs
from harness.report import tables
from harness.report.comparisons import (
    AGREEMENT_HEADER,
    SEED_PAIR_HEADER,
    agreement_rows,
    arm_sentences,
    outcomes_from_refs,
    seed_pair_rows,
)
from harness.report.episodes import (
    MAX_EPISODES,
    Browser,
    browser_html,
    iter_dims_eval,
    iter_dims_step,
)
from harness.report.page import (
    bounded,
    cap,
    describe,
    esc,
    fmt,
    generated_line,
    note,
    page,
    table,
)
from harness.report.plot import Plot, save_all
from harness.report.protocol import protocol_differences, protocol_html
from harness.report.runs import (
    Run,
    assign_labels,
    check_report_target,
    differing,
    facts,
    load_run,
    seed_groups,
)

CONFIG_CHARS = 20_000


def load_runs(run_dirs: Sequence[Path]) -> list[Run]:
    """Load and label the runs (names made unique with the parent folder)."""
    if not run_dirs:
        raise ValueError("no run directories given")
    runs = [load_run(Path(p), name) for p, name in zip(run_dirs, _run_names(run_dirs))]
    assign_labels(runs)
    return runs


def render_report_html(run_dirs: Sequence[Path], title: str | None = None, max_episodes: int = MAX_EPISODES) -> str:
    """The complete report page for the given run directories, as one HTML string."""
    return build_report(run_dirs, title, max_episodes)[0]


def build_report(run_dirs: Sequence[Path], title: str | None = None,
                 max_episodes: int = MAX_EPISODES) -> tuple[str, list[Plot]]:
    """The report page and its figures (the same ones the page holds, for ``--figures DIR``)."""
    runs = load_runs(run_dirs)
    if title is None:
        keys = differing(runs)
        title = ("Run report: " + " vs ".join(r.label for r in runs) if len(runs) <= 3 else
                 f"Run report: {len(runs)} runs" + (f" differing in {', '.join(keys)}" if keys else ""))
    eval_runs = [r for r in runs if r.kind == "eval"]
    train_runs = [r for r in runs if r.curve is not None]
    browser = _browser(runs)
    plots: list[Plot] = []
    differences = run_protocol_differences(runs)
    across = " (across different protocols)" if differences else ""
    sections = [("protocol", "Protocol", protocol_html(differences))] if len(runs) > 1 else []
    sections.append(("runs", "Runs", _runs_section(runs)))
    if eval_runs:
        sections.append(("comparison", "Comparison" + across,
                         _comparison_section(eval_runs, len(runs) > 1, browser, plots)))
    if train_runs:
        sections.append(("training", "Training" + (across if len(train_runs) > 1 else ""),
                         _training_section(train_runs, browser, plots)))
    episodes, css = browser_html(browser, max_episodes, DIM_LABELS)
    sections.append(("episodes", "Episodes", [episodes]))
    sections.append(("details", "Details", _details_section(runs)))
    nav = "<nav>" + "".join(f'<a href="#{sid}">{esc(name)}</a>' for sid, name, _ in sections) + "</nav>"
    body = [f"<h1>{esc(cap(title, 300))}</h1>", generated_line([str(r.path) for r in runs]), nav]
    for sid, name, parts in sections:
        body.append(f'<h2 id="{sid}">{esc(name)}</h2>')
        body += parts
    return page(cap(title, 300), body, css), plots


def run_protocol_differences(runs: Sequence[Run]) -> list[str]:
    """The protocol fields that differ between the runs (their labels name them); empty for one run."""
    return protocol_differences([(r.label, r.record.comparability if r.record else None) for r in runs])


def _shown(plot: Plot | None, plots: list[Plot]) -> list[str]:
    """``plot`` as page HTML (nothing for None), kept in ``plots`` for the figure files."""
    if plot is None:
        return []
    plots.append(plot)
    return [plot.html()]


# ---------------------------------------------------------------- runs


def _policies(run: Run) -> str:
    rec = run.record
    text = describe([m.model_dump() for m in rec.model]) if rec else "—"
    if rec and rec.micro_scale:
        text += " — micro-scale model: compare directions, not magnitudes, with the paper's 3B model"
    return text


def _noise(run: Run) -> str:
    f = facts(run)
    if "train noise" in f:
        return f"train {f['train noise']}, eval {f.get('eval noise', '—')}"
    levels = run.options.get("noise_levels")
    keys = list(dict.fromkeys(k for v in run.record.results.values() for k in v)) if run.record else []
    shown = ", ".join(tables.noise_label(k).removeprefix("noise ") for k in keys) or (
        ", ".join(fmt(x) for x in levels) if isinstance(levels, list) else "—")
    modes = run.options.get("noise_modes")
    return shown + (f" ({'+'.join(map(str, modes))})" if modes else "")


def _split(f: dict) -> str | None:
    """The split an evaluation ran on; a training run's ``selected on → reported`` splits."""
    if "selection_split" in f:
        return f"selected on {f['selection_split']} → reported {f.get('eval_split', 'test')}"
    return f.get("split", f.get("eval_split"))


def _runs_section(runs: list[Run]) -> list[str]:
    keys = differing(runs)
    parts = []
    if len(runs) > 1:
        what = ", ".join(keys) if keys else "nothing in their configs (labels are directory names)"
        parts.append(note(f"{len(runs)} runs; they differ in: {what}."))
    rows = []
    for run in runs:
        f = facts(run)
        rows.append([run.label, run.kind, describe(run.record.task.model_dump()) if run.record else "—",
                     _policies(run), _noise(run), _split(f), f.get("seed"), run.status,
                     str(run.path)]
                    + [f.get(k) for k in keys if k != "seed"])
    header = ["run", "kind", "task", "policies / model", "noise", "split", "seed", "status", "directory"]
    parts.append(table(header + [k for k in keys if k != "seed"], rows))
    for run in runs:
        parts += [note(f"{run.label}: {p}", "problem") for p in run.problems]
    return parts


# ---------------------------------------------------------------- evaluation runs


def _comparison_section(runs: list[Run], several: bool, browser: Browser, plots: list[Plot]) -> list[str]:
    cols = [c for r in runs for c in tables.columns_from_record(r.record, r.label if several else None)]
    if not cols:
        return [note("These runs have no metrics in results.json yet (a run still in progress, or "
                     "interrupted before its first results).")]
    parts = [tables.comparison_table(cols), note(tables.comparison_note(cols))]
    parts += ["<h3>Accuracy</h3>", *_shown(figs.accuracy_figure(cols), plots),
              "<h3>Retry behaviour</h3>",
              note("Each panel is conditional on its own event (its n is in the hover text and in the table); "
                   "n/a: the event never happened."), *_shown(figs.retry_figure(cols), plots)]
    searches = _shown(figs.searches_figure(cols), plots)
    if searches:
        parts += ["<h3>Searches per episode</h3>", *searches]
    parts += _agreement(browser)
    return parts


def _agreement(browser: Browser, runs: Sequence[Run] = ()) -> list[str]:
    """Pairs compared question by question: policies at each noise level (evaluation runs), or training
    runs at their peak and last evals (with seed groups, only runs of the same seed)."""
    training = bool(runs)
    refs = [r for r in browser.refs if ("step" in r.dims) == training]
    seeds = {r.label: r.seed for r in runs}
    paired_by_seed = training and bool(seed_groups(list(runs)))
    rows = agreement_rows(outcomes_from_refs(refs),
                          (lambda a, b: seeds.get(a) == seeds.get(b)) if paired_by_seed else None)
    if not rows:
        return []
    what = ("runs at their peak eval and at their last eval" + (" (runs of the same seed)" if paired_by_seed else "")
            if training else "policies at the same noise level")
    return [f"<h3>{'Runs' if training else 'Policies'} on the same questions</h3>",
            note(f"Pairs of {what}, on the questions both answered. Only the discordant questions (one right, "
                 "the other wrong: only A, only B) carry evidence of a difference; p: exact two-sided McNemar test "
                 "on them; verdict at 5%, with no correction for the number of pairs."),
            table(AGREEMENT_HEADER, rows, left=2)]


# ---------------------------------------------------------------- training runs


def _training_section(runs: list[Run], browser: Browser, plots: list[Plot]) -> list[str]:
    parts = [table(*tables.training_rows(runs)),
             note("Reported at the selected step: the reported split (test) evaluated at the step chosen on the "
                  "selection split (dev, carved from the training questions): the number to quote. A step selected "
                  "on the reported questions themselves is the maximum of many noisy evals of them: optimistic. "
                  "Peak: the earliest step of the highest accuracy on the selection split; collapse: the first eval "
                  "after the "
                  "peak below (1 − δ) × peak for m evals in a row (or to the end); zero step: first step of "
                  "zero accuracy to the end; learned: yes when an eval after step 0 is above step 0's 95% interval, "
                  "no when every eval stays within it (with the likely cause). " + _params(runs))]
    parts += [note(f"{r.label}: {r.analysis['learning']['message']}" if len(runs) > 1 else
                   r.analysis["learning"]["message"], "warn")
              for r in runs if r.analysis and (r.analysis.get("learning") or {}).get("verdict") == "flat"]
    parts += _shown(figs.accuracy_by_step(runs), plots)
    rollbacks = tables.intervention_rows(runs)
    if rollbacks:
        parts += ["<h3>Interventions</h3>",
                  note("Rollbacks (--on-collapse rollback): at the step the online detector found a collapse, the "
                       "run went back to the weights and optimiser state of its peak, reset its reference model there "
                       "and scaled its learning rate; it then trained on from that step."),
                  table(["run", "step", "back to step", "learning-rate scale"], rollbacks)]
    faults = tables.fault_rows(runs)
    if faults:
        parts += ["<h3>Faults</h3>", table(["run", "step", "kind", "detail"], [[a, b, c, cap(d, 400)]
                                                                             for a, b, c, d in faults])]
    groups = seed_groups(runs)
    if groups:
        parts += ["<h3>Seeds</h3>", table(tables.SEED_HEADER, tables.seed_rows(groups)),
                  *_shown(figs.seed_figure(groups), plots)]
        parts += _seed_pairs(groups, browser)
    parts += _agreement(browser, runs)
    header, rows = tables.indicator_rows(runs)
    if len(header) > 1:
        rules = {n: i.get("rule") for r in runs if r.analysis for n, i in (r.analysis.get("indicators") or {}).items()}
        parts += ["<h3>Leading indicators (lead = collapse step − onset step)</h3>", table(header, rows),
                  "<details><summary>Indicator rules</summary><ul class='muted'>"
                  + "".join(f"<li><b>{esc(n)}</b>: {esc(t)}</li>" for n, t in rules.items()) + "</ul></details>"]
    rewards = figs.reward_columns(runs)
    for columns, name, title, caption in (
            (rewards, "rewards", "Reward components (mean per step)", figs.missing_reward_lines(runs, rewards)),
            (figs.CURVE_RETRY, "retry_by_step", "Retry-aware metrics at each eval", None),
            (figs.CURVE_INDICATORS, "indicators", "Leading indicators", None)):
        panel = _shown(figs.panels_by_step(runs, columns, name, title, caption), plots)
        if panel:
            parts += [f"<h3>{esc(title)}</h3>", *panel]
    cols = [c for r in runs for c in tables.columns_from_record(r.record, None)
            for c in [tables.Column(None, r.label, c.noise, c.metrics, c.weights)]]
    if cols:
        parts += ["<h3>Last evaluation</h3>", tables.comparison_table(cols), note(tables.comparison_note(cols))]
    return parts


def _params(runs: list[Run]) -> str:
    params = next((r.analysis.get("params") for r in runs if r.analysis and r.analysis.get("params")), None)
    return "Detector parameters: " + ", ".join(f"{k} = {v}" for k, v in params.items()) + "." if params else ""


def _seed_pairs(groups: list[tuple[str, list[Run]]], browser: Browser) -> list[str]:
    """Arms paired by seed: peak accuracies (mean per-seed difference, Student-t interval), and the
    per-question comparison at the peak evals over seeds x questions (:func:`harness.report.comparisons.compare`)."""
    rows = seed_pair_rows([(label, {r.seed: (r.analysis or {}).get("peak_raw") for r in runs})
                           for label, runs in groups])
    if not rows:
        return []
    at_peak: dict[str, dict[str, bool]] = {}
    for ref in browser.refs:
        if "peak" in ref.roles:
            at_peak.setdefault(ref.dims.get("run", ""), {})[ref.qid] = "correct" in ref.kinds
    arms = [(label, {r.seed: at_peak[r.label] for r in runs if r.label in at_peak}) for label, runs in groups]
    sentences = arm_sentences([(label, by_seed) for label, by_seed in arms if by_seed])
    return [table(SEED_PAIR_HEADER, rows, left=2),
            note("Paired by seed: the difference is taken within each seed, then averaged; 95% Student-t interval "
                 "across seeds. With 2–3 seeds the interval is wide: an interval that contains 0 is not significant.")
            ] + ([f"<p><b>Per question, at the peak evals:</b> {esc(s)}</p>" for s in sentences])


# ---------------------------------------------------------------- episodes and details


DIM_LABELS = {"run": "run", "policy": "policy", "noise": "noise", "step": "eval step"}


def _browser(runs: list[Run]) -> Browser:
    """Every episode file of the runs, indexed (cells: run, policy and noise, or eval step)."""
    several = len(runs) > 1
    sources = []
    for run in runs:
        label = run.label if several else None
        for f in run.samples:
            dims = iter_dims_eval(label) if f.step is None else iter_dims_step(label, f.label)
            sources.append((f.path, dims, f.roles))
    return Browser.build(sources)


def _details_section(runs: list[Run]) -> list[str]:
    parts = []
    for run in runs:
        rec = run.record.to_dict() if run.record else {}
        extra = {k: rec[k] for k in ("status", "seed", "git_hash", "versions", "machine", "timing",
                                     "started_at", "finished_at", "interval", "peak", "final", "comparability")
                 if k in rec}
        if run.options:
            extra["options"] = run.options
        text = json.dumps(extra, indent=2, default=str, ensure_ascii=False)
        parts.append(f"<details><summary>{bounded(run.label, 200)}: configuration, versions and timing</summary>"
                     f"<pre class='text'>{bounded(text, CONFIG_CHARS)}</pre></details>")
    return parts


# ---------------------------------------------------------------- writing


def _run_names(run_dirs: Sequence[Path]) -> list[str]:
    """Directory names, prefixed by the parent's name where two runs share a name."""
    names = [Path(p).resolve().name for p in run_dirs]
    return [f"{Path(p).resolve().parent.name}/{n}" if names.count(n) > 1 else n
            for p, n in zip(run_dirs, names)]


def check_run_dirs(run_dirs: Sequence[Path]) -> None:
    """Refuse (ConfigError) anything that is not a run directory, listing what lies below it."""
    for d in run_dirs:
        if check_report_target(Path(d)) == "study":
            raise ConfigError(f"{d} is a sweep study directory; report it on its own: harness report {d}")


def write_report(run_dirs: Sequence[Path], output: Path | None = None, title: str | None = None,
                 figures_dir: Path | None = None, fmt: str = "svg") -> Path:
    """Render the report and write it atomically; default ``reports/<names>-<timestamp>.html``. With
    ``figures_dir``, also write each of its figures there as a ``fmt`` file (svg, pdf or png)."""
    text, plots = build_report(run_dirs, title=title)
    if output is None:
        output = Path("reports") / f"{slug('-vs-'.join(_run_names(run_dirs)))}-{datetime.now():%Y%m%d-%H%M%S}.html"
    output = Path(output)
    atomic_write_bytes(output, text.encode("utf-8", errors="replace"))
    if figures_dir is not None:
        save_all(plots, figures_dir, fmt)
    return output


def main(argv: list[str] | None = None) -> None:
    """Command line: write a report for the given run directories and print its path."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path)
    parser.add_argument("--title")
    args = parser.parse_args(argv)
    try:
        check_run_dirs(args.run_dirs)
    except ConfigError as e:
        parser.exit(2, f"error: {e}\n")
    print(write_report(args.run_dirs, args.output, args.title))


if __name__ == "__main__":
    main()

