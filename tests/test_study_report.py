"""The sweep's study report (harness.report.study, harness.report.study_report) on real SQLite Optuna
studies built in tmp_path: arm comparisons (reward.retry and categorical arms such as preset), seeds
paired, importances only with enough trials, parallel coordinates, the Pareto front, escaping."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from harness.core.errors import ConfigError
from harness.report.study import collect, importance_floor, mask_url
from harness.report.study_report import scatter_figure, study_summary, write_study_report
from harness.stats.curves import analyze
from harness.stats.intervals import t_interval
from tests.browser import check_page_in_chromium

# Real Optuna storages on disk; whole pages rendered (figures drawn with seaborn/matplotlib, inlined as SVG),
# and in chromium.
pytestmark = pytest.mark.tier("integration")

STEPS = list(range(0, 301, 25))
EVIL = "<script>alert(1)</script> OOM & died \u202e\x00"


def synthetic_curve(peak: float, peak_step: int, collapse: bool) -> list[float]:
    """Accuracy rising linearly to ``peak`` at ``peak_step``, then holding or falling to zero."""
    acc = []
    for s in STEPS:
        if s <= peak_step:
            acc.append(peak * (0.3 + 0.7 * s / peak_step))
        else:
            acc.append(max(0.0, peak * (1 - (s - peak_step) / 75)) if collapse else peak * 0.95)
    return acc


def write_run(run_dir: Path, acc: list[float]) -> dict:
    """Write curve.csv and return the attributes the sweep would have recorded."""
    run_dir.mkdir(parents=True)
    lines = ["step,accuracy,accuracy_ci_low,accuracy_ci_high,retry_rate"]
    lines += [f"{s},{a:.6f},{max(a - 0.05, 0):.6f},{min(a + 0.05, 1):.6f},0.1" for s, a in zip(STEPS, acc)]
    (run_dir / "curve.csv").write_text("\n".join(lines) + "\n")
    import pandas as pd

    res = analyze(pd.DataFrame({"step": STEPS[:len(acc)], "accuracy": acc}), delta=0.5, m=2)
    return {"run_dir": str(run_dir), "peak": res["peak"], "peak_step": res["peak_step"],
            "collapse_step": res["collapse_step"], "stopped": "finished"}


GRID = {"reward.retry": [0.0, 1.0], "train_noise": [0.0, 0.3], "seed": [0, 1, 2]}
DISTS = {k: optuna.distributions.CategoricalDistribution(v) for k, v in GRID.items()}


def cell_peak(retry: float, noise: float, seed: int) -> float:
    return round(0.25 + 0.2 * retry - 0.1 * noise + 0.01 * seed * (1 + retry), 4)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    """A 2 x 2 x 3 grid of complete trials, one pruned and one failed trial, in study.db."""
    root = tmp_path_factory.mktemp("sweep")
    study = optuna.create_study(study_name="retry_vs_baseline", storage=f"sqlite:///{root / 'study.db'}",
                                direction="maximize")
    n = 0
    for retry in GRID["reward.retry"]:
        for noise in GRID["train_noise"]:
            for seed in GRID["seed"]:
                params = {"reward.retry": retry, "train_noise": noise, "seed": seed}
                acc = synthetic_curve(cell_peak(retry, noise, seed), 150 if retry else 100, collapse=seed != 2)
                attrs = write_run(root / "trials" / f"trial_{n:04d}", acc)
                study.add_trial(optuna.trial.create_trial(
                    params=params, distributions=DISTS, value=attrs["peak"], user_attrs=attrs,
                    intermediate_values=dict(zip(STEPS, acc))))
                n += 1
    pruned = write_run(root / "trials" / f"trial_{n:04d}", [0.05, 0.06, 0.05])
    study.add_trial(optuna.trial.create_trial(
        params={"reward.retry": 0.0, "train_noise": 0.3, "seed": 0}, distributions=DISTS,
        user_attrs={**pruned, "stopped": "pruned"}, intermediate_values={0: 0.05, 25: 0.06, 50: 0.05},
        state=optuna.trial.TrialState.PRUNED))
    study.add_trial(optuna.trial.create_trial(
        params={"reward.retry": 1.0, "train_noise": 0.0, "seed": 1}, distributions=DISTS,
        user_attrs={"run_dir": str(root / "trials" / "missing"), "fail_reason": EVIL},
        state=optuna.trial.TrialState.FAIL))
    write_study_report(root)
    return root


@pytest.fixture(scope="module")
def page(study_dir: Path) -> str:
    return (study_dir / "report.html").read_text()


@pytest.fixture(scope="module")
def summary(study_dir: Path) -> dict:
    return study_summary(f"sqlite:///{study_dir / 'study.db'}")


def expected_means() -> dict[tuple[float, str], float]:
    out = {}
    for noise in GRID["train_noise"]:
        for retry, arm in ((0.0, "baseline"), (1.0, "retry")):
            peaks = [cell_peak(retry, noise, s) for s in GRID["seed"]]
            out[(noise, arm)] = sum(peaks) / len(peaks)
    return out


def test_retry_comparison_means_intervals_and_pairs(summary: dict):
    json.dumps(summary, allow_nan=False)
    comps = {c["param"]: c for c in summary["comparisons"]}
    assert list(comps) == ["reward.retry", "train_noise"]  # every categorical arm, not only reward.retry
    retry = comps["reward.retry"]
    assert retry["context"] == ["train_noise"]
    means = {(r["train_noise"], r["arm"]): r["mean peak"] for r in retry["rows"]}
    assert means == pytest.approx(expected_means())
    assert all(r["n"] == 3 for r in retry["rows"])  # three seeds per cell; pruned/failed trials excluded
    base = next(r for r in retry["rows"] if r["arm"] == "baseline" and r["train_noise"] == 0.0)
    expected = t_interval([cell_peak(0.0, 0.0, s) for s in GRID["seed"]])
    assert (base["ci low"], base["ci high"]) == pytest.approx(expected)
    assert base["mean peak step"] == 100 and base["collapsed"] == "2/3"
    pair = next(p for p in retry["paired_by_seed"] if p["where"] == "train_noise 0")
    assert (pair["A"], pair["B"], pair["shared seeds"]) == ("baseline", "retry", 3)
    diffs = [cell_peak(0.0, 0.0, s) - cell_peak(1.0, 0.0, s) for s in GRID["seed"]]
    assert float(pair["A − B (mean of per-seed differences)"]) == pytest.approx(sum(diffs) / 3, abs=1e-3)
    assert pair["verdict"] == "significant"


def test_summary_counts_best_failed_and_importances(summary: dict):
    assert summary["study"] == "retry_vs_baseline"
    assert summary["states"] == {"COMPLETE": 12, "PRUNED": 1, "FAIL": 1}
    assert summary["best_kind"] == "top_10" and len(summary["best"]) == 10
    assert summary["best"][0]["value"] == max(cell_peak(1.0, 0.0, seed) for seed in GRID["seed"])
    assert summary["failed"][0]["fail_reason"] == EVIL
    assert importance_floor(3) == 12 and set(summary["importances"]["value"]) == set(GRID)
    assert summary["warnings"] == []
    assert summary["categorical_params"] == ["reward.retry", "seed", "train_noise"]


def test_page_is_escaped_self_contained_svg(page: str):
    assert "&lt;script&gt;alert(1)&lt;/script&gt; OOM &amp; died" in page
    assert "\\u202e" in page and "\\u0000" in page and "\u202e" not in page and "\x00" not in page
    assert "<script" not in page.lower() and "<img" not in page
    assert not re.search(r"(src|href)=\"(?!data:|#)", page)
    assert not re.search(r"https?://", page)
    assert page.count('<svg class="chart"') == 6  # curves, 2 comparisons, parallel coordinates, scatters, importances
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # the inline figures' ids are prefixed per figure
    assert "Content-Security-Policy" in page


def test_header_sections_and_hover_text(page: str):
    assert "Study report: retry_vs_baseline" in page and "value (maximize)" in page
    assert "COMPLETE: 12" in page and "FAIL: 1" in page and "PRUNED: 1" in page
    for section in ("Best trials (top 10)", "Accuracy curves", "Comparison: reward.retry", "Comparison: train_noise",
                    "Paired by seed", "Parallel coordinates", "Parameter importances", "Parameters vs objective",
                    "Failed trials"):
        assert section in page, section
    assert "<title>trial 0: reward.retry 0, seed 0, train_noise 0: peak at step" in page


def micro_retry_study(root: Path, seeds=(0, 1, 2)) -> Path:
    """The shape of ablations/micro_retry.yaml: preset in {rezero, baseline} x seed, objective peak."""
    dists = {"preset": optuna.distributions.CategoricalDistribution(["rezero", "baseline"]),
             "seed": optuna.distributions.CategoricalDistribution(list(seeds))}
    study = optuna.create_study(study_name="micro_retry", storage=f"sqlite:///{root / 'study.db'}",
                                direction="maximize")
    for i, (preset, seed) in enumerate((p, s) for p in ("rezero", "baseline") for s in seeds):
        peak = (0.9 if preset == "rezero" else 0.8) + 0.01 * seed
        attrs = write_run(root / "trials" / f"trial_{i:04d}", synthetic_curve(peak, 150, collapse=False))
        study.add_trial(optuna.trial.create_trial(params={"preset": preset, "seed": seed}, distributions=dists,
                                                  value=attrs["peak"], user_attrs=attrs))
    return root


def test_categorical_arm_comparison_and_too_few_trials_for_importances(tmp_path: Path):
    root = micro_retry_study(tmp_path)
    s = study_summary(f"sqlite:///{root / 'study.db'}")
    (comp,) = s["comparisons"]
    assert comp["param"] == "preset" and comp["context"] == []
    assert [(r["arm"], round(r["mean peak"], 4)) for r in comp["rows"]] == [("rezero", 0.91), ("baseline", 0.81)]
    (pair,) = comp["paired_by_seed"]  # arms in the ablation's order: rezero − baseline
    assert (pair["A"], pair["B"], pair["shared seeds"]) == ("rezero", "baseline", 3)
    assert pair["A − B (mean of per-seed differences)"] == "+0.100"
    assert s["importances"] == {} and "6 completed trial(s) for 2 parameter(s)" in s["warnings"][0]
    page = write_study_report(root).read_text()
    assert "Comparison: preset" in page and 'class="warn"' in page and "importance for value" not in page
    scatter = page[page.index('id="params"'):page.index('id="importance"')]
    assert ">value vs seed</text>" in scatter and len(re.findall(r"<title>trial \d+: ", scatter)) == 2 * 6
    seed_panel = next(ax for ax in scatter_figure(collect(f"sqlite:///{root / 'study.db'}")).axes
                      if ax.get_title() == "value vs seed")
    assert [t.get_text() for t in seed_panel.get_xticklabels()] == ["0", "1", "2"]  # categorical: no 0.5 between
    parallel = page[page.index('id="parallel"'):page.index('id="params"')]
    assert len(re.findall(r"<title>trial \d+: preset \w+, seed \d, value ", parallel)) == 6  # one line per trial
    assert ">baseline</text>" in parallel and ">rezero</text>" in parallel


def test_multi_objective_study_renders_pareto_front(tmp_path: Path):
    dist = {"train_noise": optuna.distributions.FloatDistribution(0.0, 0.8)}
    study = optuna.create_study(study_name="noise_levels", storage=f"sqlite:///{tmp_path / 'study.db'}",
                                directions=["maximize", "maximize"])
    points = {0.0: (0.40, 150.0), 0.2: (0.35, 250.0), 0.4: (0.30, 200.0), 0.6: (0.45, 100.0)}
    for noise, values in points.items():
        study.add_trial(optuna.trial.create_trial(params={"train_noise": noise}, distributions=dist,
                                                  values=list(values), user_attrs={"peak": values[0]}))
    page = write_study_report(tmp_path, output=tmp_path / "out" / "r.html", figures_dir=tmp_path / "figs",
                              fmt="pdf").read_text()
    assert "Pareto front" in page and "value_0 (maximize), value_1 (maximize)" in page
    files = {p.name: p.read_bytes() for p in (tmp_path / "figs").iterdir()}
    assert {"pareto.pdf", "parallel.pdf", "params.pdf"} <= set(files)
    assert all(b.startswith(b"%PDF") for b in files.values())
    front = study_summary(f"sqlite:///{tmp_path / 'study.db'}")["best"]
    assert sorted(r["train_noise"] for r in front) == [0.0, 0.2, 0.6]  # 0.4 is dominated by 0.2
    assert page.count("(Pareto-optimal)</title>") == 3
    assert "Comparison:" not in page  # a float parameter is not an arm


def test_storage_errors_name_the_studies(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    for name in ("a", "b"):
        optuna.create_study(study_name=name, storage=url)
    with pytest.raises(ConfigError, match="a, b"):      # one line at the command line, not a traceback
        study_summary(url)
    with pytest.raises(ConfigError, match="no study database at"):
        write_study_report(tmp_path / "nowhere")
    assert study_summary(url, "a")["states"] == {}
    page = write_study_report(tmp_path, study_name="a").read_text()  # an empty study still renders
    assert "No completed trials." in page and "No trial has a curve.csv yet." in page
    assert "0 completed trial(s)" in study_summary(url, "b")["warnings"][0]


@pytest.mark.unit
def test_password_is_masked():
    assert mask_url("postgresql://u:hunter2@host/db") == "postgresql://u:***@host/db"


@pytest.mark.browser
def test_study_report_renders_in_headless_chromium(study_dir: Path, tmp_path: Path):
    dom = check_page_in_chromium(study_dir / "report.html", tmp_path, height=3000)
    assert "Comparison: reward.retry" in dom and "&lt;script&gt;alert(1)" in dom
