"""The early-warning corpus: real micro runs' curves, kept small, labelled, and scored against the indicators.

``harness bench corpus RUN_DIR... -o tests/data/micro_corpus --prefix P`` copies each run's ``curve.csv``
(only the columns the detectors and indicators read) to ``NAME.csv`` and writes ``manifest.json``: how
each run was made (from its ``config.json``) and its labels:

``peak_step`` / ``peak``   the best held-out eval
``collapse_step``          the *sustained drop*: the first eval after the peak from which every later eval is
                           below half the peak accuracy, with at least two such evals (the project's definition of
                           a collapse, "below half the peak and staying there", read off the observed curve; the
                           synthetic set plants the same fall on the true curve; None when the run never drops so)
``detector_collapse_step`` what the offline noise-aware detector reports (:func:`harness.stats.curves.analyze`)
``training_fingerprint``   what the run trained, as a hash (:mod:`harness.train.fingerprint`)
``duplicate_of``           the run of the same training fingerprint this one repeats (the first by name); a
                           duplicate stays in the manifest, with its curve, but no corpus reader counts it

``harness bench detect --corpus tests/data/micro_corpus`` then scores the indicators on them against these
labels (``--runs FILE.csv`` would use the offline detector's collapse instead).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.core.errors import DataError
from harness.core.io import atomic_write_text
from harness.core.record import read_record
from harness.core.rundir import RECORD, read_options

log = logging.getLogger(__name__)

#: Columns kept from curve.csv (when present): evals, the indicators' inputs, what explains a collapse.
KEEP = ("step", "accuracy", "n", "answer_rate", "searches_per_episode", "format_validity", "persistence",
        "wasted_retries", "reward", "reward_std", "frac_reward_zero_std", "loss", "kl", "entropy", "grad_norm",
        "completion_length", "learning_rate", "logp_correct", "frac_groups_dropped", "train_noise_level",
        "intervention", "rollback_to", "lr_scale")
#: Column patterns kept too: each reward component's mean and within-group std (reward_<name>_mean / _std).
KEEP_PREFIX = "reward_"


def sustained_drop(steps: Sequence[float], accuracy: Sequence[float], fraction: float = 0.5,
                   min_evals: int = 2) -> float | None:
    """First eval step after the peak from which every later eval is below ``fraction`` x the peak.

    >>> sustained_drop([0, 10, 20, 30, 40], [0.5, 0.9, 0.3, 0.2, 0.1])
    20
    >>> sustained_drop([0, 10, 20, 30, 40], [0.5, 0.9, 0.3, 0.7, 0.1]) is None  # recovers, then one low eval
    True
    """
    acc = np.asarray(accuracy, dtype=float)
    if not len(acc):
        return None
    peak = int(np.argmax(acc))
    low = acc < fraction * acc[peak]
    start = None
    for i in range(len(acc) - 1, peak, -1):
        if not low[i]:
            break
        start = i
    if start is None or len(acc) - start < min_evals:
        return None
    return steps[start]


#: The training options the manifest records for a run (with ``train_noise`` and its modes as resolved).
FACTS = ("task", "model", "preset", "learning_rate", "beta", "seed", "max_steps", "eval_every", "num_generations",
         "prompts_per_step", "reward_weights")


#: Stability options (docs/remedies.md) the manifest records when a run set them: they change the training, so
#: the fingerprint recomputed from the manifest's facts (:func:`facts_fingerprint`) needs them.
REMEDY_FACTS = ("loss_type", "importance_sampling_level", "epsilon_high", "entropy_coef", "scale_rewards",
                "mask_truncated_completions", "sync_ref_model", "ref_model_mixup_alpha", "ref_model_sync_steps",
                "drop_zero_std_groups", "on_collapse", "rollback_lr_factor", "max_rollbacks", "train_noise_schedule",
                "train_noise_start", "train_noise_base")


def _config_facts(run: Path) -> dict[str, Any]:
    """The training options the manifest records for a run (read by :func:`harness.core.rundir.read_options`),
    and its training fingerprint."""
    from harness.train.fingerprint import run_fingerprint

    train, resolved = read_options(run)
    noise = resolved.get("train_noise") or {}
    return {**{k: train.get(k) for k in FACTS}, **{k: train[k] for k in REMEDY_FACTS if train.get(k) is not None},
            "train_noise": noise.get("level"),
            "train_noise_modes": noise.get("modes"), "training_fingerprint": run_fingerprint(run)}


def facts_fingerprint(entry: dict[str, Any]) -> str:
    """The training fingerprint of a manifest entry made before the manifest recorded one, from its facts
    (the options it does not record were at their defaults in those runs; ``task`` apollo3_micro unless given).

    >>> e = {"model": "micro", "preset": "rezero", "learning_rate": 5e-4, "seed": 1, "max_steps": 50,
    ...      "num_generations": 8, "prompts_per_step": 2, "train_noise": 0.5, "train_noise_modes": ["drop_gold"]}
    >>> facts_fingerprint(e) == facts_fingerprint({**e, "max_steps": 30, "eval_every": 2})
    True
    """
    from harness.train.fingerprint import config_from_options, training_fingerprint

    options = {k: entry[k] for k in FACTS + REMEDY_FACTS + ("train_noise", "train_noise_modes")
               if entry.get(k) is not None}
    options.setdefault("task", "apollo3_micro")
    return training_fingerprint(config_from_options(options))


def mark_duplicates(runs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Set ``duplicate_of`` on every entry whose training fingerprint an earlier entry (by name) has; returns
    ``{duplicate: kept}``.

    >>> runs = {"b": {"training_fingerprint": "f1"}, "a": {"training_fingerprint": "f1"}, "c": {}}
    >>> mark_duplicates(runs), runs["b"]["duplicate_of"], "duplicate_of" in runs["a"]
    ({'b': 'a'}, 'a', False)
    """
    first: dict[str, str] = {}
    out = {}
    for name in sorted(runs):
        entry = runs[name]
        entry.pop("duplicate_of", None)
        fp = entry.get("training_fingerprint")
        if fp is None:
            continue
        if fp in first:
            entry["duplicate_of"] = out[name] = first[fp]
        else:
            first[fp] = name
    return out


