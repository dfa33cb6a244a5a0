"""harness cells: a factorial study cell by cell, on hand-made trial folders (no training)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from harness.core.errors import DataError
from harness.core.record import RunRecord, TaskRef, write_record
from harness.report.cells import markdown, write_cells
from harness.stats.cells import cell_rows, compare_within, load_study_runs

pytestmark = pytest.mark.tier("unit")

N = 40  # questions per eval


def _trial(root, name, params, accs, correct_at_peak, status="complete"):
    """A trial folder: config, results, a curve evaluated every 10 steps, the eval samples of every eval."""
    d = root / "trials" / name
    (d / "eval_samples").mkdir(parents=True)
    (d / "trial_config.yaml").write_text(yaml.safe_dump(params))
    write_record(d, RunRecord(kind="train", task=TaskRef(name="apollo3_micro"), status=status))
    lines = ["step,accuracy,n,persistence,recovery,wasted_retries,searches_per_episode"]
    peak = max(range(len(accs)), key=lambda i: accs[i])
    for i, a in enumerate(accs):
        lines.append(f"{10 * i},{a},{N},{0.5 + 0.01 * i},{0.3},{0.1},{1.5}")
        k = correct_at_peak if i == peak else round(a * N)
        rows = [{"qid": f"q{j}", "correct": j < k} for j in range(N)]
        (d / "eval_samples" / f"step_{10 * i:05d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "curve.csv").write_text("\n".join(lines) + "\n")
    return d


@pytest.fixture
def study(tmp_path):
    # regime "common": arm a beats arm b on every seed by 10 of 40 questions; regime "rare": a tie
    for seed in range(3):
        _trial(tmp_path, f"c_a_{seed}", {"model": "common", "preset": "a", "seed": seed}, [0.2, 0.8, 0.75, 0.8], 32)
        _trial(tmp_path, f"c_b_{seed}", {"model": "common", "preset": "b", "seed": seed}, [0.2, 0.55, 0.5, 0.05], 22)
        _trial(tmp_path, f"r_a_{seed}", {"model": "rare", "preset": "a", "seed": seed}, [0.2, 0.5, 0.5, 0.5], 20)
        _trial(tmp_path, f"r_b_{seed}", {"model": "rare", "preset": "b", "seed": seed}, [0.2, 0.5, 0.5, 0.5], 20)
    _trial(tmp_path, "running", {"model": "rare", "preset": "b", "seed": 9}, [0.2, 0.9], 36, status="partial")
    return tmp_path


def test_cells_average_over_seeds_and_count_collapses(study):
    runs = load_study_runs(study)
    assert len(runs) == 12  # the partial trial is left out
    rows = {tuple(r["cell"].values()): r for r in cell_rows(runs, ["model", "preset"])}
    common_b = rows[("common", "b")]
    assert common_b["seeds"] == [0, 1, 2] and common_b["collapsed"] == 3 and common_b["collapse_steps"] == [30] * 3
    assert common_b["accuracy"]["mean"] == pytest.approx(0.55)
    assert rows[("common", "a")]["collapsed"] == 0 and rows[("common", "a")]["peak_steps"] == [10, 10, 10]
    lo, hi = rows[("common", "a")]["persistence"]["ci"]
    assert lo == pytest.approx(0.51) and hi == pytest.approx(0.51)  # identical seeds: a zero-width interval


def test_arms_are_compared_paired_within_each_regime(study):
    comps = {c["within"]["model"]: c for c in compare_within(load_study_runs(study), "preset", ["model"])}
    common, rare = comps["common"], comps["rare"]
    assert common["seed_values"] == [0, 1, 2] and common["seeds"] == 3 and common["questions"] == N
    assert common["difference"] == pytest.approx(10 / N) and common["significant"]
    assert rare["difference"] == 0 and not rare["significant"]
    assert "(paired, 3 seeds x 40 questions)" in common["sentence"]


def test_write_cells_writes_json_markdown_and_html(study, tmp_path):
    res = write_cells(study, ["model"], "preset", tmp_path / "out")
    text = (tmp_path / "out" / "cells.md").read_text()
    assert "| `common` | `b` | 3 | 0.55" in text and "3/3 (30, 30, 30)" in text
    assert text == markdown(res["cells"], res["comparisons"])
    page = (tmp_path / "out" / "cells.html").read_text()
    assert page.count("<figure") == 2 and "model common" in page and "not significant" in page
    saved = json.loads((tmp_path / "out" / "cells.json").read_text())
    assert saved["arm"] == "preset"
    assert [f["level"] for f in saved["figures"]] == [{"model": "common"}, {"model": "rare"}]
    for f in saved["figures"]:
        svg = (tmp_path / "out" / f["file"]).read_text()
        assert svg.count("<svg") == 1 and 'xmlns="http://www.w3.org/2000/svg"' in svg and set(f["legend"]) == {"a", "b"}
        assert len(re.findall(r"<title>preset \w, step \d+: mean ", svg)) == 2 * 4  # both arms' means, hover text
    res = write_cells(study, ["model"], "preset", tmp_path / "pdf", fmt="pdf")
    assert [f["file"] for f in res["figures"]] == ["accuracy_common.pdf", "accuracy_rare.pdf"]
    assert all((tmp_path / "pdf" / f["file"]).read_bytes().startswith(b"%PDF") for f in res["figures"])


def test_clear_errors(tmp_path, study):
    with pytest.raises(DataError, match="no trials/ folder"):
        write_cells(tmp_path / "nothing", ["model"], "preset")
    with pytest.raises(DataError, match="no trial sets regime"):
        write_cells(study, ["regime"], "preset")
    with pytest.raises(DataError,
                       match=r"has two runs of seed 0 .*add the options that tell them apart to --by: model"):
        write_cells(study, [], "preset")  # without --by model, each cell would pool both regimes


def test_seed_level_interval_and_a_trial_without_samples(study):
    comps = {c["within"]["model"]: c for c in compare_within(load_study_runs(study), "preset", ["model"])}
    lo, hi = comps["common"]["seed_interval"]
    assert lo == pytest.approx(0.25) and hi == pytest.approx(0.25)  # three identical per-seed differences
    sentence = comps["common"]["seed_sentence"]
    assert "(excludes 0)" in sentence and "+0.25, +0.25, +0.25" in sentence
    (study / "trials" / "r_a_1" / "eval_samples" / "step_00010.jsonl").unlink()
    comps = {c["within"]["model"]: c for c in compare_within(load_study_runs(study), "preset", ["model"])}
    assert "no eval samples for step 10" in comps["rare"]["skipped"] and "significant" in comps["common"]["sentence"]


def test_one_training_run_is_one_trial(tmp_path):
    """Two trials that trained the same run (evaluated differently) count once when the study is assembled."""
    from harness.train.config import TrainConfig, resolve
    from harness.train.fingerprint import run_fingerprint

    for name, limit, seed in (("t0", 50, 0), ("t1", 100, 0), ("t2", 50, 1)):
        d = _trial(tmp_path, name, {"model": "micro", "preset": "rezero", "seed": seed}, [0.2, 0.8, 0.8], 32)
        cfg = TrainConfig(task="apollo3_micro", model="micro", seed=seed, eval_limit=limit)
        (d / "config.json").write_text(json.dumps(resolve(cfg).to_dict(cfg), default=str))
    assert [r.path.name for r in load_study_runs(tmp_path, fingerprint=run_fingerprint)] == ["t0", "t2"]
    assert len(load_study_runs(tmp_path)) == 3  # without a fingerprint nothing is merged
