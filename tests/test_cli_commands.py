"""Success paths of `harness data prepare`, `harness data stats`, `harness search` and `harness analyze`:
the real command line in a subprocess, on the shared data, its printed figures checked against known values
(../shared/apollo3/SOURCE.md) and against the library it fronts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tier("integration")

REPO = Path(__file__).resolve().parent.parent
#: SOURCE.md: recall@1/3/5 of the gold chunk, question text as query, all 318 questions.
BM25_RECALL = {"@1": 0.758, "@3": 0.903, "@5": 0.937}
DENSE_RECALL = {"@1": 0.497, "@3": 0.717, "@5": 0.789}


def harness(*args: str, timeout: int = 900) -> str:
    """Run `python -m harness ARGS` like a user would (same environment: data and cache folders); its stdout."""
    p = subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=REPO, env=os.environ.copy(),
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"harness {' '.join(map(str, args))}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p.stdout


# ----------------------------------------------------------------------------- data prepare / stats


@pytest.fixture(scope="module")
def prepared(data) -> str:
    return harness("data", "prepare")


def test_data_prepare_verifies_and_builds_the_indexes(prepared, data):
    import faiss

    lines = prepared.splitlines()
    assert lines[0] == f"data verified in {data.root}: 341 chunks, 318 questions"
    assert lines[1] == "bm25 index built"
    m = re.fullmatch(r"dense index (built and cached in|loaded from) (.+)", lines[2])
    assert m, prepared
    folder = Path(m.group(2))
    meta = json.loads((folder / "meta.json").read_text())
    assert meta == {"corpus_checksum": data.corpus.checksum, "model": "all-MiniLM-L6-v2", "n": 341}
    index = faiss.read_index(str(folder / "index.faiss"))
    assert (index.ntotal, index.d) == (341, 384)  # one MiniLM vector per chunk (reuse: test_retrieval.py)


def test_data_stats_prints_the_known_sizes_and_recalls(prepared, data):
    out = harness("data", "stats")
    assert out.startswith(f"task apollo3 v{data.task.version}: 341 chunks, 318 questions "
                          "(train 254, dev 32, test 32); ")
    assert f"; {len(data.corpus.paraphrases)} chunks have paraphrases" in out
    assert "recall of the gold chunk, all 318 questions, question text as query:" in out
    recall = {name: dict(re.findall(r"(@\d)=(\d\.\d{3})", line))
              for name, line in re.findall(r"^  (bm25|dense)\s+(.*)$", out, re.M)}
    assert {k: float(v) for k, v in recall["bm25"].items()} == BM25_RECALL
    for k, v in DENSE_RECALL.items():  # the embedding model's numerics may move in the last digit
        assert float(recall["dense"][k]) == pytest.approx(v, abs=0.02)
    as_json = json.loads(harness("data", "stats", "--json", "--retrievers", "bm25"))
    assert as_json["splits"] == {"train": 254, "dev": 32, "test": 32, "all": 318}
    assert as_json["recall"] == {"bm25": BM25_RECALL}
    assert sum(as_json["gold_chunks_per_question"].values()) == 318


# ----------------------------------------------------------------------------- search

HIT = re.compile(r"^#(\d+) chunk (\S+) score (\d+\.\d{3})( \[.*\])?$", re.M)


def test_search_prints_the_retrievers_ranking(data, bm25):
    query = "oxygen tank 2 pressure"
    out = harness("search", query, "-k", "3")
    hits = HIT.findall(out)
    expected = bm25.search([query], 3)[0]
    assert [h[1] for h in hits] == [h.chunk_id for h in expected] and [int(h[0]) for h in hits] == [1, 2, 3]
    assert [float(h[2]) for h in hits] == [round(h.score, 3) for h in expected]
    assert all(h.text in out for h in expected)
    assert "No results found." in harness("search", "the of and")  # stopwords only: nothing to match


def test_search_drop_gold_with_a_question_id(data, bm25):
    q = next(q for q in data.questions if bm25.search([q.question], 1)[0][0].chunk_id in q.gold_chunk_ids)
    clean = HIT.findall(harness("search", q.question, "--question-id", q.qid))
    assert clean[0][1] in q.gold_chunk_ids
    out = harness("search", q.question, "--question-id", q.qid, "--noise", "1", "--noise-mode", "drop_gold")
    dropped = [h[1] for h in HIT.findall(out)]
    assert len(dropped) == 3 and not set(dropped) & set(q.gold_chunk_ids)  # lower-ranked results fill in
    assert "noise events: " in out


# ----------------------------------------------------------------------------- analyze


def test_analyze_finds_peak_collapse_and_indicators(tmp_path):
    from harness.core.rundir import read_curve
    from harness.stats.curves import analyze
    from harness.train.curve import CurveWriter

    curve = CurveWriter(tmp_path / "curve.csv")  # the writer `harness train` uses
    for i, acc in enumerate([0.1, 0.3, 0.6, 0.5, 0.1, 0.05, 0.0, 0.0]):
        curve.upsert(10 * i, {"accuracy": acc, "entropy": 1.0 - 0.1 * i, "wall_time": float(i)})
    text = harness("analyze", tmp_path)
    lines = text.splitlines()
    assert lines[0].startswith("peak accuracy 0.6000 at step 20 [95% CI ") and "n per eval 20 (inferred)" in lines[0]
    # online, 2/20 at step 40 alone is not significantly below half the level (p = 0.16 > 0.05) and
    # neither is the recent accuracy with 10/20 before it; 1/20 at step 50 is
    assert lines[1:3] == ["collapse onset (offline): 40; an online run would have stopped at: 50",
                          "persistent zero from: 60"]
    assert re.search(r"^  entropy\s+onset 60  lead -20  \(demoted: not shown to beat chance\)$", text, re.M)
    as_json = json.loads(harness("analyze", tmp_path / "curve.csv", "--json"))
    assert (as_json["peak_step"], as_json["peak"], as_json["collapse_step"]) == (20, 0.6, 40)
    assert as_json == json.loads(json.dumps(analyze(read_curve(tmp_path)), default=str))
    # a stricter collapse rule moves the onset: below (1 - 0.9) x the pooled peak level, confirmed on the
    # binomial evals (n = 20 inferred), the fall is only certain from the zeros at 60
    assert json.loads(harness("analyze", tmp_path, "--json", "--delta", "0.9"))["collapse_step"] == 60
