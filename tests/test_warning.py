"""Early warnings as a prediction (harness.stats.warning): examples, targets, leave-one-configuration-out AUROC and
the permutation null, on hand-made runs whose answer is known, and end to end on the corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.bench.corpus import warning_runs
from harness.stats.warning import WarningRun, auroc, examples, loco_auroc, score_corpus, spreads

pytestmark = pytest.mark.tier("unit")

CORPUS = Path(__file__).resolve().parent / "data" / "micro_corpus"


def _run(name, accs, kl, collapse, config):
    """A curve with an eval every 5 steps (accuracies ``accs``) and a KL value at every step."""
    steps = np.arange(5 * (len(accs) - 1) + 1)
    acc = [accs[s // 5] if s % 5 == 0 else np.nan for s in steps]
    return WarningRun(name, pd.DataFrame({"step": steps, "accuracy": acc, "n": 100, "kl": kl(steps)}), collapse,
                      config)


def _corpus(informative: bool, seed: int = 0):
    """Six configurations x two seeds: half collapse at step 25 after a peak at 10; KL ramps up from step 10 in
    the collapsing runs (informative) or in a random half of all runs (not)."""
    rng = np.random.default_rng(seed)
    runs = []
    for c in range(6):
        for s in range(2):
            collapses = c % 2 == 0
            ramps = collapses if informative else bool(rng.integers(2))
            accs = [0.4, 0.8, 0.9, 0.88, 0.87, 0.1, 0.0, 0.0] if collapses else [0.4, 0.8, 0.9, 0.88, 0.89, 0.9, 0.87,
                                                                                0.9]
            noise = rng.normal(0, 0.01, 36)
            runs.append(_run(f"c{c}s{s}", accs, lambda st, r=ramps, e=noise: 0.1 + e[: len(st)]
                             + (np.clip(st - 10, 0, None) * 0.05 if r else 0), 25 if collapses else None, f"cfg{c}"))
    return runs


def test_examples_and_targets():
    run = _corpus(True)[0]
    scale = spreads([run], ["kl"])
    X, B, y = examples(run, run.collapse_step, ["kl"], scale, k=2)
    # the evals at 5..20 are at or after the peak so far (0.8 at 5, then 0.9 at 10) and before the collapse at 25
    assert len(y) == 4 and list(y) == [0, 0, 1, 1]  # 25 is within two evals of 15 and of 20
    assert X[0, 0] == pytest.approx(0.0) and X[-1, 0] > 2  # KL above its value at the peak, in spreads
    assert B[0].tolist() == pytest.approx([1.0, 0.5, 0.5])  # step 5: 0.8 is the peak so far, 0.4 before it


def test_an_informative_signal_beats_the_null_and_a_random_one_does_not():
    good = score_corpus(_corpus(True), signals=["kl"], permutations=40)
    assert good["models"]["kl"]["auroc"] > 0.9 and good["models"]["kl"]["p"] < 0.1
    bad = score_corpus(_corpus(False, seed=3), signals=["kl"], permutations=40)
    assert bad["models"]["kl"]["p"] > 0.1
    rule = good["threshold_rule"]["kl"]
    assert rule["warned"] == rule["warnable"] == 6 and rule["false"] == 0 and rule["healthy"] == 6


def test_auroc_and_loco():
    assert auroc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0 and auroc([1, 1], [0, 1]) == 0.5 and auroc([1], [1]) is None
    X = np.array([[0.0], [0.1], [1.0], [1.1], [0.05], [1.05]])
    y = np.array([0, 0, 1, 1, 0, 1])
    assert loco_auroc(["a", "a", "b", "b", "c", "c"], X, y) == 1.0


def test_prediction_runs_on_the_corpus():
    runs = warning_runs(CORPUS)
    assert len(runs) == 73 and sum(r.collapse_step is not None for r in runs) == 33
    assert len({r.config for r in runs}) < len(runs)  # seeds of one recipe share a configuration
    res = score_corpus(runs, permutations=3)
    assert res["runs"] == 73 and res["examples"] > res["positives"] > 0
    assert set(res["models"]) >= {"kl", "accuracy only (baseline)", "all signals", "accuracy + all signals"}
