"""Early warnings, tested as a prediction: at each eval after the peak, will the run collapse within ``k`` evals?

The earlier test (:mod:`harness.stats.indicators`) compared each indicator's warned-early share on real runs with
a chance share from synthetic noise, two groups that differ in more than the signal (docs/detection.md). Here the
question is asked where it is used, at each eval, with the accuracy curve as the baseline to beat:

=====================  =============================================================================================
example                a run's eval ``j`` with training steps before it (``j`` >= 1), at or after the peak so far
                       (the best eval up to ``j``), before the run's labelled collapse
target                 1 when the labelled collapse (the sustained drop) comes within the next ``k`` evals:
                       ``step_j < collapse <= step_j + k x interval``
signal features        each training signal (:data:`SIGNALS`), smoothed over the training steps up to ``step_j``
                       (an exponentially weighted mean, half-life :data:`HALF_LIFE` steps), minus its smoothed value
                       at the peak so far, divided by the signal's pooled step-to-step spread (all runs, no labels),
                       times its pre-stated direction (+1: expected to rise before a collapse, -1: to fall)
baseline features      the accuracy curve alone: ``acc_j / peak``, ``acc_(j-1) / peak``, ``(acc_j - acc_(j-1)) / peak``
models                 one L2 logistic regression per feature set (each signal alone, all signals, the baseline, the
                       baseline with all signals), fitted on every configuration but one and scored on that one
                       (*leave one configuration out*: a configuration is a training fingerprint without its seed, so
                       seeds of one recipe are held out together); the held-out scores are pooled into one AUROC
null                   the same AUROC with the runs' labels permuted: each run takes another run's outcome (healthy,
                       or a collapse at the same distance after its own peak), which keeps the number of collapses and
                       their timing and breaks any link with the signals; p = share of permutations at least as high
fixed-threshold rule   per signal, fixed before scoring: warn at the first example whose feature exceeds
                       :data:`THRESHOLD`; reported as warned (collapsing runs with an example, warned before the
                       collapse) and false warnings (healthy runs warned at any eval)
=====================  =============================================================================================

Pure numpy; the logistic regression is a few Newton steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

__all__ = ["HALF_LIFE", "SIGNALS", "THRESHOLD", "WarningRun", "auroc", "examples", "loco_auroc", "score_corpus"]

#: Training signals and their pre-stated direction before a collapse (+1 rises, -1 falls). Each is read from the
#: curve when the run logged it; ``logp_correct`` and the reward components are logged by runs made from 2026-12-07.
SIGNALS: dict[str, int] = {
    "kl": +1, "grad_norm": +1, "frac_reward_zero_std": +1, "reward_std": -1, "entropy": -1, "completion_length": +1,
    "reward": -1, "loss": +1, "logp_correct": -1, "reward_correctness_mean": -1, "reward_retry_mean": +1,
    "reward_search_strategy_mean": +1, "answer_rate": -1, "searches_per_episode": +1,
}
#: Half-life (training steps) of the exponentially weighted mean that smooths each signal.
HALF_LIFE = 3.0
#: The fixed-threshold rule: warn when a feature (pooled spreads above the peak's value, in the stated direction)
#: exceeds this.
THRESHOLD = 2.0
#: Evals ahead the prediction looks.
K = 2
#: Eval columns (logged at evals only): smoothed over evals, not steps.
EVAL_SIGNALS = ("answer_rate", "searches_per_episode")


@dataclass
class WarningRun:
    """One run: its curve (a ``curve.csv`` frame), labelled collapse step (None: healthy) and configuration key."""

    name: str
    curve: Any
    collapse_step: float | None
    config: str
    evals: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.evals = self.curve[self.curve["accuracy"].notna()].reset_index(drop=True)


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half); None without both classes.

    >>> auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    s, y = np.asarray(scores, float), np.asarray(labels, int)
    pos, neg = s[y == 1], s[y == 0]
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def _ewm(values: np.ndarray, half_life: float) -> np.ndarray:
    """Exponentially weighted running mean that skips missing values (NaN until the first value)."""
    alpha = 1 - 0.5 ** (1 / half_life)
    out, m = np.full(len(values), np.nan), np.nan
    for i, v in enumerate(values):
        if np.isfinite(v):
            m = v if not np.isfinite(m) else alpha * v + (1 - alpha) * m
        out[i] = m
    return out


def spreads(runs: Sequence[WarningRun], signals: Sequence[str]) -> dict[str, float]:
    """Each signal's pooled step-to-step spread (median absolute change, over all runs; no labels used)."""
    out = {}
    for s in signals:
        diffs = []
        for r in runs:
            if s in r.curve:
                col = r.evals[s] if s in EVAL_SIGNALS else r.curve[s]
                v = col.to_numpy(dtype=float)
                v = v[np.isfinite(v)]
                diffs += list(np.abs(np.diff(v)))
        nz = [d for d in diffs if d > 0]
        out[s] = float(np.median(nz)) if nz else 0.0
    return out