def export_corpus(run_dirs: Sequence[str | Path], out_dir: str | Path, names: Sequence[str] | None = None,
                  source: str = "") -> dict[str, Any]:
    """Copy the runs' trimmed curves into ``out_dir`` with a ``manifest.json`` (merged with an existing one)."""

    from harness.core.rundir import read_curve
    from harness.stats.curves import analyze

    out = Path(out_dir)
    given = list(names) if names else [Path(d).name for d in run_dirs]
    dupes = sorted({n for n in given if given.count(n) > 1})
    if dupes:
        raise DataError(f"two runs would be saved as {dupes[0]}.csv (runs of different studies share folder names "
                        "such as trial_0000): export them in separate calls with different --prefix values")
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"runs": {}}
    for i, d in enumerate(run_dirs):
        run = Path(d)
        if not (run / "curve.csv").is_file():
            raise DataError(f"{run}: no curve.csv (not a harness train run directory)")
        name = names[i] if names else run.name
        curve = read_curve(run)
        kept = curve[[c for c in curve.columns if c in KEEP or (c.startswith(KEEP_PREFIX) and c.endswith(("_mean",
                                                                                                          "_std")))]]
        evals = kept[kept["accuracy"].notna()]
        analysis = analyze(curve)
        atomic_write_text(out / f"{name}.csv", kept.to_csv(index=False, float_format="%.6g"))
        status = read_record(run).status if (run / RECORD).is_file() else None
        manifest["runs"][name] = {
            **_config_facts(run), "source": source, "status": status, "n_evals": len(evals),
            "peak_step": analysis["peak_step"], "peak": analysis["peak"],
            "collapse_step": sustained_drop(evals["step"].tolist(), evals["accuracy"].tolist()),
            "detector_collapse_step": analysis["collapse_step"],
        }
    for entry in manifest["runs"].values():
        if entry.get("training_fingerprint") is None:
            entry["training_fingerprint"] = facts_fingerprint(entry)
    for dup, kept in mark_duplicates(manifest["runs"]).items():
        log.warning("corpus: %s trains what %s trains (same training fingerprint): kept, marked duplicate_of and "
                    "left out by every corpus reader", dup, kept)
    manifest["runs"] = dict(sorted(manifest["runs"].items()))
    manifest["collapse_rule"] = ("collapse_step: the first eval after the peak from which every later eval is below "
                                 "half the peak accuracy, with at least two such evals")
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest


def configuration_key(entry: dict[str, Any]) -> str:
    """A manifest entry's configuration: its training fingerprint with the seed left out (seeds of one recipe
    share it; the early-warning analysis holds them out together)."""
    return facts_fingerprint({**entry, "seed": 0})


def warning_runs(folder: str | Path) -> list:
    """The corpus's distinct runs as :class:`harness.stats.warning.WarningRun` (curve, labelled collapse,
    configuration)."""
    from harness.core.rundir import read_curve
    from harness.stats.warning import WarningRun

    folder = Path(folder)
    runs = json.loads((folder / "manifest.json").read_text())["runs"]
    mark_duplicates(runs)
    return [WarningRun(name, read_curve(folder / f"{name}.csv"), r["collapse_step"], configuration_key(r))
            for name, r in sorted(runs.items()) if not r.get("duplicate_of")]


def format_warnings(result: dict[str, Any]) -> str:
    """The leave-one-configuration-out AUROC table and the fixed-threshold rule (harness.stats.warning)."""
    lines = [f"early warnings as a prediction (collapse within the next {result['k']} evals): {result['runs']} runs, "
             f"{result['collapsing']} collapsing, {result['configurations']} configurations, {result['examples']} "
             f"examples ({result['positives']} positive); {result['permutations']} label permutations",
             f"{'feature set':28}  {'LOCO AUROC':>10}  {'null mean':>9}  {'p':>6}"]
    for name, m in result["models"].items():
        a = "-" if m["auroc"] is None else f"{m['auroc']:.3f}"
        nm = "-" if m["null_mean"] is None else f"{m['null_mean']:.3f}"
        p = "-" if m["p"] is None else f"{m['p']:.3f}"
        lines.append(f"{name:28}  {a:>10}  {nm:>9}  {p:>6}")
    lines.append("fixed rule (feature > 2 spreads): warned before the collapse / warnable; false / healthy")
    for name, r in result["threshold_rule"].items():
        lines.append(f"  {name:26}  {r['warned']}/{r['warnable']}   {r['false']}/{r['healthy']}")
    return "\n".join(lines)
