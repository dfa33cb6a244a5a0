"""Screenshots, in headless chromium, of the reports a researcher reads, made from real runs: the main job
(``harness run --task apollo3``), a two-run training comparison with a fault, a three-seed aggregation and
the ``micro_retry`` study report (micro-scale trainings of a few steps on CPU, ``--threads 1``).

Set ``HARNESS_SCREENSHOT_DIR`` to keep the PNGs; otherwise they are written to pytest's tmp_path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import check_page_in_chromium, find_chromium, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.tier("integration"), pytest.mark.browser]

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--task", "apollo3_micro", "--model", "micro", "--max-steps", "3", "--eval-every", "1",
         "--eval-limit", "16", "--num-generations", "4", "--lr", "5e-4", "--threads", "1"]


def harness(*args: str, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=1800, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    if find_chromium() is None:
        pytest.skip("no chromium binary on PATH; install with: apt-get install -y chromium")
    folder = Path(os.environ.get("HARNESS_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screens"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def root(tmp_path_factory, data) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def trainings(root: Path) -> dict[str, Path]:
    runs = {}
    for name, extra in (("rezero-s0", ["--preset", "rezero", "--seed", "0"]),
                        ("rezero-s1", ["--preset", "rezero", "--seed", "1"]),
                        ("rezero-s2", ["--preset", "rezero", "--seed", "2"]),
                        ("baseline-s0", ["--preset", "baseline", "--seed", "0", "--kl-alarm", "1e-6",
                                         "--zero-std-patience", "1"])):
        out = harness(*TRAIN, *extra, "-o", str(root / name), cwd=root)
        assert out.strip().splitlines()[-1] == f"report: {root / name / 'report.html'}"
        runs[name] = root / name
    return runs


def test_main_job_report(root: Path, shots: Path, tmp_path: Path):
    out = harness("run", "--task", "apollo3", "-o", str(root / "main"), cwd=root)
    assert out.strip().splitlines()[-1] == f"report: {root / 'main' / 'report.html'}"
    report = root / "main" / "report.html"
    dom = check_page_in_chromium(report, tmp_path, height=4200)
    assert "closed-book, one-search, oracle-retry (scripted)" in dom and "micro (hf)" not in dom
    screenshot(report, shots / "main_job.png", tmp_path / "profile", height=4200)


def test_two_run_training_comparison_with_a_fault(trainings: dict[str, Path], root: Path, shots: Path,
                                                  tmp_path: Path):
    report = root / "comparison.html"
    harness("report", str(trainings["rezero-s0"]), str(trainings["baseline-s0"]), "-o", str(report), cwd=root)
    dom = check_page_in_chromium(report, tmp_path, height=3600)
    assert "preset rezero" in dom and "preset baseline" in dom and "<h3>Faults</h3>" in dom
    assert "kl_explosion at step" in dom or "zero_reward_variance at step" in dom  # marked on the curve
    screenshot(report, shots / "training_comparison_fault.png", tmp_path / "profile", height=3600)


def test_three_seed_aggregation(trainings: dict[str, Path], root: Path, shots: Path, tmp_path: Path):
    report = root / "seeds.html"
    harness("report", *(str(trainings[f"rezero-s{s}"]) for s in range(3)), "-o", str(report), cwd=root)
    dom = check_page_in_chromium(report, tmp_path, height=3000)
    assert "seed 0" in dom and "seed 2" in dom and "mean of 3 seeds" in dom
    screenshot(report, shots / "three_seeds.png", tmp_path / "profile", height=3000)


def test_micro_retry_study_report(root: Path, shots: Path, tmp_path: Path):
    study = root / "micro_retry"
    harness("sweep", str(REPO / "ablations" / "micro_retry.yaml"), "--max-steps", "2", "--eval-every", "1",
            "--eval-limit", "16", "--set", "num_generations=4", "--set", "threads=1", "--workers", "2", "-o",
            str(study), cwd=root)
    report = study / "report.html"
    dom = check_page_in_chromium(report, tmp_path, height=3400)
    for section in ("Comparison: preset", "Paired by seed", "Parallel coordinates", "Parameters vs objective"):
        assert section in dom, section
    assert "Parameter importances are left out" in dom  # 6 trials are too few for fANOVA
    screenshot(report, shots / "micro_retry_study.png", tmp_path / "profile", height=3400)
