"""The sweep's study report (harness.analysis.study_report) on real SQLite Optuna studies built in tmp_path."""

from __future__ import annotations

import doctest
import json
import re
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

import harness.analysis.study_report
from harness.analysis.curves import analyze
from harness.analysis.study_report import study_summary, t_interval, write_study_report

# Whole reports rendered with their figures (matplotlib) from run folders on disk, and in chromium.
pytestmark = pytest.mark.integration

STEPS = list(range(0, 301, 25))
EVIL = "<script>alert(1)</script> OOM & died"


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


def expected_means() -> dict[tuple[float, str], float]:
    out = {}
    for noise in GRID["train_noise"]:
        for retry, arm in ((0.0, "baseline"), (1.0, "retry")):
            peaks = [cell_peak(retry, noise, s) for s in GRID["seed"]]
            out[(noise, arm)] = sum(peaks) / len(peaks)
    return out


def test_comparison_table_has_correct_means(page: str):
    assert "Retry reward vs baseline" in page and "Student-t" in page
    table = page[page.index('id="comparison"'):page.index('id="importance"')]
    rows = re.findall(r"<tr>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>", table)
    got = {(float(noise), arm): float(mean) for noise, arm, n, mean in rows}
    assert {k: round(v, 4) for k, v in got.items()} == pytest.approx(
        {k: float(f"{v:.4g}") for k, v in expected_means().items()})
    assert all(n == "3" for _, _, n, _ in rows)  # three seeds per cell; pruned/failed trials excluded
    for noise in GRID["train_noise"]:
        assert got[(noise, "retry")] > got[(noise, "baseline")]


def test_summary_records_match_and_are_json(study_dir: Path):
    s = study_summary(f"sqlite:///{study_dir / 'study.db'}")
    json.dumps(s, allow_nan=False)
    assert s["study"] == "retry_vs_baseline" and s["states"] == {"COMPLETE": 12, "PRUNED": 1, "FAIL": 1}
    assert s["best_kind"] == "top_10" and len(s["best"]) == 10
    assert s["best"][0]["value"] == max(cell_peak(1.0, 0.0, seed) for seed in GRID["seed"])
    means = {(r["train_noise"], r["arm"]): r["mean peak"] for r in s["comparison"]}
    assert means == pytest.approx(expected_means())
    base = next(r for r in s["comparison"] if r["arm"] == "baseline" and r["train_noise"] == 0.0)
    peaks = [cell_peak(0.0, 0.0, seed) for seed in GRID["seed"]]
    assert (base["ci low"], base["ci high"]) == pytest.approx(t_interval(peaks))
    assert base["mean peak step"] == 100 and base["collapsed"] == "2/3"
    assert s["failed"][0]["fail_reason"] == EVIL
    assert set(s["importances"]["value"]) == set(GRID)


def test_failed_reason_is_escaped_and_page_is_self_contained(page: str):
    assert "&lt;script&gt;alert(1)&lt;/script&gt; OOM &amp; died" in page
    assert "<script" not in page.lower()
    assert not re.search(r"(src|href)=\"(?!data:|#)", page)
    assert not re.search(r"https?://", page)
    images = re.findall(r'<img[^>]+src="([^"]+)"', page)
    assert len(images) >= 4 and all(src.startswith("data:image/png;base64,") for src in images)
    assert "Content-Security-Policy" in page


def test_header_and_sections(page: str):
    assert "Study report: retry_vs_baseline" in page and "value (maximize)" in page
    assert "COMPLETE: 12" in page and "FAIL: 1" in page and "PRUNED: 1" in page
    for section in ("Best trials (top 10)", "Accuracy curves", "Parameter importances",
                    "Parameters vs objective", "Failed trials"):
        assert section in page


def test_multi_objective_study_renders_pareto_front(tmp_path: Path):
    dist = {"train_noise": optuna.distributions.FloatDistribution(0.0, 0.8)}
    study = optuna.create_study(study_name="noise_levels", storage=f"sqlite:///{tmp_path / 'study.db'}",
                                directions=["maximize", "maximize"])
    points = {0.0: (0.40, 150.0), 0.2: (0.35, 250.0), 0.4: (0.30, 200.0), 0.6: (0.45, 100.0)}
    for noise, values in points.items():
        study.add_trial(optuna.trial.create_trial(params={"train_noise": noise}, distributions=dist,
                                                  values=list(values), user_attrs={"peak": values[0]}))
    page = write_study_report(tmp_path, output=tmp_path / "out" / "r.html").read_text()
    assert "Pareto front" in page and "value_0 (maximize), value_1 (maximize)" in page
    front = study_summary(f"sqlite:///{tmp_path / 'study.db'}")["best"]
    assert sorted(r["train_noise"] for r in front) == [0.0, 0.2, 0.6]  # 0.4 is dominated by 0.2
    assert "Retry reward vs baseline" not in page


def test_storage_errors_name_the_studies(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    for name in ("a", "b"):
        optuna.create_study(study_name=name, storage=url)
    with pytest.raises(ValueError, match="a, b"):
        study_summary(url)
    with pytest.raises(FileNotFoundError):
        write_study_report(tmp_path / "nowhere")
    assert study_summary(url, "a")["states"] == {}
    page = write_study_report(tmp_path, study_name="a").read_text()  # an empty study still renders
    assert "No completed trials." in page and "No trial has a curve.csv yet." in page
    assert "Importances need" in study_summary(url, "b")["notes"][0]


def test_password_is_masked():
    assert harness.analysis.study_report.mask_url("postgresql://u:hunter2@host/db") == "postgresql://u:***@host/db"


def test_docstring_examples_run():
    result = doctest.testmod(harness.analysis.study_report, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 2 and result.failed == 0


@pytest.mark.browser
def test_study_report_renders_in_headless_chromium(study_dir: Path, tmp_path: Path):
    from tests.test_report import chromium, find_chromium

    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH; install with: apt-get install -y chromium")
    url = (study_dir / "report.html").resolve().as_uri()
    screenshot = study_dir / "report.png"
    shot = chromium(binary, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1280,3000", url)
    errors = [line for line in shot.stderr.splitlines()
              if re.search(r":CONSOLE[:(]|Uncaught|Refused to|net::ERR_|Failed to load", line)]
    assert not errors, "\n".join(errors)
    assert screenshot.is_file() and screenshot.stat().st_size > 50_000, shot.stderr[-2000:]
    dom = chromium(binary, tmp_path / "profile", "--dump-dom", url).stdout
    assert "Retry reward vs baseline" in dom and "&lt;script&gt;alert(1)" in dom
    print(f"screenshot: {screenshot}")
