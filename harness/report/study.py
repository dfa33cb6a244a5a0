"""What a study report shows, as plain tables: an Optuna sweep (``harness sweep``) read from its storage.

The study is read from its RDB storage (``sqlite:///<study_dir>/study.db`` by default; nothing is
written) and each trial's ``curve.csv`` from its ``run_dir`` attribute. :func:`collect` builds:

- the trials (number, state, objective values, parameters, peak / collapse attributes);
- the best trials: top 10 by value, or the Pareto front of a multi-objective study;
- one **comparison per arm parameter**: every categorical parameter other than the seed with 2–8
  values (``preset: [rezero, baseline]``, ``train_noise``), and ``reward.retry`` (arms ``retry`` where it
  is > 0, ``baseline`` where it is 0): completed trials grouped by the other arm parameters and the
  arm, mean peak accuracy (or the objective, when it is auc or final) with a 95% Student-t interval
  across seeds, and, where trials share seeds,
  the arms' differences paired by seed (:func:`harness.report.comparisons.seed_pair_rows`);
- fANOVA parameter importances, only with enough completed trials (:func:`importance_floor`); with
  fewer, a warning says why they are left out;
- the best trial against each of the next ones, paired on the held-out questions, on the objective
  itself (:mod:`harness.stats.ranking`), and a warning when the objective is the same in every
  completed trial (then nothing can be ranked, and importances are left out).

Trials not run because an earlier trial had their parameters (``stopped: duplicate``, pruned) are
counted (``duplicates``) but are in no table: one configuration is never counted twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.core.errors import ConfigError
from harness.core.numbers import number
from harness.core.storage import mask_url, storage_error, storage_url
from harness.report.comparisons import SEED_PAIR_HEADER, seed_pair_rows
from harness.stats.intervals import clip01, t_interval
from harness.stats.ranking import RANKED_OBJECTIVES, RANKING_HEADER, versus_best

RETRY_PARAM, NOISE_PARAM, SEED_PARAM = "reward.retry", "train_noise", "seed"
TOP_N = 10
MAX_ARMS = 8
ATTRS = ("peak", "peak_step", "collapse_step", "zero_step", "stopped", "run_dir")


# ---------------------------------------------------------------- loading


def shown_url(url: str, cwd: str | Path | None = None) -> str:
    """The storage URL as a report shows it: password masked (:func:`mask_url`), and a SQLite file under
    the current directory named relative to it, so a page shared from a run folder names no path of the
    machine it was made on.

    >>> shown_url("sqlite:////home/me/proj/runs/sweeps/x/study.db", cwd="/home/me/proj")
    'sqlite:///runs/sweeps/x/study.db'
    >>> shown_url("sqlite:////elsewhere/study.db", cwd="/home/me/proj")
    'sqlite:////elsewhere/study.db'
    """
    prefix = "sqlite:///"
    if url.startswith(prefix + "/"):
        path = Path(url[len(prefix):])
        try:
            return prefix + path.relative_to(Path(cwd) if cwd is not None else Path.cwd()).as_posix()
        except ValueError:
            return url
    return mask_url(url)


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
    """Load a study for reading (nothing is written); a missing SQLite file, a storage that cannot be opened or
    a study name it lacks is a ConfigError (one line, the password masked)."""
    import optuna

    if storage.startswith("sqlite:///") and storage != "sqlite:///:memory:":
        path = Path(storage[len("sqlite:///"):])
        if not path.is_file():
            raise ConfigError(f"no study database at {path}")
    try:
        rdb = optuna.storages.get_storage(storage_url(storage))  # opened once: each opening checks the schema
        name = resolve_study_name(rdb, study_name, where=mask_url(storage))
        return optuna.load_study(study_name=name, storage=rdb)
    except ValueError as e:      # no such study, or several to choose from
        raise ConfigError(str(e)) from None
    except Exception as e:
        msg = storage_error(storage, e)
        if msg is None:
            raise
        raise ConfigError(msg) from None


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


def choice_orders(study) -> dict[str, list[str]]:
    """Each categorical parameter's arms as the ablation lists its choices (labels, in order)."""
    return {name: [arm_label(name, c) for c in choices] for name, choices in raw_choices(study).items()}


def raw_choices(study) -> dict[str, list[Any]]:
    """Each categorical parameter's choices, as sampled."""
    from optuna.distributions import CategoricalDistribution

    out: dict[str, list[Any]] = {}
    for t in study.trials:
        for name, d in t.distributions.items():
            if isinstance(d, CategoricalDistribution) and name not in out:
                out[name] = list(d.choices)
    return out


