"""ablations/micro_exploration.yaml from a clean checkout, at reduced size: two regimes of the micro policy
(the shipped build and a p_retry build made on first use), a two-trial sweep of a few steps, then
``harness cells`` on the result. The rare regime's build is reduced too (8 warm-start steps instead of
300): the path is the same, the minutes are not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.tier("integration")

REPO = Path(__file__).resolve().parents[1]
RARE = "micro:p_retry=0.03"


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_the_exploration_ablation_names_two_regimes_and_three_arms():
    ab = yaml.safe_load((REPO / "ablations" / "micro_exploration.yaml").read_text())
    space = ab["search_space"]
    assert space["model"]["choices"] == ["micro", RARE]
    assert space["preset"]["choices"] == ["rezero", "baseline", "retry_after_miss"]
    assert len(space["seed"]["choices"]) >= 4 and ab["sampler"]["name"] == "grid"


def test_exploration_sweep_smoke(tmp_path: Path, data):
    ab = yaml.safe_load((REPO / "ablations" / "micro_exploration.yaml").read_text())
    # both regimes (the rare one with a reduced build), two of the arms, one seed: 4 trials of 2 steps
    ab["search_space"]["model"]["choices"] = ["micro", f"{RARE},steps=8"]
    ab["search_space"]["preset"]["choices"] = ["baseline", "retry_after_miss"]
    ab["search_space"]["seed"]["choices"] = [0]
    reduced = tmp_path / "micro_exploration.yaml"
    reduced.write_text(yaml.safe_dump(ab))
    study = tmp_path / "study"
    harness("sweep", str(reduced), "--max-steps", "2", "--eval-every", "2", "--eval-limit", "8",
            "--set", "num_generations=2", "-o", str(study), "--no-report", cwd=tmp_path)
    trials = sorted((study / "trials").iterdir())
    assert len(trials) == 4
    for t in trials:
        assert json.loads((t / "results.json").read_text())["status"] == "complete"
    out = harness("cells", str(study), "--by", "model", "--arm", "preset", cwd=tmp_path).stdout
    assert "| model | preset | seeds | test at selected step | peak accuracy" in out  # runs select on dev
    cells = json.loads((study / "cells" / "cells.json").read_text())
    assert {c["cell"]["model"] for c in cells["cells"]} == {"micro", f"{RARE},steps=8"}
    assert [(c["within"]["model"], c["a"], c["b"]) for c in cells["comparisons"]] == [
        ("micro", "baseline", "retry_after_miss"), (f"{RARE},steps=8", "baseline", "retry_after_miss")]
    assert all(c["questions"] == 8 and "(paired, 8 questions)" in c["sentence"] for c in cells["comparisons"])
    # the regime's build is found again by its name, built with the demonstrations' retry probability asked for
    path = harness("micro", "path", f"{RARE},steps=8", cwd=tmp_path).stdout.strip().splitlines()[-1]
    spec = json.loads((Path(path) / "harness_build.json").read_text())["spec"]
    assert spec["p_retry"] == 0.03 and spec["steps"] == 8
