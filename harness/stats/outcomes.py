"""Per-question outcomes of a run, for paired comparisons (:mod:`harness.stats.paired`).

A training run (``curve.csv`` + ``eval_samples/``) gives the held-out episodes of its peak eval
(the earliest best accuracy of the curve, or a chosen ``step``); an evaluation run (``samples.jsonl``)
gives the episodes of one policy at one noise level (chosen when the run holds several).
Outcomes are keyed by question id, so two runs are compared on the questions both evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from harness.stats.curves import analyze, load_curve
from harness.stats.paired import PairedComparison, compare_paired
from harness.core.errors import DataError
from harness.core.results import read_jsonl

__all__ = ["RunOutcomes", "compare_runs", "run_outcomes"]


@dataclass
class RunOutcomes:
    """Correct (True/False) per question id, and where they came from."""

    run: Path
    outcomes: dict[str, bool]
    source: str
    step: int | None = None


def run_outcomes(run_dir: str | Path, step: int | None = None, policy: str | None = None,
                 noise: float | None = None) -> RunOutcomes:
    """The outcomes of ``run_dir`` at its peak (training) or for one policy and noise level (evaluation)."""
    run = Path(run_dir)
    if (run / "eval_samples").is_dir():
        if step is None:
            step = analyze(load_curve(run), method="exact")["peak_step"]
        path = run / "eval_samples" / f"step_{int(step):05d}.jsonl"
        if not path.is_file():
            raise DataError(f"{run}: no eval samples for step {step} ({path.name} is missing)")
        rows = read_jsonl(path)
        return RunOutcomes(run, _by_qid(rows, path), f"{path.relative_to(run)}", int(step))
    path = run / "samples.jsonl"
    if not path.is_file():
        raise DataError(f"{run}: neither eval_samples/ (harness train) nor samples.jsonl (harness run)")
    rows = read_jsonl(path)
    combos = sorted({(r.get("policy"), float(r.get("noise_level", 0.0))) for r in rows})
    chosen = [c for c in combos if (policy is None or c[0] == policy) and (noise is None or c[1] == noise)]
    if len(chosen) != 1:
        listed = ", ".join(f"{p} @ noise {n:g}" for p, n in combos)
        raise DataError(f"{run}: {'several' if chosen else 'no'} policy/noise combinations match "
                        f"({listed}); choose one with --policy and --noise")
    p, n = chosen[0]
    rows = [r for r in rows if r.get("policy") == p and float(r.get("noise_level", 0.0)) == n]
    return RunOutcomes(run, _by_qid(rows, path), f"samples.jsonl: {p} @ noise {n:g}")


def _by_qid(rows: list[dict], path: Path) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for r in rows:
        if "qid" not in r or "correct" not in r:
            raise DataError(f"{path}: a row lacks 'qid' or 'correct'")
        out[str(r["qid"])] = bool(r["correct"])
    return out


def compare_runs(arm_a: Sequence[RunOutcomes], arm_b: Sequence[RunOutcomes], name_a: str = "A",
                 name_b: str = "B", **kwargs) -> PairedComparison:
    """Paired comparison of two arms (seed ``i`` of A with seed ``i`` of B) on the questions all runs share."""
    if not arm_a or len(arm_a) != len(arm_b):
        raise DataError(f"each arm needs the same number of runs (seeds): {len(arm_a)} vs {len(arm_b)}")
    shared = set.intersection(*(set(r.outcomes) for r in (*arm_a, *arm_b)))
    if not shared:
        raise DataError("the runs share no evaluated question: they cannot be compared paired")
    qids = sorted(shared)
    a = [[int(r.outcomes[q]) for q in qids] for r in arm_a]
    b = [[int(r.outcomes[q]) for q in qids] for r in arm_b]
    return compare_paired(a, b, name_a, name_b, **kwargs)