def categorical_params(study) -> list[str]:
    """Parameters sampled from a categorical distribution in any trial, and the seed (always a label)."""
    from optuna.distributions import CategoricalDistribution

    out = {name for t in study.trials for name, d in t.distributions.items() if isinstance(d, CategoricalDistribution)}
    out |= {name for t in study.trials for name in t.params if name == SEED_PARAM}
    return sorted(out)


# ---------------------------------------------------------------- tables


@dataclass
class Comparison:
    """Completed trials compared across the values (arms) of one parameter."""

    param: str
    context: list[str]
    table: pd.DataFrame
    paired: list[list[Any]] = field(default_factory=list)
    #: what the arms are compared on: ``peak``, or the study's objective when it is ``auc`` or ``final``
    metric: str = "peak"


@dataclass
class StudyData:
    """Everything the report and the JSON summary show, as plain frames."""

    name: str
    storage: str
    directions: list[str]
    objectives: list[str]
    params: list[str]
    trials: pd.DataFrame
    categorical: list[str] = field(default_factory=list)
    choices: dict[str, list[str]] = field(default_factory=dict)
    values: dict[str, list[Any]] = field(default_factory=dict)
    objective_aliases: list[str] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    best: pd.DataFrame = field(default_factory=pd.DataFrame)
    comparisons: list[Comparison] = field(default_factory=list)
    failed: pd.DataFrame = field(default_factory=pd.DataFrame)
    importances: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: the best trial against the others, paired on the questions (:func:`harness.stats.ranking.versus_best`)
    ranking: dict[str, Any] = field(default_factory=dict)
    #: what the best trials' table cannot be read as (a constant objective; the ranking's sentence)
    best_notes: list[str] = field(default_factory=list)
    best_warnings: list[str] = field(default_factory=list)
    duplicates: int = 0
    #: each trial's curve.csv, by trial number, read once (:func:`read_curves`) for the ranking and the figures
    curves: dict[int, pd.DataFrame] = field(default_factory=dict)
    #: the sweep's command-line overrides (``--max-steps 2``, ``--set k=v``): each distinct set, with its trials
    overrides: list[tuple[dict[str, Any], list[int]]] = field(default_factory=list)
    #: protocol fields that differ between the trials' records (:func:`harness.report.protocol.protocol_differences`)
    protocol: list[str] = field(default_factory=list)
    #: the trials' selection split ("dev"; "test" is the paper's protocol, optimistic), when they share one
    selection: str | None = None
    optimistic: bool = False

    @property
    def done(self) -> pd.DataFrame:
        return self.trials[self.trials["state"] == "COMPLETE"] if len(self.trials) else self.trials


