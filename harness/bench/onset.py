"""``harness bench onset STUDY_DIR``: Study A's pre-registered analysis of a sweep (docs/findings.md §9).

Each finished trial's *retry onset* (:func:`harness.stats.cells.retry_onset`: the first eval whose greedy
persistence reaches 0.5; never = censored at the last step) is paired by seed across the two arms of one
ablation axis (e.g. ``reward.retry`` 1.0 vs 0.0). Primary: the log-rank O - E of the treated arm with its
exact within-pair relabelling p-value (:func:`harness.stats.survival.paired_logrank`), one-sided; with the
Kaplan-Meier medians, how many runs reach onset per arm and the per-seed onset differences. Secondary:
the mean held-out accuracy over the evals (AUC), the per-seed differences with a Student-t interval and
the exact two-sided sign-flip p-value. The decision rule is the one written before the study ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.core.errors import DataError


def _same(a: Any, b: float) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def onset_study(study_dir: str | Path, arm: str = "reward.retry", treated: float = 1.0, control: float = 0.0,
                censor_at: float = 50.0, seed_key: str = "seed") -> dict[str, Any]:
    """The primary and secondary endpoints of Study A from a sweep's finished trials (pairs by seed)."""
    from harness.stats.cells import _mean_eval, load_study_runs, retry_onset
    from harness.stats.paired import seed_differences
    from harness.stats.survival import km_median, paired_logrank
    from harness.train.fingerprint import run_fingerprint

    runs = load_study_runs(study_dir, fingerprint=run_fingerprint)
    by_arm: dict[str, dict[Any, Any]] = {"treated": {}, "control": {}}
    for r in runs:
        value = r.params.get(arm)
        side = "treated" if _same(value, treated) else "control" if _same(value, control) else None
        if side is None:
            continue
        if r.params.get(seed_key) in by_arm[side]:
            raise DataError(f"{study_dir}: two finished runs of {arm}={value} with seed {r.params[seed_key]}")
        by_arm[side][r.params.get(seed_key)] = r
    seeds = sorted(set(by_arm["treated"]) & set(by_arm["control"]), key=str)
    if not seeds:
        raise DataError(f"{study_dir}: no seed has a finished run in both arms ({arm}={treated} and {arm}={control})")
    onset = {side: [retry_onset(by_arm[side][s].curve) for s in seeds] for side in by_arm}
    auc = {side: [_mean_eval(by_arm[side][s].curve) for s in seeds] for side in by_arm}
    test = paired_logrank(onset["treated"], onset["control"], censor_at=censor_at)
    reached = {side: sum(o is not None for o in onset[side]) for side in onset}
    median = {side: km_median(onset[side], censor_at) for side in onset}
    earlier = (median["treated"] is not None and (median["control"] is None or median["treated"] < median["control"]))
    if test.p_a_sooner < 0.05 and (reached["treated"] > reached["control"] or earlier):
        verdict = "the retry reward speeds the discovery of retrying in this regime"
    elif test.p_a_later < 0.05:
        verdict = "it slows discovery"
    else:
        verdict = "no evidence that it does"
    return {
        "study": str(study_dir), "arm": arm, "treated": treated, "control": control, "censor_at": censor_at,
        "seeds": seeds, "n_pairs": len(seeds),
        "unpaired_runs": {side: sorted(set(by_arm[side]) - set(seeds), key=str) for side in by_arm},
        "onset": onset, "reached_onset": reached, "km_median": median,
        "onset_difference_per_seed": [None if a is None or b is None else a - b
                                      for a, b in zip(onset["treated"], onset["control"])],
        "logrank": {"o_minus_e_treated": test.oe, "p_one_sided_sooner": test.p_a_sooner,
                    "p_one_sided_later": test.p_a_later, "relabellings": test.n_relabellings, "exact": test.exact},
        "auc": auc, "auc_difference": seed_differences(auc["treated"], auc["control"]),
        "verdict": verdict,
    }
