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

``harness bench detect --corpus tests/data/micro_corpus`` then scores the indicators on them against these
labels (``--runs FILE.csv`` would use the offline detector's collapse instead).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.core.errors import DataError
from harness.core.io import atomic_write_text
from harness.core.record import read_record
from harness.core.rundir import RECORD, read_options

#: Columns kept from curve.csv (when present): evals, the indicators' inputs, what explains a collapse.
KEEP = ("step", "accuracy", "n", "answer_rate", "searches_per_episode", "format_validity", "persistence",
        "wasted_retries", "reward", "reward_std", "frac_reward_zero_std", "loss", "kl", "entropy", "grad_norm",
        "completion_length")


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


def _config_facts(run: Path) -> dict[str, Any]:
    """The training options the manifest records for a run (read by :func:`harness.core.rundir.read_options`)."""
    train, resolved = read_options(run)
    noise = resolved.get("train_noise") or {}
    keys = ("model", "preset", "learning_rate", "beta", "seed", "max_steps", "eval_every", "num_generations",
            "prompts_per_step", "reward_weights")
    return {**{k: train.get(k) for k in keys}, "train_noise": noise.get("level"),
            "train_noise_modes": noise.get("modes")}


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
        kept = curve[[c for c in KEEP if c in curve.columns]]
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
    manifest["runs"] = dict(sorted(manifest["runs"].items()))
    manifest["collapse_rule"] = ("collapse_step: the first eval after the peak from which every later eval is below "
                                 "half the peak accuracy, with at least two such evals")
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest
