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


def _curve_trial(root, name, params, accuracy, status="complete"):
    """A finished trial folder whose curve has an eval every 10 steps with the given accuracies."""
    import yaml

    from harness.core.record import RunRecord, TaskRef, write_record

    d = root / "trials" / name
    d.mkdir(parents=True)
    (d / "trial_config.yaml").write_text(yaml.safe_dump(params))
    write_record(d, RunRecord(kind="train", task=TaskRef(name="apollo3_micro"), status=status))
    rows = ["step,accuracy,n"] + [f"{10 * i},{a},100" for i, a in enumerate(accuracy)]
    (d / "curve.csv").write_text("\n".join(rows) + "\n")


def test_remedy_study_applies_study_bs_pre_registered_tests_and_rule(tmp_path):
    from scipy.stats import fisher_exact

    from harness.bench.remedies import format_remedies, remedy_study

    falls = [0.5, 0.9, 0.9, 0.3, 0.2, 0.1]      # sustained drop from step 30
    falls_late = [0.5, 0.9, 0.9, 0.9, 0.2, 0.1]  # from step 40
    dips = [0.5, 0.9, 0.2, 0.9, 0.9, 0.9]       # one deep dip that recovers: no collapse
    healthy = [0.5, 0.95, 0.95, 0.95, 0.95, 0.95]
    worse = [0.5, 0.4, 0.4, 0.4, 0.4, 0.4]      # never collapses, but lower all along
    arms = {"none": [falls, falls, falls_late, healthy], "steady": [healthy, healthy, dips, healthy],
            "bad": [falls, falls, falls, falls], "meh": [worse, worse, worse, falls]}
    for arm, curves in arms.items():
        for seed, acc in enumerate(curves):
            _curve_trial(tmp_path, f"{arm}{seed}", {"arm": arm, "seed": seed}, acc)
    r = remedy_study(tmp_path, censor_at=50)
    assert r["setting_check"]["control_collapses"] == 3 and r["setting_check"]["informative"]
    a = r["arms"]
    assert [a[x]["collapses"] for x in ("none", "steady", "bad", "meh")] == [3, 0, 4, 1]
    assert a["none"]["collapse_steps"] == {"0": 30.0, "1": 30.0, "2": 40.0, "3": None}
    # Fisher one-sided (fewer collapses than the control), Holm over the three remedies
    p_steady = fisher_exact([[0, 4], [3, 1]], alternative="less").pvalue
    assert a["steady"]["fisher_p_one_sided_fewer"] == pytest.approx(p_steady)
    assert a["steady"]["fisher_p_holm"] == pytest.approx(min(1, 3 * p_steady))
    # the remedy's collapses come later (never): O - E of the control's positive, 4 pairs give 16 relabellings
    assert a["steady"]["logrank"]["o_minus_e_control"] > 0 and a["steady"]["logrank"]["relabellings"] == 16
    assert a["steady"]["auc_difference"]["positive"] == 3 and a["steady"]["verdict"] == "promising"
    assert a["bad"]["verdict"] == "harmful"                  # more collapses than the control
    assert a["meh"]["auc_difference"]["negative"] >= 3 and a["meh"]["verdict"] == "harmful"   # lower AUC in 3 of 4
    table = format_remedies(r)
    assert table.startswith("3 of 4 runs of 'none' collapsed") and "| steady | 0/4 |" in table
    from typer.testing import CliRunner

    from harness.cli.app import app

    res = CliRunner().invoke(app, ["bench", "remedies", str(tmp_path)])
    assert res.exit_code == 0 and res.output.strip() == table
    res = CliRunner().invoke(app, ["bench", "remedies", str(tmp_path), "--control", "nothing"])
    assert res.exit_code != 0 and "no finished run of the control arm" in str(res.exception)  # main() prints it


def test_remedy_study_says_when_the_control_gives_nothing_to_prevent(tmp_path):
    from harness.bench.remedies import remedy_study

    for seed in range(4):
        _curve_trial(tmp_path, f"n{seed}", {"arm": "none", "seed": seed}, [0.5, 0.9, 0.9, 0.9])
        _curve_trial(tmp_path, f"e{seed}", {"arm": "entropy", "seed": seed}, [0.5, 0.9, 0.95, 0.9])
    r = remedy_study(tmp_path)
    assert not r["setting_check"]["informative"] and "uninformative" in r["setting_check"]["sentence"]
    assert r["arms"]["entropy"]["verdict"] == "not distinguished"
    with pytest.raises(Exception, match="no finished run of the control arm"):
        remedy_study(tmp_path, control="nothing")


def test_an_interim_remedy_table_says_so_and_corrects_for_every_planned_remedy(tmp_path):
    from harness.bench.remedies import format_remedies, remedy_study

    falls, healthy = [0.5, 0.9, 0.9, 0.3, 0.2, 0.1], [0.5, 0.95, 0.95, 0.95, 0.95, 0.95]
    for seed in range(4):
        _curve_trial(tmp_path, f"n{seed}", {"arm": "none", "seed": seed}, falls if seed < 3 else healthy)
    for seed in range(2):   # the second arm has run half its seeds
        _curve_trial(tmp_path, f"s{seed}", {"arm": "steady", "seed": seed}, healthy)
    r = remedy_study(tmp_path, planned=4, planned_arms=7)
    s = r["arms"]["steady"]
    assert s["verdict"] == "interim (2 and 4 of 4 runs)" and not s["complete"] and r["arms"]["none"]["complete"]
    assert s["fisher_p_holm"] == pytest.approx(min(1, 6 * s["fisher_p_one_sided_fewer"]))   # 6 remedies planned
    assert "| steady (interim: 2 runs) | 0/2 |" in format_remedies(r)
    assert not r["setting_check"]["interim"] and r["setting_check"]["informative"]
    # the rest of the arm run later into another folder: pooled, and a run present in both counted once
    import shutil

    later = tmp_path / "later"
    for seed in (2, 3):
        _curve_trial(later, f"s{seed}", {"arm": "steady", "seed": seed}, healthy)
    (tmp_path / "trials" / "n0" / "config.json").write_text('{"train": {"task": "apollo3_micro", "seed": 0}}')
    shutil.copytree(tmp_path / "trials" / "n0", later / "trials" / "n0")
    pooled = remedy_study([tmp_path, later], planned=4, planned_arms=7)
    assert pooled["arms"]["steady"]["runs"] == 4 and pooled["arms"]["none"]["runs"] == 4
