"""Study A's pre-registered time-to-event analysis (harness.stats.survival) against scipy and by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from harness.stats.survival import kaplan_meier, km_median, logrank_oe, logrank_z, paired_logrank

pytestmark = pytest.mark.tier("unit")


@pytest.mark.parametrize("seed", range(6))
def test_logrank_z_equals_scipys(seed):
    from scipy.stats import CensoredData, logrank

    rng = np.random.default_rng(seed)
    a = [None if rng.random() < 0.4 else float(rng.choice([5, 10, 15, 20, 25])) for _ in range(8)]
    b = [None if rng.random() < 0.6 else float(rng.choice([5, 10, 15, 20, 25])) for _ in range(8)]
    if all(x is None for x in a + b):
        a[0] = 5.0
    times = [50.0 if x is None else x for x in a + b]
    events = [x is not None for x in a + b]
    group = [True] * 8 + [False] * 8

    def data(xs):
        return CensoredData(uncensored=[x for x in xs if x is not None], right=[50.0 for x in xs if x is None])

    assert logrank_z(times, events, group) == pytest.approx(logrank(data(a), data(b)).statistic)


def test_exact_permutation_p_counts_relabellings_within_pairs():
    a, b = [5, None, 10, 20, None], [None, None, 15, None, 25]
    r = paired_logrank(a, b, censor_at=50)
    assert r.exact and r.n_relabellings == 32 and r.n_pairs == 5
    # the same null by brute force: swap the labels of each pair independently
    times = [50.0 if x is None else float(x) for x in a + b]
    events = [x is not None for x in a + b]
    null = [logrank_oe(times, events, [not s for s in swap] + list(swap))
            for swap in itertools.product((False, True), repeat=5)]
    assert r.p_a_sooner == pytest.approx(np.mean(np.array(null) >= r.oe - 1e-12))
    assert r.p_a_later == pytest.approx(np.mean(np.array(null) <= r.oe + 1e-12))
    # relabelling is symmetric: the reversed comparison swaps the two one-sided p-values
    rev = paired_logrank(b, a, censor_at=50)
    assert rev.oe == pytest.approx(-r.oe) and rev.p_a_sooner == pytest.approx(r.p_a_later)


def test_eight_seed_pairs_cannot_go_below_one_in_256_and_sampling_kicks_in_past_the_limit():
    a, b = [5] * 8, [None] * 8
    assert paired_logrank(a, b, censor_at=50).p_a_sooner == pytest.approx(1 / 256)
    sampled = paired_logrank(a, b, censor_at=50, max_exact=16, n_perm=2000)
    assert not sampled.exact and sampled.n_relabellings == 2000 and sampled.p_a_sooner < 0.02


def test_kaplan_meier_and_its_median():
    assert kaplan_meier([None, None], censor_at=50) == [(0.0, 1.0)]
    assert km_median([None, None], censor_at=50) is None
    curve = kaplan_meier([10, 10, 20, None], censor_at=50)
    assert curve == [(0.0, 1.0), (10.0, 0.5), (20.0, 0.25)]
    assert km_median([10, 10, 20, None], censor_at=50) == 10.0


def test_unmatched_arms_are_refused():
    with pytest.raises(ValueError, match="same number of runs"):
        paired_logrank([5, 10], [None], censor_at=50)


def _trial(root, name, params, persistence, accuracy=0.5):
    """A finished trial folder whose curve has an eval every 10 steps with the given greedy persistence."""
    import yaml

    from harness.core.record import RunRecord, TaskRef, write_record

    d = root / "trials" / name
    d.mkdir(parents=True)
    (d / "trial_config.yaml").write_text(yaml.safe_dump(params))
    write_record(d, RunRecord(kind="train", task=TaskRef(name="apollo3_micro"), status="complete"))
    rows = ["step,accuracy,n,persistence"] + [f"{10 * i},{accuracy},100,{p}" for i, p in enumerate(persistence)]
    (d / "curve.csv").write_text("\n".join(rows) + "\n")


def test_onset_study_pairs_runs_by_seed_and_applies_the_pre_registered_rule(tmp_path):
    from harness.bench.onset import onset_study

    never, at10, at20, at30 = [0, 0, 0, 0, 0, 0], [0, 0.5, 1, 1, 1, 1], [0, 0, 0.6, 1, 1, 1], [0, 0, 0, 0.5, 1, 1]
    treated, control = [at10, at10, at20, never], [never, never, never, at30]
    for seed, (t, c) in enumerate(zip(treated, control)):
        _trial(tmp_path, f"t{seed}", {"reward.retry": 1.0, "seed": seed}, t, accuracy=0.6)
        _trial(tmp_path, f"c{seed}", {"reward.retry": 0.0, "seed": seed}, c, accuracy=0.5)
    _trial(tmp_path, "lonely", {"reward.retry": 1.0, "seed": 9}, at10)   # no partner: left out, and said
    r = onset_study(tmp_path, censor_at=50)
    assert r["n_pairs"] == 4 and r["unpaired_runs"] == {"treated": [9], "control": []}
    assert r["onset"] == {"treated": [10.0, 10.0, 20.0, None], "control": [None, None, None, 30.0]}
    assert r["reached_onset"] == {"treated": 3, "control": 1} and r["km_median"] == {"treated": 10.0, "control": None}
    direct = paired_logrank([10, 10, 20, None], [None, None, None, 30], censor_at=50)
    assert r["logrank"]["p_one_sided_sooner"] == direct.p_a_sooner and r["logrank"]["relabellings"] == 16
    # 4 pairs cannot reach p < 0.05 (the smallest p is 1/16): the rule says no evidence
    assert direct.p_a_sooner >= 1 / 16 and r["verdict"] == "no evidence that it does"
    assert r["auc_difference"]["per_seed"] == pytest.approx([0.1] * 4)
    assert r["auc_difference"]["p_sign_flip_two_sided"] == pytest.approx(2 / 16)
