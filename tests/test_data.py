import json
import shutil

import pytest
from conftest import NO_DATA, data_dir

from harness.core.errors import DataError
from harness.data.loading import load_task_data, paper_test_lines, resolve_data_dir, sha256_file

pytestmark = pytest.mark.tier("integration")

#: The paper's 32 held-out questions as 0-based lines of questions.jsonl (../shared/apollo3/SOURCE.md).
PAPER_TEST_LINES = [0, 19, 24, 26, 33, 38, 50, 51, 64, 68, 89, 98, 101, 107, 115, 161, 166, 174, 204, 209, 218,
                    250, 251, 253, 254, 264, 278, 291, 314, 315, 316, 317]


def test_paper_split_matches_datasets(data):
    datasets = pytest.importorskip("datasets")
    rows = [json.loads(l) for l in open(data.root / "questions.jsonl")]
    for i, r in enumerate(rows):
        r["_line"] = i
    split = datasets.Dataset.from_list(rows).train_test_split(test_size=0.1, seed=42)
    assert split["test"]["_line"] == data.test_lines
    assert sorted(data.test_lines) == data.task.splits.paper.expected_test_lines
    assert len(data.split("train")) == 286 and len(data.split("test")) == 32 and len(data.split("all")) == 318


def test_every_question_maps_to_gold(data):
    assert len(data.corpus) == 341 and len(data.questions) == 318
    for q in data.questions:
        assert q.gold_chunk_ids
        assert all(q.gold_paragraph in data.corpus.text(c) for c in q.gold_chunk_ids)
    assert len({q.qid for q in data.questions}) == 318


@pytest.mark.unit
def test_paper_test_lines_are_the_papers_split(task):
    """The split is recomputed without `datasets` (test_paper_split_matches_datasets checks it against it)."""
    lines = paper_test_lines(318)
    assert sorted(lines) == PAPER_TEST_LINES == task.splits.paper.expected_test_lines
    assert lines[:5] == [50, 204, 314, 291, 161]  # the permutation's order, not only its set
    assert paper_test_lines(318, seed=43) != lines and len(paper_test_lines(318, seed=43)) == 32
    assert [len(paper_test_lines(n)) for n in (1, 10, 11, 100)] == [1, 1, 2, 10]  # ceil(0.1 n)
    assert sorted(paper_test_lines(10, test_size=1.0)) == list(range(10))


@pytest.fixture
def data_copy(tmp_path):
    src = data_dir()
    if src is None:
        pytest.skip(NO_DATA)
    dst = tmp_path / "apollo3"
    dst.mkdir()
    for f in ("chunks.csv", "questions.jsonl", "paragraphs_noise.csv", "mission_report.md"):
        shutil.copy(src / f, dst / f)
    return dst


def test_checksum_mismatch_names_file_checksum_and_variable(task, data_copy, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(data_copy))
    with open(data_copy / "chunks.csv", "a") as f:
        f.write("999,tampered,{}\n")
    with pytest.raises(DataError) as e:
        load_task_data(task)
    msg = str(e.value)
    assert "chunks.csv" in msg and task.data.files.chunks.sha256 in msg and "HARNESS_DATA_DIR" in msg


def test_missing_file_is_named(task, data_copy, monkeypatch):
    (data_copy / "questions.jsonl").unlink()
    with pytest.raises(DataError, match="questions.jsonl not found"):
        resolve_data_dir(task, data_copy)


def test_download_verifies_and_is_atomic(task, data_copy, tmp_path, monkeypatch):
    """Downloads into the cache from the (here: file://) pinned URL; a bad payload leaves nothing behind."""
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    good = task.model_copy(update={"data": task.data.model_copy(update={"url_pattern": f"file://{data_copy}/{{file}}"})})
    root = resolve_data_dir(good)
    assert sha256_file(root / "chunks.csv") == task.data.files.chunks.sha256
    # corrupt source: the download is rejected and no file (or temp file) is left in the cache
    shutil.rmtree(root)
    (data_copy / "chunks.csv").write_text("chunk_id,content,metadata\n1,x,{}\n")
    with pytest.raises(DataError, match="nothing was saved"):
        resolve_data_dir(good)
    assert not any(p.name.startswith("chunks.csv") or p.name.startswith(".chunks") for p in root.glob("*"))


def test_offline_download_error_names_variable(task, tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    dead = task.model_copy(update={"data": task.data.model_copy(update={"url_pattern": "http://127.0.0.1:9/{file}"})})
    with pytest.raises(DataError) as e:
        resolve_data_dir(dead)
    assert "HARNESS_DATA_DIR" in str(e.value) and task.data.files.chunks.sha256 in str(e.value)
    assert not list((tmp_path / "cache").rglob("*.csv"))


def test_malformed_question_row_names_file_and_line(task, data_copy, monkeypatch):
    from harness.data.loading import _read_questions

    p = data_copy / "bad.jsonl"
    p.write_text('{"question": "q", "answer": "a", "supporting_paragraphs": ["x"]}\n{"question": "q2"\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid JSON"):
        _read_questions(p)
    p.write_text('{"question": "q", "answer": "", "supporting_paragraphs": ["x"]}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: field 'answer'"):
        _read_questions(p)
