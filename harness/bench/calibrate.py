"""``harness bench detect``'s calibration beyond the planted set: real curves, the empirical generator, the
operating envelope and the trade-off of the online rule's settings.

=================  ===========================================================================================
real               the committed real micro curves (:mod:`harness.bench.real`): online and offline false stops
                   on healthy runs, found within one interval on collapsing ones, Wilson intervals
planted            :mod:`harness.stats.synthetic` (the set the defaults were first tuned on)
empirical          :mod:`harness.stats.empirical`, fitted on the real healthy runs
envelope           on the empirical generator: online false alarms over one forced dip's depth (x plateau)
                   and width (evals); online found rate over the fall's length (evals) and the plateau
trade-off          online false/found on all three sets for a grid of settings (``online_confirm``,
                   ``recent_alpha``, ``single_alpha``): tune on one generator, report on the others
=================  ===========================================================================================

*Delay* (:func:`~harness.bench.detect.mean_delay`): for collapses whose alarm was found or late, the mean of
(alarm step - collapse step) in eval intervals: what waiting for a confirmation eval costs.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any, Sequence

from harness.bench.detect import evaluate, mean_delay, outcome, rate, within
from harness.bench.real import RealCurve, load_real_curves, real_rates
from harness.stats.detect import DetectorConfig, online_alarm
from harness.stats.empirical import EmpiricalSpec, empirical_set, fit_empirical
from harness.stats.synthetic import SyntheticCurve, SyntheticSpec, synthetic_set

#: Envelope grid: dip depth (x plateau) and width (evals); fall length (evals) and plateau.
DIP_DEPTHS = (0.0, 0.15, 0.3, 0.45, 0.6, 0.75)
DIP_WIDTHS = (1, 2, 3)
FALLS = (1, 2, 3, 4, 5, 6)
PLATEAUS = (0.3, 0.5, 0.7, 0.9)


def empirical_spec(curves: Sequence[RealCurve], n: int, **settings) -> EmpiricalSpec:
    """The empirical generator at eval size ``n``, fitted on the healthy, uncensored ``curves``."""
    healthy = [(c.accuracy, c.n) for c in curves if c.label is None and not c.censored]
    return fit_empirical(healthy, n=n, **settings)


def online_rates(never: Sequence[SyntheticCurve], collapsing: Sequence[SyntheticCurve],
                 config: DetectorConfig) -> dict[str, Any]:
    """Online false collapse and found rates (and the delay) of ``config`` on one set."""
    false = sum(online_alarm(c.points(), config) is not None for c in never)
    steps = [online_alarm(c.points(), config) for c in collapsing]  # each curve's alarm, computed once
    found = sum(outcome(c, s) == "found" for c, s in zip(collapsing, steps))
    two = sum(within(c.collapse_step, c.interval, s, 2) for c, s in zip(collapsing, steps))
    delay = mean_delay((c.collapse_step, c.interval, s) for c, s in zip(collapsing, steps))
    return {"false_collapse": rate(false, len(never)), "found": rate(found, len(collapsing)),
            "found_within_two": rate(two, len(collapsing)), "delay_evals": delay}


def bench_generators(count: int, sizes: Sequence[int], seed: int, config: DetectorConfig,
                     curves: Sequence[RealCurve], which: Sequence[str] = ("planted", "empirical")) -> dict[str, Any]:
    """The three detectors on the planted and/or the empirical generator at each eval size."""
    from harness.bench.detect import _legacy, _offline, _online

    out: dict[str, Any] = {}
    for n in sizes:
        spec = empirical_spec(curves, n)
        sets = {}
        if "planted" in which:
            sets["planted"] = (synthetic_set(count, SyntheticSpec(n=n), seed),
                               synthetic_set(count, SyntheticSpec(n=n), seed, collapse=True))
        if "empirical" in which:
            sets["empirical"] = (empirical_set(count, spec, seed), empirical_set(count, spec, seed, collapse=True))
        out[str(n)] = {gen: {name: evaluate(never, coll, det) for name, det in
                             (("online", _online(config)), ("offline", _offline(config)), ("legacy", _legacy))}
                       for gen, (never, coll) in sets.items()}
        out[str(n)]["empirical_spec"] = spec.summary()
    return out


def envelope(spec: EmpiricalSpec, config: DetectorConfig, count: int = 200, seed: int = 0) -> dict[str, Any]:
    """Online false alarms over one dip's depth x width, and found over fall length x plateau (empirical set)."""
    false = {f"{d:g}x{w}": rate(sum(online_alarm(c.points(), config) is not None
                                    for c in empirical_set(count, spec, seed, dip=(d, w))), count)
             for d in DIP_DEPTHS for w in DIP_WIDTHS}
    found = {}
    for f in FALLS:
        for p in PLATEAUS:
            cs = empirical_set(count, spec, seed, collapse=True, fall=f, plateau=p)
            found[f"{f}x{p:g}"] = rate(sum(outcome(c, online_alarm(c.points(), config)) == "found" for c in cs), count)
    return {"n": spec.n, "count": count, "false_by_dip": false, "found_by_fall_plateau": found,
            "depths": DIP_DEPTHS, "widths": DIP_WIDTHS, "falls": FALLS, "plateaus": PLATEAUS}


