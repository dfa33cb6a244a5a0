"""The detectors on real curves: every committed micro run, de-duplicated, labelled by the sustained-drop rule.

Sources (in this order; a run whose training fingerprint an earlier run has is left out,
:mod:`harness.train.fingerprint`):

``tests/data/micro_corpus``  the early-warning corpus (curve files with training statistics,
                             :mod:`harness.bench.corpus`)
``tests/data/real_curves``   eval curves of the other committed runs, reconstructed from what the repository
                             keeps of them (the exploration study's figures, the sweep tables of
                             ``docs/findings.md``, the indicator runs of ``docs/detection.md``; its README says how)

Each run is labelled by the pre-stated rule (:func:`harness.bench.corpus.sustained_drop`: the first eval after the
peak from which every later eval is below half the peak, with at least two such evals). *Healthy* runs have no such
drop; a healthy run whose **last** eval is below half its peak is *censored* (it may have been falling when it
ended) and is reported both ways. Rates, with Wilson 95% intervals: *false stops* (online alarms on healthy runs);
*found* (a collapsing run's alarm within one eval interval of its labelled step, as on the synthetic sets).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from harness.bench.detect import classify, mean_delay, within
from harness.core.errors import DataError
from harness.stats.detect import DetectorConfig, EvalPoint, detect_offline, online_alarm

#: The repository's test data (absent from an installed wheel: then pass folders explicitly).
REPO_DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
DEFAULT_SOURCES = (REPO_DATA / "micro_corpus", REPO_DATA / "real_curves")


@dataclass
class RealCurve:
    """One real run's eval curve, its label and where it came from."""

    name: str
    source: str
    steps: list[int]
    correct: list[int]
    n: int
    label: int | None
    fingerprint: str | None

    @property
    def accuracy(self) -> list[float]:
        return [k / self.n for k in self.correct]

    @property
    def interval(self) -> int:
        return self.steps[1] - self.steps[0] if len(self.steps) > 1 else 1

    @property
    def censored(self) -> bool:
        """Healthy by the rule, but its last eval is below half its peak (it ended on a low eval)."""
        acc = self.accuracy
        return self.label is None and acc[-1] < 0.5 * max(acc)

    def points(self) -> list[EvalPoint]:
        return [EvalPoint(s, k, self.n) for s, k in zip(self.steps, self.correct)]


def _curves_of(folder: Path) -> list[RealCurve]:
    from harness.bench.corpus import sustained_drop
    from harness.core.rundir import read_curve

    manifest = folder / "manifest.json"
    if not manifest.is_file():
        raise DataError(f"{folder}: no manifest.json")
    out = []
    for name, r in sorted(json.loads(manifest.read_text())["runs"].items()):
        if r.get("on_collapse") == "rollback":
            # its curve after a collapse is what the detector's own rollback made of it: a run rescued by a
            # rollback would count as a healthy run the detector "falsely" stopped (Study B, detection.md)
            continue
        if "accuracy" in r:  # a reconstructed eval curve
            n, every = int(r["n"]), int(r["eval_every"])
            steps, acc = [every * i for i in range(len(r["accuracy"]))], list(r["accuracy"])
        else:  # a corpus curve file
            curve = read_curve(folder / f"{name}.csv")
            evals = curve[curve["accuracy"].notna()]
            n = int(evals["n"].max())
            steps, acc = [int(s) for s in evals["step"]], evals["accuracy"].tolist()
        out.append(RealCurve(name, folder.name, steps, [round(a * n) for a in acc], n,
                             sustained_drop(steps, acc), r.get("training_fingerprint")))
    return out


def load_real_curves(folders: Sequence[str | Path] = DEFAULT_SOURCES) -> tuple[list[RealCurve], dict[str, str]]:
    """The distinct real curves of ``folders`` and ``{left out: the run it repeats}``; runs trained with
    ``--on-collapse rollback`` are not read (the detector being calibrated shaped their curves)."""
    seen: dict[str, str] = {}
    kept, dropped = [], {}
    for folder in folders:
        for c in _curves_of(Path(folder)):
            if c.fingerprint is not None and c.fingerprint in seen:
                dropped[f"{c.source}/{c.name}"] = seen[c.fingerprint]
                continue
            if c.fingerprint is not None:
                seen[c.fingerprint] = f"{c.source}/{c.name}"
            kept.append(c)
    return kept, dropped


def real_rates(curves: Sequence[RealCurve], config: DetectorConfig | None = None) -> dict[str, Any]:
    """Online and offline false stops and found rates on ``curves`` (see the module docstring).

    >>> c = [RealCurve("h", "x", [0, 5, 10, 15, 20], [40, 96, 20, 95, 96], 100, None, None),
    ...      RealCurve("c", "x", [0, 5, 10, 15, 20], [40, 96, 0, 0, 0], 100, 10, None)]
    >>> r = real_rates(c)
    >>> r["online"]["false_stop"]["hits"], r["online"]["found"]["hits"], r["offline"]["false_stop"]["hits"]
    (0, 1, 0)
    >>> real_rates(c, DetectorConfig(online_confirm=1, confirm_fraction=None))["online"]["false_stop"]["hits"]
    1
    """
    from harness.bench.detect import rate

    config = config or DetectorConfig()
    out: dict[str, Any] = {"runs": len(curves), "healthy": sum(c.label is None for c in curves),
                           "censored": [c.name for c in curves if c.censored],
                           "collapsing": sum(c.label is not None for c in curves)}
    for name, detector in (("online", lambda c: online_alarm(c.points(), config)),
                           ("offline", lambda c: detect_offline(c.points(), config)["collapse_step"])):
        rows = [(c, detector(c)) for c in curves]
        outcomes = [(c, s, classify(c.label, c.interval, s)) for c, s in rows]
        healthy = [(c, o) for c, s, o in outcomes if c.label is None]
        uncensored = [(c, o) for c, o in healthy if not c.censored]
        collapsing = [o for c, s, o in outcomes if c.label is not None]
        out[name] = {
            "false_stop": rate(sum(o == "false" for _, o in healthy), len(healthy)),
            "false_stop_uncensored": rate(sum(o == "false" for _, o in uncensored), len(uncensored)),
            "found": rate(collapsing.count("found"), len(collapsing)),
            "found_within_two": rate(sum(within(c.label, c.interval, s, 2) for c, s, o in outcomes
                                         if c.label is not None), len(collapsing)),
            "delay_evals": mean_delay((c.label, c.interval, s) for c, s, o in outcomes if c.label is not None),
            "outcomes": {k: collapsing.count(k) for k in ("found", "early", "late", "missed")},
            "false_stops": [{"run": f"{c.source}/{c.name}", "step": s, "censored": c.censored,
                             "accuracy": [round(a, 2) for a in c.accuracy]}
                            for c, s, o in outcomes if o == "false"],
            "not_found": [{"run": f"{c.source}/{c.name}", "label": c.label, "step": s, "outcome": o}
                          for c, s, o in outcomes if c.label is not None and o != "found"],
        }
    return out
