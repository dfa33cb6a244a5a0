"""``harness bench detect``: false-collapse and detection rates of the detectors on synthetic curves.

For each eval size ``n`` (default 32, the paper's test split, and 100, the micro eval), generates
``count`` never-collapsing curves and ``count`` curves with a planted collapse
(:mod:`harness.stats.synthetic`) and runs three detectors on the observed counts:

``online``   :func:`harness.stats.detect.online_alarm` (what a run or a sweep trial stops on)
``offline``  :func:`harness.stats.detect.detect_offline` (what reports show)
``legacy``   the exact-point rule (delta 0.5, m 2 against the raw maximum;
             :func:`harness.stats.curves.find_collapse`), for reference

Rates: *false collapse* = share of never-collapsing curves with any collapse reported; *found* =
share of planted collapses reported within one eval interval of the true collapse step (*early*:
more than one interval before it; *late*: more than one after; *missed*: none). Each rate comes with
its Wilson 95% interval. Nothing here is timed; the figures depend only on the seed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable

from harness.core.errors import DataError
from harness.stats.curves import find_collapse
from harness.stats.detect import (
    DetectorConfig,
    detect_offline,
    online_alarm,
)
from harness.stats.intervals import wilson
from harness.stats.synthetic import SyntheticCurve, SyntheticSpec, synthetic_set

#: The detectors' targets: at most 5% false collapses, and at least 90% of planted collapses found within
#: one eval interval (docs/detection.md).
TARGET_FALSE = 0.05
TARGET_FOUND = 0.90


def _legacy(curve: SyntheticCurve) -> int | None:
    return find_collapse(curve.frame(), delta=0.5, m=2)


def _online(config: DetectorConfig) -> Callable[[SyntheticCurve], int | None]:
    return lambda c: online_alarm(c.points(), config)


def _offline(config: DetectorConfig) -> Callable[[SyntheticCurve], int | None]:
    return lambda c: detect_offline(c.points(), config)["collapse_step"]


def rate(hits: int, total: int) -> dict[str, Any]:
    """A share with its Wilson 95% interval.

    >>> rate(9, 10)["rate"], [round(x, 3) for x in rate(9, 10)["ci"]]
    (0.9, [0.596, 0.982])
    """
    lo, hi = wilson(hits, total) if total else (float("nan"), float("nan"))
    return {"rate": hits / total if total else float("nan"), "ci": [lo, hi], "hits": hits, "n": total}


def classify(collapse_step: int | None, interval: int, step: int | None) -> str:
    """A detector's alarm ``step`` against a labelled collapse: ``found`` (within one eval ``interval``),
    ``early``, ``late`` or ``missed``; without a collapse, ``false`` (an alarm) or ``quiet``.

    >>> classify(50, 10, 60), classify(50, 10, 30), classify(50, 10, None), classify(None, 10, 20)
    ('found', 'early', 'missed', 'false')
    """
    if collapse_step is None:
        return "quiet" if step is None else "false"
    if step is None:
        return "missed"
    if step < collapse_step - interval:
        return "early"
    if step > collapse_step + interval:
        return "late"
    return "found"


def within(collapse_step: int, interval: int, step: int | None, intervals: int) -> bool:
    """Is the alarm ``step`` at most ``intervals`` eval intervals after the collapse (and not early)? With
    ``intervals`` = 1 this is :func:`classify`'s ``found``; 2 allows one more confirmation eval.

    >>> within(50, 10, 70, 2), within(50, 10, 70, 1), within(50, 10, 30, 2), within(50, 10, None, 2)
    (True, False, False, False)
    """
    return step is not None and collapse_step - interval <= step <= collapse_step + intervals * interval


def mean_delay(cases: Iterable[tuple[int, int, int | None]]) -> float | None:
    """Mean (alarm step - collapse step) in eval intervals over the ``(collapse_step, interval, alarm step)`` cases
    whose alarm is found or late (:func:`classify`): what waiting for confirmation evals costs. None if there are none.

    >>> mean_delay([(50, 10, 60), (50, 10, 70), (50, 10, None), (50, 10, 20)])
    1.5
    """
    out = [(s - c) / iv for c, iv, s in cases if classify(c, iv, s) in ("found", "late")]
    return sum(out) / len(out) if out else None


def outcome(curve: SyntheticCurve, step: int | None) -> str:
    """:func:`classify` for a synthetic curve, against its planted collapse."""
    return classify(curve.collapse_step, curve.interval, step)


def _band(plateau: float) -> str:
    return "0.25-0.40" if plateau < 0.4 else "0.40-0.55" if plateau < 0.55 else "0.55-0.70"


def evaluate(never: list[SyntheticCurve], collapsing: list[SyntheticCurve],
             detector: Callable[[SyntheticCurve], int | None]) -> dict[str, Any]:
    """Both rates of one detector, the outcome counts and the rates per stratum."""
    by_shape: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for c in never:
        by_shape[c.shape][0] += detector(c) is not None
        by_shape[c.shape][1] += 1
    counts: dict[str, int] = defaultdict(int)
    two = 0
    by_band: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_fall: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for c in collapsing:
        step = detector(c)
        o = outcome(c, step)
        counts[o] += 1
        two += within(c.collapse_step, c.interval, step, 2)
        for table, key in ((by_band, _band(c.plateau)), (by_fall, str(c.fall))):
            table[key][0] += o == "found"
            table[key][1] += 1
    return {
        "false_collapse": rate(sum(v[0] for v in by_shape.values()), len(never)),
        "found": rate(counts["found"], len(collapsing)),
        "found_within_two": rate(two, len(collapsing)),
        "outcomes": dict(counts),
        "false_by_shape": {k: rate(*v) for k, v in sorted(by_shape.items())},
        "found_by_plateau": {k: rate(*v) for k, v in sorted(by_band.items())},
        "found_by_fall_evals": {k: rate(*v) for k, v in sorted(by_fall.items(), key=lambda kv: int(kv[0]))},
    }


def bench_detect(count: int = 1000, sizes: tuple[int, ...] = (32, 100), seed: int = 0,
                 config: DetectorConfig | None = None) -> dict[str, Any]:
    """Calibration of the detectors at each eval size (see the module docstring)."""
    config = config or DetectorConfig()
    out: dict[str, Any] = {"count": count, "seed": seed, "config": asdict(config),
                           "targets": {"false_collapse_max": TARGET_FALSE, "found_min": TARGET_FOUND},
                           "spec": asdict(SyntheticSpec()), "sizes": {}}
    for n in sizes:
        spec = SyntheticSpec(n=n)
        never = synthetic_set(count, spec, seed, collapse=False)
        collapsing = synthetic_set(count, spec, seed, collapse=True)
        out["sizes"][str(n)] = {name: evaluate(never, collapsing, det) for name, det in
                                (("online", _online(config)), ("offline", _offline(config)), ("legacy", _legacy))}
    return out


def format_table(result: dict[str, Any]) -> str:
    """The two rates per eval size and detector, as printed by ``harness bench detect``."""
    lines = [f"synthetic curves: {result['count']} never-collapsing + {result['count']} collapsing per n "
             f"(seed {result['seed']}); targets: false collapse <= {TARGET_FALSE:.0%}, "
             f"found within one eval interval >= {TARGET_FOUND:.0%}",
             f"{'n':>4}  {'detector':8}  {'false collapse [95% CI]':26}  {'found [95% CI]':26}  "
             f"{'within two':10}  early / late / missed"]
    for n, by_det in result["sizes"].items():
        for name, r in by_det.items():
            f, d, o = r["false_collapse"], r["found"], r["outcomes"]
            lines.append(f"{n:>4}  {name:8}  {_fmt(f):26}  {_fmt(d):26}  {r['found_within_two']['rate']:<10.3f}  "
                         f"{o.get('early', 0)} / {o.get('late', 0)} / {o.get('missed', 0)}")
    return "\n".join(lines)


def _fmt(r: dict[str, Any]) -> str:
    return f"{r['rate']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"


# ----------------------------------------------------------------------------- leading indicators


def bench_indicators(run_dirs: list[str], count: int = 300, seed: int = 0, m: int = 2,
                     labels: dict[str, float | None] | None = None) -> dict[str, Any]:
    """Warned-early share and false-warning rate of each indicator on real runs, against chance.

    Each run's collapse is ``labels[run]`` when given (e.g. the corpus manifest's sustained drop), else the
    offline binomial detector's (there is no true curve); the chance rates
    come from synthetic curves shaped like the runs (their eval size, interval and number of evals)
    with each indicator replaced by noise fitted on the runs before their collapse
    (:mod:`harness.stats.indicators`).
    """
    import statistics

    import numpy as np

    from harness.core.rundir import read_curve
    from harness.stats.curves import analyze
    from harness.stats.indicators import (
        RunCase,
        best_combinations,
        fit_null,
        indicator_rates,
        lead_times,
        null_curve,
        verdicts,
    )

    cases, pre_collapse, sizes, intervals, n_evals = [], [], [], [], []
    run_dirs = distinct_runs(run_dirs)
    for d in run_dirs:
        curve = read_curve(d)
        a = analyze(curve)
        evals = curve[curve["accuracy"].notna()]
        interval = float(statistics.median(np.diff(evals["step"].to_numpy()))) if len(evals) > 1 else 1.0
        collapse = labels[str(d)] if labels is not None and str(d) in labels else a["collapse_step"]
        cases.append(RunCase(str(d), curve, a["peak_step"], collapse, interval))
        cut = curve if collapse is None else curve[curve["step"] <= collapse]
        pre_collapse.append(cut)
        sizes.append((a.get("eval_n") or {}).get("max") or 100)
        intervals.append(int(interval))
        n_evals.append(len(evals))
    real = indicator_rates(cases, m)
    models = fit_null(pre_collapse)
    spec = SyntheticSpec(n=int(statistics.median(sizes)), interval=(min(intervals), max(intervals)),
                         evals=(min(n_evals), max(n_evals)))
    rng = np.random.default_rng(seed)
    chance_cases = []
    for collapse in (False, True):
        for i, c in enumerate(synthetic_set(count, spec, seed, collapse=collapse)):
            frame = null_curve(rng, c.steps, c.accuracy, models)
            peak = int(c.steps[int(np.argmax(c.accuracy))])
            chance_cases.append(RunCase(f"synthetic-{int(collapse)}-{i}", frame, peak, c.collapse_step, c.interval))
    chance = indicator_rates(chance_cases, m)
    for row in chance.values():
        row.pop("runs")
    return {"runs": [str(d) for d in run_dirs], "collapsing_runs": sum(c.collapse_step is not None for c in cases),
            "spec": asdict(spec), "count": count, "m": m,
            "null_models": {k: asdict(v) for k, v in models.items()},
            "real": real, "chance": chance, "verdicts": verdicts(real, chance), "lead_times": lead_times(real),
            "labels": "given" if labels is not None else "offline detector",
            "combinations": _with_chance(best_combinations(cases, list(real), m)[:5], chance_cases, m)}


def distinct_runs(run_dirs: list[str]) -> list[str]:
    """``run_dirs`` without repeats of a training run: a run directory whose training fingerprint an earlier one
    has is left out (curve files, which carry no config, are all kept)."""
    import logging

    from harness.train.fingerprint import run_fingerprint

    seen: dict[str, str] = {}
    out = []
    for d in run_dirs:
        fp = run_fingerprint(d) if Path(d).is_dir() else None
        if fp is not None and fp in seen:
            logging.getLogger(__name__).warning("%s trains what %s trains (same training fingerprint): counted once",
                                                d, seen[fp])
            continue
        if fp is not None:
            seen[fp] = d
        out.append(d)
    return out


def _with_chance(rows: list[dict[str, Any]], chance_cases: list, m: int) -> list[dict[str, Any]]:
    """Each combination's rates on the null curves too: the best of many rules, picked on the real runs,
    must still beat what the same rule does on indicators that carry no information."""
    from harness.stats.curves import indicator_onsets
    from harness.stats.indicators import combined_rates

    onsets = [indicator_onsets(c.curve, c.peak_step, c.collapse_step, m) for c in chance_cases]
    for r in rows:
        c = combined_rates(chance_cases, r["indicators"], m, onsets)
        r["chance_warned_early_rate"], r["chance_false_warning_rate"] = c["warned_early_rate"], c["false_warning_rate"]
    return rows


def corpus_runs(folder: str | Path) -> tuple[list[str], dict[str, float | None]]:
    """The curve files of an early-warning corpus (:mod:`harness.bench.corpus`) and their labelled collapse steps;
    a run marked ``duplicate_of`` another (the same training fingerprint) is left out."""
    import json

    from harness.bench.corpus import mark_duplicates

    folder = Path(folder)
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        raise DataError(f"{folder}: no manifest.json (make one with `harness bench corpus`)")
    runs = json.loads(manifest.read_text())["runs"]
    mark_duplicates(runs)
    runs = {name: r for name, r in runs.items() if not r.get("duplicate_of")}
    paths = [str(folder / f"{name}.csv") for name in runs]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise DataError(f"{folder}: manifest.json names curves that are missing: {', '.join(missing[:3])}")
    return paths, {str(folder / f"{name}.csv"): r["collapse_step"] for name, r in runs.items()}


def format_combinations(result: dict[str, Any]) -> str:
    """Lead times of each indicator's early warnings and the best "any of" rules against the goal."""
    lines = ["lead time of early warnings (steps): " + "; ".join(
        f"{k} {v['median']:g} [{v['min']:g}, {v['max']:g}]" if v["median"] is not None else f"{k} -"
        for k, v in result["lead_times"].items())]
    lines.append("best rules (warn when any fires; goal: >= 0.80 warned early, <= 0.20 false; picked on these runs, "
                 "so compare with chance):")
    for r in result["combinations"]:
        lines.append(f"  {' | '.join(r['indicators']):44} warned early {r['warned_early']}/{r['collapsing']}  "
                     f"false {r['false_warnings']}/{r['non_collapsing']}  "
                     f"chance {_rate(r.get('chance_warned_early_rate'))}"
                     f" / {_rate(r.get('chance_false_warning_rate'))}  {'meets goal' if r['meets_goal'] else ''}")
    return "\n".join(lines)


def format_indicators(result: dict[str, Any]) -> str:
    """One line per indicator: real warned-early and false-warning rates, chance rates, verdict."""
    warnable = next(iter(result["real"].values()), {}).get("warnable", 0)
    lines = [f"leading indicators on {len(result['runs'])} runs ({result['collapsing_runs']} collapsing, {warnable} of "
             "them with at least one eval between the peak and the collapse, so warnable at all); chance "
             f"from {result['count']} + {result['count']} synthetic curves with noise indicators",
             f"{'indicator':22}  {'warned early':>12}  {'false warn':>10}  {'chance early':>12}  "
             f"{'chance false':>12}  verdict"]
    for name, r in result["real"].items():
        c, v = result["chance"].get(name, {}), result["verdicts"][name]
        lines.append(f"{name:22}  {r['warned_early']:>5}/{r['collapsing']:<6}  "
                     f"{r['false_warnings']:>4}/{r['non_collapsing']:<5}  {_rate(c.get('warned_early_rate')):>12}  "
                     f"{_rate(c.get('false_warning_rate')):>12}  {v['verdict']} ({v['reason']})")
    return "\n".join(lines)


def _rate(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"