def tradeoff(configs: Sequence[DetectorConfig], curves: Sequence[RealCurve], count: int = 500, n: int = 100,
             seed: int = 0) -> list[dict[str, Any]]:
    """Online rates of each setting on the planted set (where it is tuned), the empirical set and the real curves."""
    spec = empirical_spec(curves, n)
    planted = (synthetic_set(count, SyntheticSpec(n=n), seed), synthetic_set(count, SyntheticSpec(n=n), seed, True))
    empirical = (empirical_set(count, spec, seed), empirical_set(count, spec, seed, collapse=True))
    rows = []
    for cfg in configs:
        real = real_rates(curves, cfg)["online"]
        rows.append({"config": {k: v for k, v in asdict(cfg).items() if k in TUNED},
                     "planted": online_rates(*planted, cfg), "empirical": online_rates(*empirical, cfg),
                     "real": {"false_collapse": real["false_stop"], "found": real["found"],
                              "found_within_two": real["found_within_two"], "delay_evals": real["delay_evals"]}})
    return rows


#: The online settings the trade-off varies.
TUNED = ("online_confirm", "confirm_fraction", "recent_alpha", "single_alpha")


def grid(recent: Sequence[float] = (0.3, 0.4), fractions: Sequence[float | None] = (None, 0.6, 0.7),
         single: Sequence[float] = (0.05,), confirms: Sequence[int] = (2, 3)) -> list[DetectorConfig]:
    """The settings :func:`tradeoff` compares by default: the one-eval rule, and one or two confirmation evals
    (``confirms`` = 2, 3 evals below in a row) below ``fraction`` (half) or a looser share of the level, at each
    ``recent_alpha``.

    >>> len(grid()), {c.online_confirm for c in grid()}
    (14, {1, 2, 3})
    """
    base = DetectorConfig()
    one = [replace(base, online_confirm=1, confirm_fraction=None, recent_alpha=r, single_alpha=s)
           for r in recent for s in single]
    more = [replace(base, online_confirm=k, confirm_fraction=f, recent_alpha=r, single_alpha=s)
            for k in confirms for f in fractions for r in recent for s in single]
    return one + more


