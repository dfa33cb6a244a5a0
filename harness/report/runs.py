"""Run directories as the reports see them, and runs named by what differs between them.

A run directory (``harness run`` or ``harness train``) holds some of its record (``results.json``,
:class:`harness.core.record.RunRecord`), ``config.json``, ``curve.csv``, ``samples.jsonl`` and
``eval_samples/``; every file is read through :mod:`harness.core.rundir` and
:func:`harness.core.record.read_record`. A file that cannot be read is recorded in :attr:`Run.problems`
and shown in the report instead of stopping it.

A directory that holds none of them is not a run: :func:`check_report_target` refuses it with a
message that lists the run and study directories found below it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.core.errors import ConfigError, DataError
from harness.core.record import Fault, RunRecord, read_record
from harness.core.rundir import (
    RECORD,
    RUN_FILES,
    SAMPLES,
    eval_samples_path,
    eval_steps,
    is_run_dir,
    read_curve,
    read_options,
)
from harness.stats.curves import analyze

#: Config keys that never change what a run measures (left out of labels).
IGNORED_KEYS = {"output_dir", "data_dir", "resume", "report", "threads", "eval_batch_size", "batch_size",
                "save_every", "stop_after", "limit", "eval_limit"}


@dataclass
class SampleFile:
    """One file of episodes: ``samples.jsonl`` of an eval run, or the eval of one step of a training run
    with its roles there (``peak``: the earliest best eval; ``last``: the last eval)."""

    path: Path
    step: int | None = None
    roles: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        if self.step is None:
            return self.path.name
        return f"step {self.step}" + (f" ({', '.join(self.roles)})" if self.roles else "")


@dataclass
class Run:
    """Everything read from one run directory (missing pieces are None or empty)."""

    name: str
    path: Path
    label: str = ""
    kind: str = "unknown"
    curve: pd.DataFrame | None = None
    record: RunRecord | None = None
    #: ``config.json``'s options (``train`` or ``run`` section) and, for training, what they resolved to.
    options: dict[str, Any] = field(default_factory=dict)
    resolved: dict[str, Any] = field(default_factory=dict)
    analysis: dict[str, Any] | None = None
    faults: list[Fault] = field(default_factory=list)
    samples: list[SampleFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def seed(self) -> Any:
        return facts(self).get("seed")

    @property
    def status(self) -> str:
        return self.record.status if self.record else "—"


# ---------------------------------------------------------------- finding runs


def is_study_dir(path: Path) -> bool:
    """A ``harness sweep`` study directory (it holds ``study.db``)."""
    return (path / "study.db").is_file()


def find_reportable(root: Path, max_depth: int = 4, limit: int = 20) -> tuple[list[tuple[Path, str]], bool]:
    """Run and study directories below ``root`` (breadth first, ``max_depth`` levels), and whether the
    list was cut at ``limit``. Run directories are not searched further (their checkpoints are not runs)."""
    found: list[tuple[Path, str]] = []
    level = [root]
    for _ in range(max_depth):
        nxt = []
        for folder in level:
            try:
                children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:
                continue
            for child in children:
                kind = "study" if is_study_dir(child) else "run" if is_run_dir(child) else None
                if kind:
                    found.append((child, kind))
                    if len(found) > limit:
                        return found[:limit], True
                else:
                    nxt.append(child)
        level = nxt
    return found, False


def check_report_target(path: Path) -> str:
    """``"study"`` or ``"run"`` for a directory ``harness report`` can read; a ConfigError otherwise
    (a file, a missing path, or a folder without a run), listing what was found below it."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} does not exist")
    if not path.is_dir():
        hint = (f"; give its folder: harness report {path.parent}" if path.name in RUN_FILES else "")
        raise ConfigError(f"{path} is a file; harness report reads run directories (and sweep study "
                          f"directories){hint}")
    if is_study_dir(path):
        return "study"
    if is_run_dir(path):
        return "run"
    found, cut = find_reportable(path)
    if not found:
        raise ConfigError(f"{path} holds no run (no results.json, curve.csv or samples.jsonl) and no study "
                          "(study.db) at any depth; give a directory written by harness run, harness train "
                          "or harness sweep")
    listing = "; ".join(f"{p} ({kind})" for p, kind in found) + ("; ..." if cut else "")
    raise ConfigError(f"{path} is not a run directory; found below it: {listing}")


# ---------------------------------------------------------------- loading


