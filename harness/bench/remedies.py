"""``harness bench remedies STUDY_DIR``: Study B's pre-registered analysis of a sweep (docs/findings.md §9).

Each finished trial of a remedy arm is paired by seed with the control arm's run (``none``). Per run, from the
curve as logged (a rollback arm's collapsed evals before a rollback count; a rollback that recovers leaves no
sustained drop):

- *collapse*: a sustained drop (:func:`harness.bench.corpus.sustained_drop`: the first eval after the peak from
  which every later eval is below half the peak, at least two such evals), and its step;
- *steps to collapse*: that step, censored at ``censor_at`` for a run without one;
- *AUC*: the mean held-out accuracy over the run's evals; *peak*: its best eval.

Per remedy against the control: Fisher's exact test of the collapse counts, one-sided (fewer collapses), with
Holm's correction over the remedies; the log-rank O - E of the control arm's collapses with its exact
within-pair relabelling p (one-sided: the remedy's collapses come later or not at all); the seed-matched AUC
and peak differences with a Student-t 95% interval and the exact two-sided sign-flip p. The setting check and
the decision rule (promising / harmful / not distinguished) are the ones written before the study ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.core.errors import DataError

#: The pre-registered rule's thresholds (docs/findings.md §9, Study B).
PROMISING_MAX_COLLAPSES, CONTROL_MIN_COLLAPSES, MIN_SEEDS_AGREEING = 1, 3, 3


def run_endpoints(curve) -> dict[str, Any]:
    """Collapse step (sustained drop; None if none), AUC (mean eval accuracy), peak and last eval step of one
    run's curve as logged.

    >>> import pandas as pd
    >>> curve = pd.DataFrame({"step": [0, 5, 10, 15, 20], "accuracy": [0.5, 0.9, 0.8, 0.2, 0.1]})
    >>> run_endpoints(curve)["collapse_step"], run_endpoints(curve)["peak"]
    (15.0, 0.9)
    """
    from harness.bench.corpus import sustained_drop

    evals = curve[curve["accuracy"].notna()] if curve is not None and "accuracy" in curve else None
    if evals is None or not len(evals):
        return {"collapse_step": None, "auc": None, "peak": None, "last_step": None, "n_evals": 0}
    steps, acc = [float(s) for s in evals["step"]], [float(a) for a in evals["accuracy"]]
    return {"collapse_step": sustained_drop(steps, acc), "auc": sum(acc) / len(acc), "peak": max(acc),
            "last_step": steps[-1], "n_evals": len(acc)}


def remedy_study(study_dir: str | Path | list[str | Path], arm: str = "arm", control: str = "none",
                 censor_at: float = 50.0, seed_key: str = "seed", planned: int | None = None,
                 planned_arms: int | None = None) -> dict[str, Any]:
    """Every remedy arm of a sweep against ``control``, paired by seed, with the pre-registered rule.

    ``planned``: runs planned per arm; an arm with fewer finished runs gets the verdict "interim", and the
    setting check says so while the control arm is incomplete. ``planned_arms``: arms planned (the control
    included); Holm's correction then counts the remedies not yet run as p = 1, so an interim table is not
    corrected for fewer comparisons than the study makes. ``study_dir`` may be several folders (a study run in
    parts, e.g. its first arms committed and the rest run later into another folder): their trials are pooled,
    one run per training fingerprint."""
    from scipy.stats import fisher_exact

    from harness.stats.cells import load_study_runs
    from harness.stats.paired import seed_differences
    from harness.stats.ranking import holm
    from harness.stats.survival import km_median, paired_logrank
    from harness.train.fingerprint import run_fingerprint

    dirs = [study_dir] if isinstance(study_dir, (str, Path)) else list(study_dir)
    runs = load_study_runs(dirs, fingerprint=run_fingerprint)   # one run per training fingerprint, across folders
    study_dir = ", ".join(map(str, dirs))
    by_arm: dict[str, dict[Any, dict[str, Any]]] = {}
    for r in runs:
        name = r.params.get(arm)
        if name is None:
            continue
        seed = r.params.get(seed_key)
        if seed in by_arm.setdefault(str(name), {}):
            raise DataError(f"{study_dir}: two finished runs of {arm}={name} with seed {seed}")
        by_arm[str(name)][seed] = {**run_endpoints(r.curve), "status": r.status, "run": r.path.name}
    if control not in by_arm:
        raise DataError(f"{study_dir}: no finished run of the control arm {arm}={control} "
                        f"(arms with finished runs: {', '.join(sorted(by_arm)) or 'none'})")
    ctrl = by_arm[control]
    ctrl_collapses = sum(e["collapse_step"] is not None for e in ctrl.values())
    arms: dict[str, dict[str, Any]] = {}
    for name, per_seed in sorted(by_arm.items()):
        collapses = sum(e["collapse_step"] is not None for e in per_seed.values())
        onsets = [e["collapse_step"] for e in per_seed.values()]
        arms[name] = {"runs": len(per_seed), "complete": planned is None or len(per_seed) >= planned,
                      "collapses": collapses, "seeds": sorted(per_seed, key=str),
                      "collapse_steps": {str(s): e["collapse_step"] for s, e in sorted(per_seed.items(), key=str)},
                      "km_median_steps_to_collapse": km_median(onsets, censor_at),
                      "auc": {str(s): e["auc"] for s, e in sorted(per_seed.items(), key=str)},
                      "peak": {str(s): e["peak"] for s, e in sorted(per_seed.items(), key=str)},
                      "status": {str(s): e["status"] for s, e in sorted(per_seed.items(), key=str)}}
    remedies = [a for a in arms if a != control]
    fisher = {}
    for name in remedies:
        n, c = arms[name]["runs"], arms[name]["collapses"]
        table = [[c, n - c], [ctrl_collapses, len(ctrl) - ctrl_collapses]]
        fisher[name] = float(fisher_exact(table, alternative="less").pvalue)
    missing = max(0, (planned_arms or 0) - 1 - len(remedies))
    adjusted = dict(zip(remedies, holm([fisher[a] for a in remedies] + [1.0] * missing))) if remedies else {}
    for name in remedies:
        seeds = sorted(set(by_arm[name]) & set(ctrl), key=str)
        rem = [by_arm[name][s] for s in seeds]
        base = [ctrl[s] for s in seeds]
        # O - E of the control's collapses: large when the control collapses sooner than the remedy
        test = paired_logrank([b["collapse_step"] for b in base], [r["collapse_step"] for r in rem],
                              censor_at=censor_at) if seeds else None
        auc = seed_differences([r["auc"] for r in rem], [b["auc"] for b in base])
        peak = seed_differences([r["peak"] for r in rem], [b["peak"] for b in base])
        c = arms[name]["collapses"]
        if not (arms[name]["complete"] and arms[control]["complete"]):
            verdict = f"interim ({arms[name]['runs']} and {len(ctrl)} of {planned} runs)"
        elif c <= PROMISING_MAX_COLLAPSES and ctrl_collapses >= CONTROL_MIN_COLLAPSES \
                and auc["positive"] >= MIN_SEEDS_AGREEING:
            verdict = "promising"
        elif c > ctrl_collapses or auc["negative"] >= MIN_SEEDS_AGREEING:
            verdict = "harmful"
        else:
            verdict = "not distinguished"
        arms[name].update({
            "paired_seeds": seeds,
            "fisher_p_one_sided_fewer": fisher[name], "fisher_p_holm": adjusted[name],
            "logrank": None if test is None else {
                "o_minus_e_control": test.oe, "p_one_sided_remedy_later": test.p_a_sooner,
                "relabellings": test.n_relabellings, "exact": test.exact},
            "auc_difference": auc, "peak_difference": peak, "verdict": verdict})
    informative = ctrl_collapses >= 2
    interim = not arms[control]["complete"]
    return {
        "study": str(study_dir), "arm": arm, "control": control, "censor_at": censor_at,
        "setting_check": {"control_runs": len(ctrl), "control_collapses": ctrl_collapses, "informative": informative,
                          "interim": interim,
                          "sentence": (f"{ctrl_collapses} of {len(ctrl)} runs of '{control}' collapsed: " +
                                       ("the collapse-rate comparison is informative" if informative else
                                        f"interim: {len(ctrl)} of the {planned} planned runs have finished"
                                        if interim else
                                        "the comparison of collapse rates is uninformative at this setting "
                                        "(fewer than 2 collapses to prevent); the other endpoints are reported"))},
        "arms": arms,
    }


def format_remedies(res: dict[str, Any]) -> str:
    """A Markdown table of every arm (the control first) and the setting check."""
    def f(x: Any, nd: int = 3) -> str:
        return "-" if x is None else f"{x:+.{nd}f}" if isinstance(x, float) and x < 0 else \
            f"{x:.{nd}f}" if isinstance(x, float) else str(x)

    rows = ["| arm | collapses | KM median steps to collapse | Fisher p (Holm) | log-rank p | mean AUC | "
            "AUC diff [t95] (+/- seeds, sign-flip p) | peak diff (+/- seeds) | verdict |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    control = res["control"]
    for name in [control] + [a for a in res["arms"] if a != control]:
        a = res["arms"][name]
        aucs = [v for v in a["auc"].values() if v is not None]
        mean_auc = sum(aucs) / len(aucs) if aucs else None
        med = a["km_median_steps_to_collapse"]
        label = name if a["complete"] else f"{name} (interim: {a['runs']} runs)"
        if name == control:
            rows.append(f"| {label} | {a['collapses']}/{a['runs']} | {'not reached' if med is None else med} | - | - | "
                        f"{f(mean_auc)} | - | - | (control) |")
            continue
        d, p = a["auc_difference"], a["peak_difference"]
        lr = a["logrank"]
        rows.append(
            f"| {label} | {a['collapses']}/{a['runs']} | {'not reached' if med is None else med} | "
            f"{a['fisher_p_one_sided_fewer']:.3f} ({a['fisher_p_holm']:.3f}) | "
            f"{'-' if lr is None else format(lr['p_one_sided_remedy_later'], '.3f')} | {f(mean_auc)} | "
            f"{f(d['mean'])} [{f(d['t95'][0])}, {f(d['t95'][1])}] ({d['positive']}/{d['negative']}, "
            f"{f(d['p_sign_flip_two_sided'])}) | {f(p['mean'])} ({p['positive']}/{p['negative']}) | {a['verdict']} |")
    return res["setting_check"]["sentence"] + "\n\n" + "\n".join(rows)