def bench_calibration(count: int = 1000, sizes: Sequence[int] = (32, 100), seed: int = 0,
                      config: DetectorConfig | None = None, with_envelope: bool = False,
                      with_tradeoff: bool = False, folders: Sequence[str] | None = None,
                      generators: Sequence[str] = ("planted", "empirical")) -> dict[str, Any]:
    """Real-curve rates, the generators, and (asked for) the envelope and the trade-off."""
    config = config or DetectorConfig()
    curves, dropped = load_real_curves(folders) if folders else load_real_curves()
    out: dict[str, Any] = {"config": asdict(config), "real": {**real_rates(curves, config), "duplicates": dropped},
                           "generators": bench_generators(count, sizes, seed, config, curves, generators)}
    if with_envelope:
        out["envelope"] = {str(n): envelope(empirical_spec(curves, n), config, max(count // 5, 50), seed)
                           for n in sizes}
    if with_tradeoff:
        out["tradeoff"] = {str(n): tradeoff(grid(), curves, max(count // 2, 100), n, seed) for n in sizes}
    return out


def _f(r: dict[str, Any]) -> str:
    return f"{r['rate']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"


def _delay(r: dict[str, Any]) -> str:
    return f" ({r['delay_evals']:.2f})" if r.get("delay_evals") is not None else ""


def _cell(r: dict[str, Any]) -> str:
    rates = (r["false_collapse"], r["found"], r["found_within_two"])
    return " / ".join(f"{x['rate']:.3f}" for x in rates) + _delay(r)


def format_calibration(res: dict[str, Any]) -> str:
    """The real-curve table, the two generators side by side, and the envelope / trade-off when computed."""
    r = res["real"]
    lines = [f"real curves: {r['runs']} distinct runs ({len(r['duplicates'])} repeats left out), {r['healthy']} "
             f"healthy ({len(r['censored'])} of them end below half their peak), {r['collapsing']} with a sustained "
             "drop",
             f"{'detector':8}  {'false stops [95% CI]':26}  {'uncensored only':26}  {'found [95% CI]':26}  "
             f"{'within two':10}  early / late / missed"]
    for name in ("online", "offline"):
        x = r[name]
        o = x["outcomes"]
        lines.append(f"{name:8}  {_f(x['false_stop']):26}  {_f(x['false_stop_uncensored']):26}  {_f(x['found']):26}  "
                     f"{x['found_within_two']['rate']:<10.3f}  {o['early']} / {o['late']} / {o['missed']}")
    lines.append("online false stops: " + "; ".join(f"{f['run']} at {f['step']}" for f in r["online"]["false_stops"]))
    lines.append(f"\n{'n':>4}  {'generator':9}  {'detector':8}  {'false collapse [95% CI]':26}  {'found [95% CI]':26}  "
                 f"{'within two':10}  early / late / missed")
    for n, gens in res["generators"].items():
        for gen in ("planted", "empirical"):
            for name, x in gens.get(gen, {}).items():
                o = x["outcomes"]
                lines.append(f"{n:>4}  {gen:9}  {name:8}  {_f(x['false_collapse']):26}  {_f(x['found']):26}  "
                             f"{x['found_within_two']['rate']:<10.3f}  "
                             f"{o.get('early', 0)} / {o.get('late', 0)} / {o.get('missed', 0)}")
    for n, env in (res.get("envelope") or {}).items():
        lines.append(f"\nenvelope (empirical generator, n = {n}, {env['count']} curves a cell): online false alarms "
                     "by one dip's depth (x plateau, rows) and width (evals, columns)")
        lines.append("depth  " + "  ".join(f"w={w:<5}" for w in env["widths"]))
        for d in env["depths"]:
            lines.append(f"{d:<5g}  " + "  ".join(f"{env['false_by_dip'][f'{d:g}x{w}']['rate']:<7.2f}"
                                                  for w in env["widths"]))
        lines.append("online found within one interval by fall length (evals, rows) and plateau (columns)")
        lines.append("fall   " + "  ".join(f"P={p:<5g}" for p in env["plateaus"]))
        for f in env["falls"]:
            lines.append(f"{f:<5}  " + "  ".join(f"{env['found_by_fall_plateau'][f'{f}x{p:g}']['rate']:<7.2f}"
                                                 for p in env["plateaus"]))
    for n, rows in (res.get("tradeoff") or {}).items():
        lines.append(f"\ntrade-off, n = {n} (online): false collapse / found within one interval / within two (mean "
                     "delay of the found and late alarms, in evals after the collapse)")
        lines.append(f"{'confirm':>7} {'below':>5} {'recent':>6} {'single':>6}  {'planted':30}  {'empirical':30}  "
                     "real: false stops of healthy; found within one, two of collapsing")
        for row in rows:
            c = row["config"]
            cells = [_cell(row[s]) for s in ("planted", "empirical")]
            r = row["real"]
            real = (f"{r['false_collapse']['hits']}/{r['false_collapse']['n']} {r['false_collapse']['rate']:.3f}, "
                    f"{r['found']['hits']}/{r['found']['n']}, {r['found_within_two']['hits']}/{r['found']['n']}"
                    + _delay(r))
            below = c["confirm_fraction"] if c["confirm_fraction"] is not None else 0.5
            lines.append(f"{c['online_confirm']:>7} {below:>5g} {c['recent_alpha']:>6g} {c['single_alpha']:>6g}  "
                         f"{cells[0]:30}  {cells[1]:30}  {real}")
    return "\n".join(lines)
