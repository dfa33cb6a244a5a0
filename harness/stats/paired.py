"""Paired comparison of two arms evaluated on the same questions (and, optionally, several seeds).

Each arm is a 0/1 matrix ``seeds x questions`` (question order shared by both arms; seed ``i`` of
one arm is paired with seed ``i`` of the other, e.g. same seed, same eval noise draws).

==============  ===========================================================================
quantity        definition
==============  ===========================================================================
accuracy        mean of the arm's matrix (over seeds and questions)
difference      accuracy(A) - accuracy(B)
95% interval    percentile bootstrap of the difference, resampling questions (each drawn
                question brings its outcomes in both arms and every seed: the pairing is kept)
p-value         one seed pair: McNemar's exact test (two-sided binomial test on the discordant
                questions); several, or scores in [0, 1] (``binary=False``): a sign-flip
                permutation test on the per-question differences summed over seeds
                (two-sided; exact when 2^questions is small)
significant     ``p < alpha`` (default 0.05)
per seed        the difference of each seed pair, to show the spread between seeds
==============  ===========================================================================

Both the interval and the p-value take the questions as the unit and condition on the seeds that
were run: they say whether these runs differ on this question set. Seed-to-seed variation is shown
(``per_seed``), not folded in: with the usual two or three seeds it cannot be estimated reliably.

Pure: numpy, and scipy for the binomial test; no I/O (:func:`harness.core.rundir.outcomes` reads runs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["PairedComparison", "compare_paired", "format_p", "mcnemar_exact"]


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (A right and B wrong; the reverse).

    >>> round(mcnemar_exact(10, 2), 4)
    0.0386
    >>> mcnemar_exact(0, 0)
    1.0
    """
    total = a_only + b_only
    if total == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(a_only, total, 0.5, alternative="two-sided").pvalue)


@dataclass(frozen=True)
class PairedComparison:
    """The result of :func:`compare_paired` (see the module table)."""

    name_a: str
    name_b: str
    accuracy_a: float
    accuracy_b: float
    difference: float
    interval: tuple[float, float]
    p_value: float
    test: str
    seeds: int
    questions: int
    alpha: float = 0.05
    label: str = "peak"
    per_seed: tuple[float, ...] = ()

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    def sentence(self) -> str:
        """The compact statement a reader can quote.

        >>> print(PairedComparison("retry", "baseline", 0.88, 0.94, -0.06, (-0.15, 0.03), 0.21, "permutation",
        ...                        3, 100).sentence())  # doctest: +NORMALIZE_WHITESPACE
        retry vs baseline: peak 0.88 vs 0.94, difference -0.06 [-0.15, 0.03], p = 0.21
        (paired, 3 seeds x 100 questions): not significant
        """
        seeds = f"{self.seeds} seed{'s' if self.seeds != 1 else ''} x " if self.seeds > 1 else ""
        verdict = "significant" if self.significant else "not significant"
        lo, hi = self.interval
        return (f"{self.name_a} vs {self.name_b}: {self.label} {self.accuracy_a:.2f} vs {self.accuracy_b:.2f}, "
                f"difference {_num(self.difference)} [{_num(lo)}, {_num(hi)}], "
                f"p {_p(self.p_value)} (paired, {seeds}{self.questions} questions): {verdict}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "interval": list(self.interval), "per_seed": list(self.per_seed),
                "significant": self.significant, "sentence": self.sentence()}


def _num(x: float) -> str:
    """Two decimals, no "-0.00"."""
    text = f"{x:.2f}"
    return "0.00" if text == "-0.00" else text


def format_p(p: float) -> str:
    """A p-value as reports print it.

    >>> format_p(0.2131), format_p(0.0039), format_p(0.00004)
    ('0.21', '0.004', '< 0.001')
    """
    return "< 0.001" if p < 0.001 else f"{p:.3f}" if p < 0.01 else f"{p:.2f}"


def _p(p: float) -> str:
    """``= 0.21``, ``= 0.004``, ``< 0.001`` (for "p ..." in a sentence)."""
    text = format_p(p)
    return text if text.startswith("<") else f"= {text}"


def compare_paired(a: Sequence, b: Sequence, name_a: str = "A", name_b: str = "B", *, n_boot: int = 4000,
                   n_perm: int = 20000, alpha: float = 0.05, seed: int = 0, label: str = "peak",
                   binary: bool = True) -> PairedComparison:
    """Compare two arms' 0/1 outcomes on shared questions: difference, 95% interval, p-value.

    ``a`` and ``b``: one outcome list per seed (or a single list for one seed), equal shapes.
    ``binary=False`` takes per-question scores in [0, 1] instead (e.g. a question's mean outcome over
    several evals); the p-value is then the sign-flip permutation test, one seed or several.

    >>> a = [1] * 30 + [0] * 10   # 40 questions: A right on 30
    >>> b = [1] * 20 + [0] * 20   # B right on the first 20 (all of which A also gets)
    >>> r = compare_paired(a, b, "retry", "baseline")
    >>> r.difference, r.test, round(r.p_value, 4), r.significant
    (0.25, 'mcnemar', 0.002, True)
    """
    x, y = _matrix(a, binary), _matrix(b, binary)
    if x.shape != y.shape:
        raise ValueError(f"arms differ in shape: {x.shape} vs {y.shape} (seeds x shared questions)")
    if x.shape[1] == 0:
        raise ValueError("no shared questions to compare")
    seeds, questions = x.shape
    d = x - y  # seeds x questions
    rng = np.random.default_rng(seed)
    per_question = d.mean(axis=0)
    boots = per_question[rng.integers(0, questions, size=(n_boot, questions))].mean(axis=1)
    lo, hi = (float(v) for v in np.quantile(boots, [0.025, 0.975]))
    if seeds == 1 and binary:
        p = mcnemar_exact(int(((x == 1) & (y == 0)).sum()), int(((x == 0) & (y == 1)).sum()))
        test = "mcnemar"
    else:
        p, test = sign_flip(d.sum(axis=0), n_perm, rng), "permutation"
    return PairedComparison(name_a, name_b, float(x.mean()), float(y.mean()), float(d.mean()), (lo, hi), p, test,
                            seeds, questions, alpha, label, tuple(float(v) for v in d.mean(axis=1)))


