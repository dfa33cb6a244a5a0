"""A factorial study, cell by cell: per-cell outcomes across seeds, and arms compared paired within each cell.

A study whose trials cross categorical factors (e.g. ``model`` = the exploration regime, ``preset`` =
the reward arm) with seeds is summarised per *cell* (one value of every factor but the seed):

=====================  ====================================================================================
per run                peak accuracy and step (the best eval of the selection split: the step whose
                       eval samples the paired tests use, the reported split's where it was evaluated),
                       the reported split's accuracy there (``test_at_selected``: None for a run that
                       selected on the reported questions or predates the selection split), and at that
                       step persistence, recovery, wasted retries and searches per episode; collapse
                       onset (offline, noise-aware: :func:`harness.stats.curves.analyze`) and final accuracy
per cell               the mean of each over the cell's seeds with a 95% Student-t interval, the peak
                       steps, and how many seeds collapsed (and when)
within a cell's other  every pair of arms compared paired: seed ``s`` of one arm with seed ``s`` of the
factors                other, per question correct/incorrect at each run's peak
                       (:func:`harness.stats.paired.compare_outcomes`: permutation test over questions
                       and a bootstrap interval of the difference: these say whether *these trained
                       models* differ); and a Student-t interval over the per-seed differences, which
                       carries the training-seed variance (whether *the recipe* differs)
=====================  ====================================================================================

The numbers only; ``harness cells STUDY_DIR --by model --arm preset`` (:mod:`harness.report.cells`) prints
the table and the sentences and writes ``cells.json``, ``cells.md``, ``cells.html`` and one figure per level.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from harness.core.errors import DataError
from harness.core.record import read_record
from harness.core.rundir import CURVE, RECORD, read_curve
from harness.stats.curves import analyze
from harness.stats.intervals import clip01, t_interval

__all__ = ["METRICS", "CellRun", "cell_rows", "cell_key", "check_one_run_per_seed", "compare_within", "load_study_runs",
           "run_row"]

#: Metrics read at each run's peak step (curve.csv columns), in table order.
METRICS = ("accuracy", "persistence", "recovery", "wasted_retries", "searches_per_episode")
#: Rates (clipped to [0, 1] in intervals); the others are counts.
RATES = ("accuracy", "persistence", "recovery", "wasted_retries", "final_accuracy")
#: Run statuses that count as finished (a trial still running, or failed, is left out).
FINISHED = ("complete", "stopped_collapse", "stopped_patience", "diverged")


@dataclass
class CellRun:
    """One finished trial: its factor values (from ``trial_config.yaml``), its run directory, curve and the
    curve's analysis (:func:`harness.stats.curves.analyze`), status, and its row (:func:`run_row`)."""

    params: dict[str, Any]
    path: Path
    curve: Any
    analysis: dict[str, Any]
    status: str
    row: dict[str, Any] = field(default_factory=dict)


def load_study_runs(study_dir: str | Path | Sequence[str | Path], fingerprint=None) -> list[CellRun]:
    """Every trial of ``STUDY_DIR/trials/*`` that has a curve (running or failed trials without one are skipped).
    ``fingerprint``: ``run_dir -> str | None``, what a run trained (``harness.train.fingerprint.run_fingerprint``);
    a trial whose fingerprint an earlier trial has is the same training run and is left out (warned).
    ``study_dir`` may be several folders (a study run in parts): their trials are read in order and pooled, and
    the fingerprint check spans them."""
    import logging

    import yaml

    from harness.core import safeyaml

    dirs = [study_dir] if isinstance(study_dir, (str, Path)) else list(study_dir)
    for d in dirs:
        if not (Path(d) / "trials").is_dir():
            raise DataError(f"{d}: no trials/ folder (is it a `harness sweep` output directory?)")
    out: list[CellRun] = []
    seen: dict[str, Path] = {}
    folders = [p for d in dirs for p in sorted(q for q in (Path(d) / "trials").iterdir() if q.is_dir())]
    for folder in folders:
        config = folder / "trial_config.yaml"
        if not config.is_file() or not (folder / CURVE).is_file() or not (folder / RECORD).is_file():
            continue
        params: dict[str, Any] = {}
        # trial_params.yaml: the ablation's own names (an arm among them), over the trial's options
        for f in (config, folder / "trial_params.yaml"):
            if f is config or f.is_file():
                try:
                    safeyaml.check_size(f)
                    params = {**params, **(safeyaml.load(f.read_text()) or {})}
                except (yaml.YAMLError, ValueError) as e:
                    raise DataError(f"{f}: not valid YAML ({' '.join(str(e).split())})") from None
        status = read_record(folder).status
        if status not in FINISHED:
            continue
        fp = fingerprint(folder) if fingerprint is not None else None
        if fp is not None and fp in seen:
            logging.getLogger(__name__).warning("%s trains what %s trains (same training fingerprint): counted once",
                                                folder.name, seen[fp].name)
            continue
        if fp is not None:
            seen[fp] = folder
        curve = read_curve(folder)
        run = CellRun(params, folder, curve, analyze(curve), status)
        run.row = run_row(run)
        out.append(run)
    return out