def best_trials(study, trials: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Top ``TOP_N`` complete trials by value (single objective) or the Pareto front (multi)."""
    if len(study.directions) > 1:
        numbers = [t.number for t in study.best_trials]
        return trials[trials["number"].isin(numbers)][columns].sort_values("number")
    done = trials[trials["state"] == "COMPLETE"].sort_values("number")
    ascending = study.direction.name == "MINIMIZE"   # stable: ties keep the lower trial number first
    value = objective_names(study)[0]
    return done.sort_values(value, ascending=ascending, kind="mergesort").head(TOP_N)[columns]


def arm_label(param: str, value: Any) -> str:
    """The arm a parameter value belongs to: ``retry``/``baseline`` for ``reward.retry``, else the value.

    >>> arm_label("reward.retry", 0.0), arm_label("reward.retry", 0.5), arm_label("preset", "rezero")
    ('baseline', 'retry', 'rezero')
    """
    if param == RETRY_PARAM:
        return "retry" if float(value) > 0 else "baseline"
    return f"{value:g}" if isinstance(value, float) else str(value)


def arm_params(data: StudyData) -> list[str]:
    """Parameters to compare arms of: ``reward.retry``, then every categorical parameter (not the seed)
    with 2 to :data:`MAX_ARMS` values among completed trials."""
    done = data.done
    out = [RETRY_PARAM] if RETRY_PARAM in data.params and RETRY_PARAM in done else []
    for p in data.categorical:
        if p in (SEED_PARAM, RETRY_PARAM) or p not in done:
            continue
        if 2 <= done[p].dropna().astype(str).nunique() <= MAX_ARMS:
            out.append(p)
    return out


def first_objective(data: StudyData, among: tuple[str, ...]) -> tuple[str, str] | None:
    """(column, what it measures) of the study's first objective when it measures one of ``among``."""
    aliases = data.objective_aliases or []
    return (data.objectives[0], aliases[0]) if aliases and aliases[0] in among else None


def compared_metric(data: StudyData) -> tuple[str, str]:
    """(column, label) the arm comparisons use: the study's objective when it is ``auc`` or ``final`` (a
    study that ranks on them means them), else each trial's ``peak``."""
    return first_objective(data, ("auc", "final")) or ("peak", "peak")


def paired_header(label: str = "peak") -> list[str]:
    """:data:`PAIRED_HEADER` with the compared metric named."""
    return ["where", *[h.replace("peak", label) for h in SEED_PAIR_HEADER]]


def compare_arms(data: StudyData, param: str) -> Comparison:
    """Completed trials grouped by the other arm parameters and this parameter's arm: the mean of the
    compared metric (:func:`compared_metric`) with its 95% Student-t interval across seeds, mean peak
    step, collapses; paired by seed where possible."""
    column, label = compared_metric(data)
    done = data.done[data.done[param].notna()].copy()
    done["arm"] = [arm_label(param, v) for v in done[param]]
    context = [p for p in arm_params(data) if p != param]
    keys = [*context, "arm"]
    rows, paired = [], []
    for key, cell in done.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        peaks = [p for p in map(number, cell[column]) if p is not None]
        low, high = clip01(t_interval(peaks))
        collapses = [c for c in map(number, cell["collapse_step"]) if c is not None]
        rows.append({**dict(zip(keys, key)), "n": len(cell),
                     f"mean {label}": sum(peaks) / len(peaks) if peaks else None, "ci low": low, "ci high": high,
                     "mean peak step": pd.to_numeric(cell["peak_step"], errors="coerce").mean(),
                     "mean collapse step": sum(collapses) / len(collapses) if collapses else None,
                     "collapsed": f"{len(collapses)}/{len(cell)}"})
    order = data.choices.get(param, [])
    rank = {a: (order.index(a) if a in order else len(order), a) for a in map(str, done["arm"])}
    if rows:
        frame = pd.DataFrame(rows)
        frame = frame.sort_values([*context, "arm"], key=lambda col: col.map(rank) if col.name == "arm" else col,
                                  kind="mergesort").reset_index(drop=True)
    else:
        frame = pd.DataFrame()
    if SEED_PARAM in done.columns:
        groups = done.groupby(context, sort=True, dropna=False) if context else [((), done)]
        for ctx, part in groups:
            ctx = ctx if isinstance(ctx, tuple) else (ctx,)
            arms = []
            for arm, cell in sorted(part.groupby("arm", sort=True), key=lambda kv: rank[str(kv[0])]):
                arms.append((str(arm), {s: number(p) for s, p in zip(cell[SEED_PARAM], cell[column])}))
            where = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in zip(context, ctx))
            paired += [[where or "all", *r] for r in seed_pair_rows(arms)]
    return Comparison(param, context, frame, paired, metric=label)


PAIRED_HEADER = ["where", *SEED_PAIR_HEADER]


def importance_floor(n_params: int) -> int:
    """Completed trials needed before fANOVA importances are shown: 10, and 4 per parameter.

    >>> importance_floor(2), importance_floor(3), importance_floor(5)
    (10, 12, 20)
    """
    return max(10, 4 * n_params)