def load_run(path: Path, name: str | None = None) -> Run:
    """Read a run directory; unreadable files are recorded in ``problems`` instead of raising."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"run directory not found: {path}")
    run = Run(name=name or path.name, path=path)
    run.label = run.name
    for read in (_read_curve, _read_record, _read_options):
        try:
            read(run)
        except (DataError, OSError) as err:
            run.problems.append(str(err))
    run.kind = run.record.kind if run.record else ("train" if run.curve is not None else
                                                   "eval" if (path / SAMPLES).is_file() else "unknown")
    run.faults = list(run.record.faults if run.record else []) + _curve_non_finite(run.curve)
    if (path / SAMPLES).is_file():
        run.samples.append(SampleFile(path / SAMPLES))
    peak_step = run.analysis.get("peak_step") if run.analysis else None
    run.samples += eval_sample_files(path, peak_step)
    return run


def _read_curve(run: Run) -> None:
    if (run.path / "curve.csv").is_file():
        run.curve = numeric_curve(read_curve(run.path))
        run.analysis = analyze(run.curve)


def _read_record(run: Run) -> None:
    if (run.path / RECORD).is_file():
        run.record = read_record(run.path)


def _read_options(run: Run) -> None:
    run.options, run.resolved = read_options(run.path)
    if not run.options and run.record:   # a run directory whose config.json is gone
        run.options = run.record.train_options()


def numeric_curve(curve: pd.DataFrame) -> pd.DataFrame:
    """Every column as numbers (bad cells become NaN), ``reward_std`` added as the mean of the
    ``reward_<name>_std`` columns when it is not logged."""
    curve = curve.apply(pd.to_numeric, errors="coerce")
    parts = [c for c in curve.columns if re.fullmatch(r"reward_.+_std", str(c))]
    if "reward_std" not in curve.columns and parts:
        curve = curve.assign(reward_std=curve[parts].mean(axis=1))
    return curve


def _curve_non_finite(curve: pd.DataFrame | None) -> list[Fault]:
    """A fault for the first infinite value of each training statistic in the curve (NaN cannot be
    told from "not logged" in a CSV; the trainer records those as ``non_finite`` faults)."""
    if curve is None:
        return []
    out = []
    for column in ("loss", "kl", "grad_norm", "entropy", "reward"):
        if column in curve.columns:
            bad = curve[curve[column].map(lambda v: isinstance(v, float) and math.isinf(v))]
            if len(bad):
                out.append(Fault(step=int(bad["step"].iloc[0]), kind="non_finite",
                                 detail=f"{column} = {bad[column].iloc[0]} in curve.csv"))
    return out


def eval_sample_files(run_dir: Path, peak_step: Any) -> list[SampleFile]:
    """The eval-sample files at (or just before) the peak step and at the last step, with their roles."""
    steps = eval_steps(run_dir)
    if not steps:
        return []
    roles: dict[int, list[str]] = {}
    if peak_step is not None:
        at_peak = [s for s in steps if s <= peak_step] or [steps[0]]
        roles.setdefault(at_peak[-1], []).append("peak")
    roles.setdefault(steps[-1], []).append("last")
    return [SampleFile(eval_samples_path(run_dir, s), s, tuple(r)) for s, r in sorted(roles.items())]


# ---------------------------------------------------------------- labels


def facts(run: Run) -> dict[str, Any]:
    """What defines a run, flattened for comparison: preset, each reward weight, noise, seed, model,
    and every other option of its config (train or eval) except where its files go."""
    out: dict[str, Any] = {}
    options = run.options
    if "max_steps" in options:  # a training run made before the remedy options existed trained with their defaults
        options = {**remedy_defaults(), **options}
    for key, value in options.items():
        if key in IGNORED_KEYS or key == "reward_weights":
            continue
        out[key] = _hashable(value)
    weights = run.resolved.get("reward_weights") or (run.record.reward_weights if run.record else None)
    if isinstance(weights, dict):
        for name, w in weights.items():
            out[f"{name} weight"] = w
    for key in ("train_noise", "eval_noise"):
        noise = run.resolved.get(key)
        if isinstance(noise, dict) and "level" in noise:
            out[key.replace("_", " ")] = f"{'+'.join(noise.get('modes') or [])} {noise['level']:g}".strip()
            for option in (key, f"{key}_modes", f"{key}_mode"):
                out.pop(option, None)
    return out


def remedy_defaults() -> dict[str, Any]:
    """The collapse remedies' defaults (``harness train`` options; a run that predates one trained with it off)."""
    from harness.train.config import TrainConfig

    return {k: TrainConfig.model_fields[k].default for k in SHORT_KEYS if k in TrainConfig.model_fields
            and k not in ("learning_rate", "num_generations")}


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, (dict, list)) else value