def _at(curve, step: Any, column: str) -> float | None:
    if curve is None or column not in curve:
        return None
    rows = curve.loc[curve["step"] == step, column].dropna()
    return float(rows.iloc[0]) if len(rows) else None


def run_row(run: CellRun) -> dict[str, Any]:
    """Peak step and the :data:`METRICS` there, collapse onset, final accuracy and status of one run."""
    a = run.analysis
    step = a.get("peak_step")
    row = {m: _at(run.curve, step, m) for m in METRICS}
    row.update(peak_step=step, collapse_step=a.get("collapse_step"), final_accuracy=a.get("final_accuracy"),
               final_step=a.get("final_step"), status=run.status, run=str(run.path),
               retry_onset_step=retry_onset(run.curve), mean_accuracy=_mean_eval(run.curve),
               test_at_selected=_at(run.curve, step, "test_accuracy") if _selected_apart(run) else None)
    return row


def _selected_apart(run: CellRun) -> bool:
    """Whether the run selected its step on another split than the reported one (its record says so)."""
    try:
        peak = read_record(run.path).peak if (run.path / RECORD).is_file() else None
    except DataError:
        return False
    return peak is not None and peak.split is not None and not peak.optimistic


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


def cell_key(params: dict[str, Any], names: Sequence[str]) -> tuple:
    """The values of the factors ``names`` in a trial's ``params``: which cell (or level) it belongs to."""
    return tuple(params.get(n) for n in names)


def check_one_run_per_seed(runs: Sequence[CellRun], factors: Sequence[str], seed_key: str = "seed") -> None:
    """Refuse cells holding two runs of one seed (they would be averaged as seeds and overwrite each other in
    the paired comparison): name the trial options that vary but are not among ``factors``."""
    seen: dict[tuple, CellRun] = {}
    for r in runs:
        key = (*cell_key(r.params, factors), r.params.get(seed_key))
        if key in seen:
            ignore = {*factors, seed_key, "output_dir"}
            varying = sorted(k for k in {k for x in runs for k in x.params} - ignore
                             if len({str(x.params.get(k)) for x in runs}) > 1)
            raise DataError(f"cell {dict(zip(factors, key))} has two runs of {seed_key} {key[-1]} "
                            f"({seen[key].path.name}, {r.path.name}); add the options that tell them apart "
                            f"to --by: {', '.join(varying) or '(none vary: the study holds repeated trials)'}")
        seen[key] = r


def cell_rows(runs: Sequence[CellRun], by: Sequence[str], seed_key: str = "seed") -> list[dict[str, Any]]:
    """One row per cell (a value of every factor in ``by``): means with 95% t-intervals over seeds."""
    rows = []
    cells: dict[tuple, list[CellRun]] = {}
    for r in runs:
        cells.setdefault(cell_key(r.params, by), []).append(r)
    for key in sorted(cells, key=lambda k: tuple(str(x) for x in k)):
        members = sorted(cells[key], key=lambda r: str(r.params.get(seed_key)))
        collapsed = [r for r in members if r.row["collapse_step"] is not None]
        rows.append({
            "cell": dict(zip(by, key)), "seeds": [r.params.get(seed_key) for r in members],
            **{m: _mean_ci([r.row[m] for r in members], m in RATES) for m in METRICS},
            "peak_steps": [r.row["peak_step"] for r in members],
            "final_accuracy": _mean_ci([r.row["final_accuracy"] for r in members], True),
            "mean_accuracy": _mean_ci([r.row["mean_accuracy"] for r in members], True),
            "test_at_selected": _mean_ci([r.row.get("test_at_selected") for r in members], True),
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
        groups.setdefault(cell_key(r.params, by), []).append(r)
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
                outs_a = [outcomes(by_seed[s][a].path, step=by_seed[s][a].row["peak_step"]).outcomes for s in seeds]
                outs_b = [outcomes(by_seed[s][b].path, step=by_seed[s][b].row["peak_step"]).outcomes for s in seeds]
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
            onsets = [(by_seed[s][a].row["retry_onset_step"], by_seed[s][b].row["retry_onset_step"]) for s in seeds]
            comp["onset_differences"] = [x - y for x, y in onsets if x is not None and y is not None]
            comp["onset_sentence"] = (f"retry onset step {a} - {b} per seed: "
                                      + (", ".join(f"{d:+g}" for d in comp["onset_differences"]) or "none comparable"))
            out.append({"within": dict(zip(by, key)), "arm": arm, "a": a, "b": b, **comp, "seed_values": seeds})
    return out