def _smoothed(run: WarningRun, signal: str) -> dict[float, float]:
    """step -> the smoothed signal up to that step (eval steps only)."""
    if signal in EVAL_SIGNALS:
        v = _ewm(run.evals[signal].to_numpy(dtype=float), 1.0)
        return dict(zip(run.evals["step"].tolist(), v))
    v = _ewm(run.curve[signal].to_numpy(dtype=float), HALF_LIFE)
    by_step = dict(zip(run.curve["step"].tolist(), v))
    return {s: by_step.get(s, np.nan) for s in run.evals["step"].tolist()}


def examples(run: WarningRun, collapse_step: float | None, signals: Sequence[str], scale: dict[str, float],
             k: int = K) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(signal features, baseline features, targets) of one run's examples (see the module table); a signal the
    run did not log is NaN."""
    acc = run.evals["accuracy"].to_numpy(dtype=float)
    steps = run.evals["step"].to_numpy(dtype=float)
    interval = float(np.median(np.diff(steps))) if len(steps) > 1 else 1.0
    smooth = {s: _smoothed(run, s) if s in run.curve else None for s in signals}
    X, B, y = [], [], []
    for j in range(1, len(acc)):
        peak = int(np.argmax(acc[: j + 1]))
        if collapse_step is not None and steps[j] >= collapse_step:
            break
        row = []
        for s in signals:
            sm = smooth[s]
            if sm is None or not scale.get(s):
                row.append(np.nan)
                continue
            row.append(SIGNALS[s] * (sm[steps[j]] - sm[steps[peak]]) / scale[s])
        top = acc[peak] or 1.0
        X.append(row)
        B.append([acc[j] / top, acc[j - 1] / top, (acc[j] - acc[j - 1]) / top])
        y.append(int(collapse_step is not None and collapse_step <= steps[j] + k * interval))
    return np.array(X, float).reshape(-1, len(signals)), np.array(B, float).reshape(-1, 3), np.array(y, int)


def _fit_predict(X: np.ndarray, y: np.ndarray, Xt: np.ndarray, l2: float = 1.0) -> np.ndarray:
    """L2 logistic regression (Newton) on standardised columns, missing values at the training mean; scores."""
    seen = np.isfinite(X).sum(axis=0) if len(X) else np.zeros(X.shape[1])
    # a signal no training run logged (e.g. logp_correct, newer than the older runs) is all missing: mean 0
    mu = np.where(seen > 0, np.nansum(np.where(np.isfinite(X), X, 0.0), axis=0) / np.maximum(seen, 1), 0.0)
    X, Xt = np.where(np.isfinite(X), X, mu), np.where(np.isfinite(Xt), Xt, mu)
    sd = X.std(axis=0)
    sd[sd == 0] = 1.0
    A, At = np.c_[np.ones(len(X)), (X - mu) / sd], np.c_[np.ones(len(Xt)), (Xt - mu) / sd]
    w = np.zeros(A.shape[1])
    reg = l2 * np.eye(A.shape[1])
    reg[0, 0] = 0.0
    for _ in range(25):
        p = 1 / (1 + np.exp(-A @ w))
        g = A.T @ (p - y) + reg @ w
        H = (A * (p * (1 - p))[:, None]).T @ A + reg + 1e-9 * np.eye(A.shape[1])
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return At @ w


def loco_auroc(groups: Sequence[str], X: np.ndarray, y: np.ndarray) -> float | None:
    """Pooled AUROC of leave-one-configuration-out scores (a fold whose training part has one class is scored by
    its training prevalence, which carries no information)."""
    groups = np.asarray(groups)
    scores = np.zeros(len(y))
    for g in np.unique(groups):
        held = groups == g
        if len(np.unique(y[~held])) < 2:
            scores[held] = y[~held].mean() if (~held).any() else 0.0
            continue
        scores[held] = _fit_predict(X[~held], y[~held], X[held])
    return auroc(scores, y)


def _dataset(runs: Sequence[WarningRun], labels: Sequence[float | None], signals: Sequence[str],
             scale: dict[str, float], k: int):
    Xs, Bs, ys, gs, owners = [], [], [], [], []
    for i, (r, lab) in enumerate(zip(runs, labels)):
        X, B, y = examples(r, lab, signals, scale, k)
        Xs.append(X)
        Bs.append(B)
        ys.append(y)
        gs += [r.config] * len(y)
        owners += [i] * len(y)
    return (np.vstack(Xs) if Xs else np.zeros((0, len(signals))), np.vstack(Bs) if Bs else np.zeros((0, 3)),
            np.concatenate(ys) if ys else np.zeros(0, int), gs, owners)


def _permuted(runs: Sequence[WarningRun], rng: np.random.Generator) -> list[float | None]:
    """Each run takes another run's outcome: healthy, or a collapse at the same distance after its own peak."""
    order = rng.permutation(len(runs))
    out = []
    for r, donor in zip(runs, (runs[i] for i in order)):
        if donor.collapse_step is None:
            out.append(None)
            continue
        d_acc = donor.evals["accuracy"].to_numpy(float)
        gap = donor.collapse_step - donor.evals["step"].iloc[int(np.argmax(d_acc))]
        acc = r.evals["accuracy"].to_numpy(float)
        out.append(float(r.evals["step"].iloc[int(np.argmax(acc))] + gap))
    return out