#: Keys shown first in labels, in this order.
LABEL_ORDER = ("preset", "model", "train noise", "eval noise", "learning_rate", "seed")


#: Derived facts and the options that set them explicitly: a derived difference that no run set
#: explicitly follows from another difference (the preset's weights and noise) and is not repeated.
DERIVED = {" weight": ("reward_weights",), "train noise": ("train_noise", "train_noise_modes", "train_noise_mode"),
           "eval noise": ("eval_noise", "eval_noise_modes", "eval_noise_mode")}


def differing(runs: list[Run]) -> list[str]:
    """The fact keys whose value is not the same for every run, in display order. Reward weights and
    noise that differ only because the preset does are left to the preset."""
    if len(runs) < 2:
        return []
    all_facts = [facts(r) for r in runs]
    keys = sorted({k for f in all_facts for k in f}, key=_label_rank)
    out = [k for k in keys if len({repr(f.get(k)) for f in all_facts}) > 1]
    explained = "preset" in out
    for suffix, options in DERIVED.items():
        explicit = any(r.options.get(o) is not None for r in runs for o in options)
        if explained and not explicit:
            out = [k for k in out if not (k.endswith(suffix) if suffix.startswith(" ") else k == suffix)]
    return out


def _label_rank(key: str) -> tuple[int, str]:
    if key in LABEL_ORDER:
        return LABEL_ORDER.index(key), key
    return (len(LABEL_ORDER) - 1 if key.endswith(" weight") else len(LABEL_ORDER)), key


def assign_labels(runs: list[Run], max_keys: int = 4) -> list[str]:
    """Label each run by what differs between the runs ('preset baseline · seed 1'); the directory
    name when nothing differs or nothing is known; made unique with the directory name."""
    keys = differing(runs)
    labels = []
    for run in runs:
        f = facts(run)
        parts = [f"{_short_key(k)} {_short_value(f.get(k))}" for k in keys[:max_keys]]
        if len(keys) > max_keys:
            parts.append(f"+{len(keys) - max_keys} more")
        labels.append(" · ".join(parts) if parts and f else run.name)
    counts = {lb: labels.count(lb) for lb in labels}
    labels = [f"{lb} ({run.name})" if counts[lb] > 1 and lb != run.name else lb for lb, run in zip(labels, runs)]
    for run, label in zip(runs, labels):
        run.label = label
    return labels


def _short_key(key: str) -> str:
    return SHORT_KEYS.get(key, key)


#: Short names of options in run labels (the collapse remedies among them).
SHORT_KEYS = {"learning_rate": "lr", "num_generations": "G", "epsilon_high": "clip-high",
              "entropy_coef": "entropy bonus",
              "importance_sampling_level": "IS level", "scale_rewards": "reward scaling",
              "mask_truncated_completions": "mask truncated", "sync_ref_model": "ref sync",
              "ref_model_mixup_alpha": "ref sync alpha", "ref_model_sync_steps": "ref sync every",
              "drop_zero_std_groups": "drop flat groups", "train_noise_schedule": "noise schedule",
              "on_collapse": "on collapse", "rollback_lr_factor": "rollback lr x", "max_rollbacks": "max rollbacks",
              "loss_type": "loss"}


def _short_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def seed_groups(runs: list[Run]) -> list[tuple[str, list[Run]]]:
    """Runs that differ only by seed, grouped (groups of two or more with distinct seeds), with a
    label from what differs between the groups."""
    buckets: dict[str, list[Run]] = {}
    for run in runs:
        f = facts(run)
        if "seed" not in f:
            continue
        key = json.dumps({k: v for k, v in f.items() if k != "seed"}, sort_keys=True, default=str)
        buckets.setdefault(key, []).append(run)
    groups = [g for g in buckets.values() if len(g) >= 2 and len({repr(r.seed) for r in g}) == len(g)]
    if not groups:
        return []
    heads = [g[0] for g in groups]
    keys = [k for k in differing(heads) if k != "seed"]
    out = []
    for g in groups:
        f = facts(g[0])
        label = " · ".join(f"{_short_key(k)} {_short_value(f.get(k))}" for k in keys[:4]) or "all runs"
        out.append((label, sorted(g, key=lambda r: str(r.seed))))
    return out
