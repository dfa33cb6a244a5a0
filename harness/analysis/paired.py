"""Paired comparisons the reports print: two policies on the same questions, two arms on the same seeds.

Two policies evaluated on the same questions are compared question by question: only the discordant
questions (one right, the other wrong) carry evidence, and the exact two-sided McNemar test is the
sign test on them. The difference of accuracies gets a 95% interval from the paired (Wald) variance.
Two training arms run with the same seeds are compared seed by seed: the mean of the per-seed
differences with a Student-t interval.

These are the report's own small, pure helpers; a fuller paired-statistics module belongs in
``harness.analysis`` beside them and can replace them without changing the tables' columns.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any, Sequence

from harness.analysis.intervals import Z975, t_interval


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the two discordant counts (a binomial sign test).

    >>> mcnemar_exact(0, 0), round(mcnemar_exact(1, 9), 4), mcnemar_exact(5, 5)
    (1.0, 0.0215, 1.0)
    """
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_difference(b: int, c: int, n: int) -> tuple[float, float, float]:
    """Difference of two accuracies on ``n`` shared questions (``b``: only the first right, ``c``: only
    the second) with its 95% paired Wald interval.

    >>> [round(x, 3) for x in paired_difference(6, 1, 32)]
    [0.156, 0.004, 0.309]
    """
    d = (b - c) / n
    var = max((b + c) / n - d * d, 0.0) / n
    half = Z975 * math.sqrt(var)
    return d, d - half, d + half


AGREEMENT_HEADER = ["noise", "A vs B", "shared questions", "both right", "only A", "only B", "both wrong",
                    "accuracy A − B [95% CI]", "p (McNemar)", "verdict"]


def agreement_rows(outcomes: dict[tuple[str, str], dict[str, bool]]) -> list[list[Any]]:
    """One row per pair of policies at the same noise level: the 2 x 2 agreement counts, the paired
    difference with its interval, the exact McNemar p-value and "significant" / "not significant"
    (at 5%, no correction for the number of pairs)."""
    rows = []
    noises = list(dict.fromkeys(noise for noise, _ in outcomes))
    for noise in noises:
        policies = [p for nz, p in outcomes if nz == noise]
        for a, b in combinations(policies, 2):
            oa, ob = outcomes[(noise, a)], outcomes[(noise, b)]
            shared = sorted(set(oa) & set(ob))
            if not shared:
                continue
            both = sum(oa[q] and ob[q] for q in shared)
            only_a = sum(oa[q] and not ob[q] for q in shared)
            only_b = sum(ob[q] and not oa[q] for q in shared)
            neither = len(shared) - both - only_a - only_b
            d, lo, hi = paired_difference(only_a, only_b, len(shared))
            p = mcnemar_exact(only_a, only_b)
            rows.append([noise, f"{a} vs {b}", len(shared), both, only_a, only_b, neither,
                         f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]", f"{p:.3g}",
                         "significant" if p < 0.05 else "not significant"])
    return rows


def outcomes_from_refs(refs: Sequence[Any]) -> dict[tuple[str, str], dict[str, bool]]:
    """{(noise, policy): {qid: correct}} from indexed eval episodes (``harness.analysis.episodes.Ref``)."""
    out: dict[tuple[str, str], dict[str, bool]] = {}
    for ref in refs:
        if "policy" not in ref.dims:
            continue
        policy = " / ".join(x for x in (ref.dims.get("run"), ref.dims["policy"]) if x)
        out.setdefault((ref.dims.get("noise", "—"), policy), {})[ref.qid] = "correct" in ref.kinds
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
