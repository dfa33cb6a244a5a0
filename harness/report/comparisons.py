"""Paired comparisons the reports print: two policies on the same questions, two arms on the same seeds.

Two arms evaluated on the same questions are compared question by question: only the discordant
questions (one right, the other wrong) carry evidence. :func:`compare` gives the difference of
accuracies, its 95% interval and a p-value. It uses the paired-statistics module
``harness.stats.paired`` (bootstrap interval resampling questions, each with its outcomes in every seed;
McNemar's exact test for one seed pair, a sign-flip permutation test for several).

Two training arms run with the same seeds are also compared on their peak accuracies, seed by seed:
the mean of the per-seed differences with a Student-t interval (:func:`seed_pair_rows`).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any, Sequence

from harness.stats.intervals import t_interval
from harness.stats.paired import compare_paired


def compare(a: Sequence[Sequence[int]], b: Sequence[Sequence[int]], name_a: str, name_b: str,
            label: str = "accuracy") -> dict[str, Any]:
    """Paired comparison of two arms' 0/1 outcomes (one list per seed, the same questions in the same
    order in every list) through :func:`harness.stats.paired.compare_paired`: ``difference``,
    ``interval``, ``p_value``, ``test``, ``significant`` and a one-line ``sentence``.

    >>> r = compare([[1, 1, 1, 1, 1, 1, 0, 0]], [[0, 0, 0, 0, 0, 1, 0, 0]], "retry", "baseline")
    >>> r["difference"], r["test"], r["p_value"]  # 5 discordant questions, all for retry: 2 / 2**5
    (0.625, 'mcnemar', 0.0625)
    """
    res = compare_paired(a, b, name_a, name_b, label=label)
    return {"difference": res.difference, "interval": tuple(res.interval), "p_value": res.p_value,
            "test": res.test, "significant": res.significant, "sentence": res.sentence()}


AGREEMENT_HEADER = ["where", "A vs B", "shared", "both right", "only A", "only B", "both wrong",
                    "A − B [95% CI]", "p", "verdict"]


def agreement_rows(outcomes: dict[tuple[str, str], dict[str, bool]],
                   pairs: Any = None) -> list[list[Any]]:
    """One row per pair of arms at the same place (noise level, or peak / last eval): the 2 x 2
    agreement counts, the paired difference with its interval and p-value (:func:`compare`), and
    "significant" / "not significant" at 5% (no correction for the number of pairs). ``pairs(a, b)``,
    when given, says which pairs of arms to compare."""
    rows = []
    places = list(dict.fromkeys(place for place, _ in outcomes))
    for place in places:
        arms = [arm for pl, arm in outcomes if pl == place]
        for a, b in combinations(arms, 2):
            if pairs is not None and not pairs(a, b):
                continue
            oa, ob = outcomes[(place, a)], outcomes[(place, b)]
            shared = sorted(set(oa) & set(ob))
            if not shared:
                continue
            both = sum(oa[q] and ob[q] for q in shared)
            only_a = sum(oa[q] and not ob[q] for q in shared)
            only_b = sum(ob[q] and not oa[q] for q in shared)
            neither = len(shared) - both - only_a - only_b
            res = compare([[int(oa[q]) for q in shared]], [[int(ob[q]) for q in shared]], a, b)
            lo, hi = res["interval"]
            rows.append([place, f"{a} vs {b}", len(shared), both, only_a, only_b, neither,
                         f"{res['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}]", f"{res['p_value']:.2g}",
                         "significant" if res["significant"] else "not significant"])
    return rows


def arm_sentences(arms: Sequence[tuple[str, dict[Any, dict[str, bool]]]], label: str = "peak") -> list[str]:
    """For each pair of arms ({seed: {qid: correct}} at their peak evals) with shared seeds and
    questions: the paired comparison's sentence over seeds x questions (:func:`compare`)."""
    out = []
    for (la, a), (lb, b) in combinations(arms, 2):
        seeds = sorted((s for s in a if s in b), key=str)
        if not seeds:
            continue
        qids = sorted(set.intersection(*(set(a[s]) & set(b[s]) for s in seeds)))
        if not qids:
            continue
        res = compare([[int(a[s][q]) for q in qids] for s in seeds], [[int(b[s][q]) for q in qids] for s in seeds],
                      la, lb, label)
        out.append(res["sentence"])
    return out


def outcomes_from_refs(refs: Sequence[Any]) -> dict[tuple[str, str], dict[str, bool]]:
    """{(where, arm): {qid: correct}} from indexed episodes (``harness.report.episodes.Ref``): for
    evaluation runs where = the noise level and arm = the policy (with its run); for training runs
    where = "peak eval" or "last eval" (the file's roles) and arm = the run."""
    out: dict[tuple[str, str], dict[str, bool]] = {}
    for ref in refs:
        if "policy" in ref.dims:
            key = (ref.dims.get("noise", "—"), " / ".join(x for x in (ref.dims.get("run"), ref.dims["policy"]) if x))
            out.setdefault(key, {})[ref.qid] = "correct" in ref.kinds
        elif "run" in ref.dims:
            for role in ref.roles:
                out.setdefault((f"{role} eval", ref.dims["run"]), {})[ref.qid] = "correct" in ref.kinds
    return out


SEED_PAIR_HEADER = ["A", "B", "shared seeds", "peak A (mean)", "peak B (mean)", "A − B (mean of per-seed differences)",
                    "95% t-interval", "verdict"]


def seed_pair_rows(arms: Sequence[tuple[str, dict[Any, float | None]]]) -> list[list[Any]]:
    """One row per pair of arms with at least two shared seeds: peak accuracies paired by seed.

    >>> seed_pair_rows([("retry", {0: 0.5, 1: 0.6, 2: 0.7}), ("base", {0: 0.4, 1: 0.45, 2: 0.6})])[0][5]
    '+0.117'
    """
    rows = []
    for (la, a), (lb, b) in combinations(arms, 2):
        seeds = [s for s in a if s in b and a[s] is not None and b[s] is not None]
        if len(seeds) < 2:
            continue
        diffs = [a[s] - b[s] for s in seeds]
        lo, hi = t_interval(diffs)
        mean = sum(diffs) / len(diffs)
        verdict = "not significant" if lo is None or lo <= 0 <= hi else "significant"
        rows.append([la, lb, len(seeds), f"{sum(a[s] for s in seeds) / len(seeds):.3f}",
                     f"{sum(b[s] for s in seeds) / len(seeds):.3f}", f"{mean:+.3f}",
                     f"[{lo:+.3f}, {hi:+.3f}]" if lo is not None else "—", verdict])
    return rows
