"""The first run a newcomer sees: `harness run --task apollo3` with no model, in an 80-column terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tier("integration")


def test_first_run_reference_policies_pointer_table_and_report(data, tmp_path: Path):
    out = tmp_path / "first"
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--task", "apollo3", "--limit", "8", "-o", str(out)],
                          capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "COLUMNS": "80", "TERM": "dumb"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert ("No --model given: evaluating the scripted reference policies (closed-book, one-search, oracle-retry) "
            "at drop_gold noise 0 and 0.5.") in proc.stderr
    assert ("The micro policy is trained for apollo3_micro: harness run --task apollo3_micro --model micro"
            in proc.stderr)
    lines = proc.stdout.rstrip("\n").splitlines()
    assert lines[-1] == f"report: {out / 'report.html'}" and lines[-2] == f"run directory: {out}"
    assert max(len(line) for line in lines[:-2]) <= 80
    assert any(line.split()[:1] == ["searches_per_episode"] for line in lines)
    res = json.loads((out / "results.json").read_text())
    assert sorted(res["results"]) == ["closed-book", "one-search", "oracle-retry"]
    assert all(sorted(v) == ["noise=0", "noise=0.5"] for v in res["results"].values())
    page = (out / "report.html").read_text()
    assert "closed-book, one-search, oracle-retry (scripted)" in page and "micro" not in page.split('id="details"')[0]