def score_corpus(runs: Sequence[WarningRun], signals: Sequence[str] | None = None, k: int = K,
                 permutations: int = 1000, seed: int = 0) -> dict[str, Any]:
    """LOCO AUROC of each feature set with its permutation p-value, and the fixed-threshold rule per signal."""
    signals = [s for s in (signals or SIGNALS) if any(s in r.curve for r in runs)]
    scale = spreads(runs, signals)
    labels = [r.collapse_step for r in runs]
    sets = {**{s: ("signal", [i]) for i, s in enumerate(signals)}, "all signals": ("signal", list(range(len(signals)))),
            "accuracy only (baseline)": ("base", None), "accuracy + all signals": ("both", list(range(len(signals))))}

    def aurocs(labs):
        X, B, y, g, _ = _dataset(runs, labs, signals, scale, k)
        out = {}
        for name, (kind, cols) in sets.items():
            if kind == "signal":
                M = X[:, cols]
            elif kind == "base":
                M = B
            else:
                M = np.c_[B, X[:, cols]]
            usable = np.isfinite(M).any(axis=1)
            out[name] = loco_auroc(np.asarray(g)[usable], M[usable], y[usable]) if usable.any() else None
        return out, y

    observed, y = aurocs(labels)
    rng = np.random.default_rng(seed)
    null = {name: [] for name in sets}
    for _ in range(permutations):
        perm, _y = aurocs(_permuted(runs, rng))
        for name, v in perm.items():
            if v is not None:
                null[name].append(v)
    result = {"k": k, "signals": signals, "scale": scale, "examples": int(len(y)), "positives": int(y.sum()),
              "runs": len(runs), "collapsing": sum(lab is not None for lab in labels),
              "configurations": len({r.config for r in runs}), "permutations": permutations, "models": {}}
    for name, v in observed.items():
        nv = np.asarray(null[name])
        result["models"][name] = {"auroc": v, "null_mean": float(nv.mean()) if len(nv) else None,
                                  "p": float((1 + (nv >= v).sum()) / (1 + len(nv))) if v is not None and len(nv)
                                  else None}
    result["threshold_rule"] = threshold_rule(runs, signals, scale, k)
    return result


def threshold_rule(runs: Sequence[WarningRun], signals: Sequence[str], scale: dict[str, float],
                   k: int = K) -> dict[str, dict[str, Any]]:
    """Per signal, the fixed rule (feature > :data:`THRESHOLD`): collapsing runs with an example that it warned
    before their collapse, healthy runs it warned at any eval."""
    out = {}
    for i, s in enumerate(signals):
        warned = false = warnable = healthy = 0
        for r in runs:
            X, _, y = examples(r, r.collapse_step, signals, scale, k)
            fired = bool(np.any(X[:, i] > THRESHOLD)) if len(X) else False
            if r.collapse_step is None:
                healthy += 1
                false += fired
            elif len(y):
                warnable += 1
                warned += fired
        out[s] = {"warned": warned, "warnable": warnable, "false": false, "healthy": healthy}
    return out