def param_importances(study, objectives: list[str], only: list[str] | None = None
                      ) -> tuple[dict[str, dict[str, float]], list[str]]:
    """fANOVA importances per objective (those in ``only``, when given), and notes for any that could not
    be computed."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    out, notes = {}, []
    for i, name in enumerate(objectives):
        if only is not None and name not in only:
            continue
        try:
            target = None if len(objectives) == 1 else (lambda t, i=i: t.values[i])
            imp = optuna.importance.get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0),
                                                          target=target)
            out[name] = {k: float(v) for k, v in imp.items()}
        except Exception as err:  # no varying parameter, ...
            notes.append(f"Importances for {name} unavailable: {err}")
    return out, notes


def collect(storage: str, study_name: str | None = None) -> StudyData:
    """Load the study and build every table of the report."""
    study = load_study(storage, study_name)
    trials, objectives = trials_frame(study), objective_names(study)
    params = sorted({p for t in study.trials for p in t.params})
    data = StudyData(study.study_name, shown_url(storage), [d.name.lower() for d in study.directions],
                     objectives, params, trials, categorical=categorical_params(study), choices=choice_orders(study),
                     values=raw_choices(study), objective_aliases=_aliases(study, objectives),
                     states={str(k): int(v) for k, v in trials["state"].value_counts().items()})
    recs = read_records(trials) if len(trials) else {}
    if len(trials):
        trials["test_at_selected"] = [_reported(recs.get(int(n))) for n in trials["number"]]
    from harness.report.protocol import protocol_differences

    data.protocol = protocol_differences([(f"trial {n}", r.comparability) for n, r in sorted(recs.items())])
    splits = {(r.peak.split or "test", bool(r.peak.optimistic or r.peak.split is None))
              for r in recs.values() if r.peak}
    if len(splits) == 1:
        data.selection, data.optimistic = next(iter(splits))
    shown = ["number", *objectives, "test_at_selected", *params, "peak", "peak_step", "collapse_step", "run_dir"]
    data.best = best_trials(study, trials, shown) if len(trials) else pd.DataFrame()
    data.comparisons = [compare_arms(data, p) for p in arm_params(data)]
    if len(trials):
        data.failed = trials[trials["state"] == "FAIL"][["number", *params, "fail_reason", "run_dir"]]
    data.duplicates = int((trials["stopped"] == "duplicate").sum()) if len(trials) else 0
    data.curves = read_curves(trials) if len(trials) else {}
    data.overrides = trial_overrides(study)
    constant = constant_objectives(data)
    aliases = data.objective_aliases or objectives
    for column, alias in zip(objectives, aliases):
        if column not in constant:
            continue
        hint = (" When every trial reaches the same peak, an objective over the whole run (auc or final) can "
                "separate them." if alias == "peak" else "")
        data.best_warnings.append(
            f"Every completed trial ({len(data.done)}) has the same {alias}: {constant[column]:g}. "
            f"It does not separate the configurations, so the order, the plots and the importances on {alias} "
            "say nothing about them."
            + hint)
    rank_by = first_objective(data, RANKED_OBJECTIVES)   # a mean over questions (peak of peak_and_collapse too)
    if rank_by is not None and len(data.done) >= 2 and rank_by[0] not in constant:
        data.ranking = rank_trials(data, *rank_by)
        if data.ranking:
            from harness.stats.ranking import ranking_sentence

            (data.best_warnings if data.ranking.get("error") else data.best_notes).append(
                ranking_sentence(data.ranking))
    n_done, floor = len(data.done), importance_floor(len(params))
    if n_done >= floor:
        varying = [o for o in objectives if o not in constant]
        imp, notes = param_importances(study, objectives, only=varying) if varying else ({}, [])
        data.importances, data.notes = imp, notes + [
            f"Importances for {a} are left out: it is the same in every completed trial."
            for o, a in zip(objectives, aliases) if o in constant]
    else:
        data.warnings.append(
            f"Parameter importances are left out: {n_done} completed trial(s) for {len(params)} parameter(s); "
            f"fANOVA fits a random forest to the trials and needs at least {floor} (10, and 4 per parameter) "
            "before its ranking means anything. Read the comparison and the parameter plots instead.")
    return data


def trial_overrides(study) -> list[tuple[dict[str, Any], list[int]]]:
    """Each distinct set of command-line overrides the study's trials ran under (``harness sweep --max-steps 2``,
    ``--set k=v``: the trial attribute ``overrides``), with the numbers of its trials; trials recorded before
    the attribute existed are left out."""
    groups: dict[str, tuple[dict[str, Any], list[int]]] = {}
    for t in study.trials:
        ov = t.user_attrs.get("overrides")
        if isinstance(ov, dict):
            groups.setdefault(repr(sorted(ov.items())), (ov, []))[1].append(t.number)
    return list(groups.values())


def overrides_text(overrides: list[tuple[dict[str, Any], list[int]]], n_trials: int) -> str | None:
    """A sentence on the overrides a study ran under; None when no trial had any.

    >>> overrides_text([({"max_steps": 2, "model": "tiny"}, [0, 1])], 2)
    'Command-line overrides (not the ablation file as written): max_steps=2, model=tiny (every trial).'
    >>> overrides_text([({}, [0]), ({"max_steps": 2}, [1])], 2)
    'Command-line overrides (not the ablation file as written): max_steps=2 (trial 1); none (trial 0).'
    >>> overrides_text([({}, [0, 1])], 2) is None
    True
    """
    if not any(ov for ov, _ in overrides):
        return None
    ordered = sorted(overrides, key=lambda g: (not g[0], g[1]))

    def which(numbers: list[int]) -> str:
        if len(overrides) == 1 and len(numbers) == n_trials:
            return "every trial"
        return ("trial " if len(numbers) == 1 else "trials ") + ", ".join(map(str, numbers))

    return ("Command-line overrides (not the ablation file as written): "
            + "; ".join((", ".join(f"{k}={v}" for k, v in sorted(ov.items())) or "none") + f" ({which(nums)})"
                        for ov, nums in ordered) + ".")


#: Completed trials before "every trial has the same value" is worth a warning.
CONSTANT_MIN_TRIALS = 3


def constant_objectives(data: StudyData) -> dict[str, float]:
    """{objective column: value} for each objective equal in all completed trials (at least
    :data:`CONSTANT_MIN_TRIALS` of them)."""
    done, out = data.done, {}
    for col in data.objectives:
        values = pd.to_numeric(done[col], errors="coerce").dropna() if col in done else pd.Series(dtype=float)
        if len(values) >= CONSTANT_MIN_TRIALS and float(values.max() - values.min()) <= 1e-12:
            out[col] = float(values.iloc[0])
    return out


def read_records(trials: pd.DataFrame) -> dict[int, Any]:
    """{trial number: its run record} for every trial whose ``run_dir`` holds a readable ``results.json``."""
    from harness.core.errors import DataError
    from harness.core.record import read_record

    out = {}
    for row in trials.to_dict("records"):
        run_dir = row.get("run_dir")
        if not isinstance(run_dir, str) or not (Path(run_dir) / "results.json").is_file():
            continue
        try:
            out[int(row["number"])] = read_record(run_dir)
        except DataError:
            continue
    return out


def _reported(record: Any) -> float | None:
    """The reported split's accuracy at the trial's selected step (None where unknown)."""
    peak = getattr(record, "peak", None)
    return peak.reported.accuracy if peak is not None and peak.reported is not None else None


def read_curves(trials: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """{trial number: its curve} for every trial whose ``run_dir`` holds a readable ``curve.csv``."""
    from harness.core.rundir import read_curve

    out = {}
    for row in trials.to_dict("records"):
        try:
            out[int(row["number"])] = read_curve(Path(row["run_dir"]))
        except (TypeError, OSError, ValueError, KeyError):
            continue  # a duplicate, a trial that never started, a broken file: the figures and ranking say so
    return out


def rank_trials(data: StudyData, column: str, objective: str) -> dict[str, Any]:
    """The best :data:`TOP_N` completed trials on ``column``, the best compared with each of the others
    (:func:`harness.stats.ranking.versus_best`; a trial without a curve is reported as skipped)."""
    done = data.done.copy()
    done["value"] = pd.to_numeric(done[column], errors="coerce")
    # ties: the lower trial number first, as in the best-trials table
    top = done.dropna(subset=["value"]).sort_values(["value", "number"], ascending=[False, True]).head(TOP_N)
    trials = top.to_dict("records")
    return versus_best(trials, objective, data.curves) if trials else {}


def _aliases(study, objectives: list[str]) -> list[str]:
    """What each objective measures, as ``harness sweep`` records it (study attribute ``objectives``)."""
    names = study.user_attrs.get("objectives")
    return [str(n) for n in names] if isinstance(names, list) and len(names) == len(objectives) else []


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-safe records: NaN becomes None, numpy scalars become Python numbers."""
    return [{k: plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def plain(v: Any) -> Any:
    """A JSON-safe scalar."""
    if hasattr(v, "item"):
        v = v.item()
    return None if isinstance(v, float) and math.isnan(v) else v


def study_summary(storage: str, study_name: str | None = None) -> dict[str, Any]:
    """The report's tables as JSON-serialisable records (``harness report STUDY_DIR --json``)."""
    d = collect(storage, study_name)
    return {"study": d.name, "storage": d.storage, "directions": d.directions, "objectives": d.objectives,
            "states": d.states, "params": d.params, "categorical_params": d.categorical,
            "best_kind": "pareto_front" if len(d.directions) > 1 else f"top_{TOP_N}",
            "best": records(d.best),
            "comparisons": [{"param": c.param, "context": c.context, "metric": c.metric, "rows": records(c.table),
                             "paired_by_seed": [dict(zip(PAIRED_HEADER, r)) for r in c.paired]}
                            for c in d.comparisons],
            "comparison_ci": "95% Student-t interval across seeds", "importances": d.importances,
            "failed": records(d.failed), "notes": d.notes, "warnings": d.warnings,
            "duplicates": d.duplicates,
            "versus_best": ({**d.ranking, "header": RANKING_HEADER,
                             "rows": [dict(zip(RANKING_HEADER, r)) for r in d.ranking.get("rows", [])]}
                            if d.ranking else None),
            "best_notes": d.best_notes, "best_warnings": d.best_warnings,
            "overrides": [{"overrides": ov, "trials": nums} for ov, nums in d.overrides],
            "protocol_differences": d.protocol, "selection_split": d.selection, "optimistic": d.optimistic}