def _matrix(arm: Sequence, binary: bool = True) -> np.ndarray:
    m = np.asarray(arm, dtype=float)
    if m.ndim == 1:
        m = m[None, :]
    if m.ndim != 2:
        raise ValueError("outcomes must be one list per seed")
    if binary and not np.isin(m, (0.0, 1.0)).all():
        raise ValueError("outcomes must be 0/1, one list per seed")
    if not binary and not (np.isfinite(m).all() and ((m >= 0) & (m <= 1)).all()):
        raise ValueError("scores must be numbers in [0, 1], one list per seed")
    return m


def sign_flip(per_question: np.ndarray, n_perm: int, rng: np.random.Generator) -> float:
    """Two-sided sign-flip permutation p-value of sum(per_question) (exact when 2^k <= n_perm; zeros dropped).

    >>> sign_flip(np.array([0.1] * 8), 10_000, np.random.default_rng(0))   # 2 of 256 sign patterns as extreme
    0.0078125
    """
    nz = per_question[per_question != 0]
    if nz.size == 0:
        return 1.0
    observed = abs(nz.sum())
    if 2 ** nz.size <= n_perm:
        signs = ((np.arange(2 ** nz.size)[:, None] >> np.arange(nz.size)) & 1) * 2 - 1
        return float(np.mean(np.abs(signs @ nz) >= observed - 1e-12))
    signs = rng.choice((-1.0, 1.0), size=(n_perm, nz.size))
    return float((np.sum(np.abs(signs @ nz) >= observed - 1e-12) + 1) / (n_perm + 1))


def seed_differences(a: Sequence[float | None], b: Sequence[float | None]) -> dict[str, Any]:
    """Seed-matched differences ``a[i] - b[i]`` (pairs with a missing side dropped): the per-seed values, their
    mean with a Student-t 95% interval, how many are positive and negative, and the exact two-sided sign-flip p
    (exact up to 16 seeds).

    >>> d = seed_differences([0.6, 0.7, None], [0.5, 0.5, 0.4])
    >>> [round(x, 2) for x in d["per_seed"]], d["positive"], d["p_sign_flip_two_sided"]
    ([0.1, 0.2], 2, 0.5)
    """
    from harness.stats.intervals import t_interval

    diffs = [x - y for x, y in zip(a, b) if x is not None and y is not None]
    return {"per_seed": diffs, "mean": sum(diffs) / len(diffs) if diffs else None, "t95": list(t_interval(diffs)),
            "positive": sum(d > 0 for d in diffs), "negative": sum(d < 0 for d in diffs),
            "p_sign_flip_two_sided": sign_flip(np.array(diffs), 2**16, np.random.default_rng(0)) if diffs else None}


def compare_outcomes(arm_a: Sequence[dict[str, float]], arm_b: Sequence[dict[str, float]], name_a: str = "A",
                     name_b: str = "B", **kwargs) -> PairedComparison:
    """Paired comparison of two arms of runs, each run's outcomes ``{question id: success rate}`` (correct:
    1 or 0; with K samples per question, the share of them correct) (seed ``i`` of A with seed ``i`` of B),
    on the questions every run evaluated. Success rates other than 0 and 1 are compared as scores
    (``binary=False``: the sign-flip permutation test).

    >>> a = [{"q1": True, "q2": True, "q3": False}]; b = [{"q1": False, "q2": True, "q3": False, "q4": True}]
    >>> r = compare_outcomes(a, b, "retry", "baseline"); r.questions, r.difference
    (3, 0.3333333333333333)
    """
    from harness.core.errors import DataError

    if not arm_a or len(arm_a) != len(arm_b):
        raise DataError(f"each arm needs the same number of runs (seeds): {len(arm_a)} vs {len(arm_b)}")
    shared = set.intersection(*(set(o) for o in (*arm_a, *arm_b)))
    if not shared:
        raise DataError("the runs share no evaluated question: they cannot be compared paired")
    qids = sorted(shared)
    a = [[float(o[q]) for q in qids] for o in arm_a]
    b = [[float(o[q]) for q in qids] for o in arm_b]
    kwargs.setdefault("binary", all(v in (0.0, 1.0) for arm in (a, b) for row in arm for v in row))
    return compare_paired(a, b, name_a, name_b, **kwargs)
