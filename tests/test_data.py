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
    rows = [json.loads(line) for line in open(data.root / "questions.jsonl")]
    for i, r in enumerate(rows):
        r["_line"] = i
    split = datasets.Dataset.from_list(rows).train_test_split(test_size=0.1, seed=42)
    assert split["test"]["_line"] == data.test_lines
    assert sorted(data.test_lines) == data.task.splits.paper.expected_test_lines
    assert len(data.split("train+dev")) == 286 and len(data.split("test")) == 32 and len(data.split("all")) == 318


def test_dev_split_is_carved_from_train_as_datasets_would(data):
    """The dev split: 32 training questions by datasets' own train_test_split over the train split in file
    order, recorded in task.yaml, disjoint from test; training (split 'train') never sees them."""
    datasets = pytest.importorskip("datasets")
    train = [q.line for q in data.split("train+dev")]
    drawn = datasets.Dataset.from_list([{"line": i} for i in train]).train_test_split(test_size=32, seed=42)
    assert sorted(drawn["test"]["line"]) == data.split_lines("dev") == data.task.splits.dev.expected_lines
    dev, test, tr = set(data.split_lines("dev")), set(data.split_lines("test")), set(data.split_lines("train"))
    assert len(dev) == 32 and len(tr) == 254 and not dev & test and not dev & tr and not tr & test
    assert dev | tr | test == set(range(318))


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


# ----------------------------------------------------------------------------- bring your own data (issue 26)


def _own_task(tmp_path, paraphrases=False, **data):
    """The guide's tiny task (tests/byo_task.py), its data section replaced by ``data`` when given."""
    import yaml
    from byo_task import write_task

    from harness.core.config import load_task

    path = write_task(tmp_path, paraphrases=paraphrases)
    if data:
        raw = yaml.safe_load(path.read_text())
        raw["data"] = data
        path.write_text(yaml.safe_dump(raw))
    return load_task(path)


@pytest.mark.unit
def test_local_files_without_checksums_load_and_the_run_records_their_hashes(tmp_path):
    """Issue 26: local files needed url_pattern, sha256 and bytes; now they load as found, hashed."""
    task = _own_task(tmp_path)
    d = load_task_data(task)
    folder = tmp_path / "mytask" / "data"
    assert len(d.corpus) == 5 and len(d.questions) == 20 and d.root == folder
    assert d.corpus.checksum == sha256_file(folder / "chunks.csv")
    assert task.data.loaded["questions"] == {"path": str(folder / "questions.jsonl"), "pinned": False,
                                             "sha256": sha256_file(folder / "questions.jsonl"),
                                             "bytes": (folder / "questions.jsonl").stat().st_size}
    assert task.model_dump()["data"]["loaded"]["chunks"]["sha256"] == d.corpus.checksum  # in config.json
    # a pinned file is still checked
    pinned = _own_task(tmp_path / "p", dir="data", files={
        "chunks": {"name": "chunks.csv", "sha256": d.corpus.checksum},
        "questions": {"name": "questions.jsonl", "sha256": "0" * 64}})
    with pytest.raises(DataError, match="checksum mismatch for .*questions.jsonl"):
        load_task_data(pinned)


@pytest.mark.unit
def test_the_tasks_own_folder_comes_before_harness_data_dir_and_after_data_dir(tmp_path, monkeypatch):
    from byo_task import write_data

    task = _own_task(tmp_path)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "another-tasks-data"))
    assert load_task_data(task).root == tmp_path / "mytask" / "data"
    other = write_data(tmp_path / "elsewhere")
    assert load_task_data(task, data_dir=other).root == other


@pytest.mark.unit
def test_an_unpinned_file_that_is_missing_is_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    task = _own_task(tmp_path, files={"chunks": {"name": "chunks.csv"}, "questions": {"name": "questions.jsonl"}},
                     url_pattern="http://127.0.0.1:9/{file}")
    with pytest.raises(DataError, match=r"chunks.csv is not in .*cache/mytask and task mytask does not pin it"):
        load_task_data(task)


@pytest.mark.unit
def test_the_paraphrase_file_is_optional_and_its_noise_mode_refuses_without_it(tmp_path):
    """Issue 26: paragraphs_noise.csv was required even when paraphrase noise is never used."""
    from harness.core.config import NoiseConfig, RetrievalConfig, load_task
    from harness.core.errors import ConfigError
    from harness.data.retrieval import build_retriever
    from harness.data.search import SearchTool

    d = load_task_data(_own_task(tmp_path))
    assert d.corpus.paraphrases is None
    bm25 = build_retriever(RetrievalConfig(), d.corpus, "bm25")
    with pytest.raises(ConfigError, match=r"^the paraphrase noise mode needs paraphrases, and this task has none"):
        SearchTool(bm25, d.corpus, noise=NoiseConfig(level=0.5, modes=("drop_gold", "paraphrase")))
    SearchTool(bm25, d.corpus, noise=NoiseConfig(level=0.5, modes=("drop_gold",)))         # other modes work
    path = tmp_path / "mytask" / "task.yaml"
    path.write_text(path.read_text() + "noise: {level: 0.1, modes: [paraphrase]}\n")
    with pytest.raises(ConfigError, match="noise.modes uses the paraphrase noise mode, but the task has no paraphr"):
        load_task(path)
    with_para = load_task_data(_own_task(tmp_path / "w", paraphrases=True, dir="data", files={
        "chunks": {"name": "chunks.csv"}, "questions": {"name": "questions.jsonl"},
        "paraphrases": {"name": "paragraphs_noise.csv"}}))
    tool = SearchTool(build_retriever(RetrievalConfig(), with_para.corpus, "bm25"), with_para.corpus,
                      noise=NoiseConfig(level=1.0, modes=("paraphrase",)))
    res = tool.search("Vell Island lighthouse built", "q0000")
    assert all(r.noise == "paraphrase" and r.text.startswith("In other words:") for r in res.results)


@pytest.mark.unit
def test_validate_loads_local_data_and_catches_a_split_run_would_trip_on(tmp_path):
    """Issue 26: validate said ok for what run failed on; it now loads the data and draws the split."""
    from harness.cli.validate import validate_file

    path = tmp_path / "mytask" / "task.yaml"
    _own_task(tmp_path)
    assert validate_file(path) == "task; data: 5 chunks, 20 questions, test 2, dev 2, train 16"
    path.write_text(path.read_text() + "splits: {paper: {expected_test_lines: [0, 1]}}\n")
    with pytest.raises(DataError, match=r"the paper split of .*questions.jsonl \(20 questions\) does not reproduce"):
        validate_file(path)
    (path.parent / "hooks.py").write_text("def none_left(data):\n    data.questions = []\n    return data\n")
    path.write_text(path.read_text().replace("splits: {paper: {expected_test_lines: [0, 1]}}\n",
                                             "hooks: {process_data: 'hooks:none_left'}\n"))
    with pytest.raises(DataError, match="has no questions after the process_data hook 'hooks:none_left'"):
        validate_file(path)


@pytest.mark.integration
def test_paraphrase_noise_on_a_task_without_paraphrases_is_one_line(tmp_path):
    import os
    import subprocess
    import sys

    from byo_task import REPO, write_task

    path = write_task(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--task", str(path), "--model", "one-search",
                           "--noise", "0.5", "--noise-mode", "paraphrase", "-o", str(tmp_path / "run"), "--no-report"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == ("error: the paraphrase noise mode needs paraphrases, and this task "
                                                    "has none (data.files.paraphrases); choose another --noise-mode")


@pytest.mark.integration
def test_questions_and_corpus_from_a_saved_datasets_dataset(tmp_path):
    """Issue 26: a task may read its questions and corpus from a Hugging Face datasets dataset (path or hub id)."""
    import csv

    datasets = pytest.importorskip("datasets")
    from byo_task import write_data

    folder = write_data(tmp_path / "files")
    with open(folder / "chunks.csv", newline="") as f:
        chunks = [{"chunk_id": r["chunk_id"], "content": r["content"]} for r in csv.DictReader(f)]
    questions = [json.loads(line) for line in open(folder / "questions.jsonl")]
    datasets.DatasetDict({"questions": datasets.Dataset.from_list(questions),
                          "corpus": datasets.Dataset.from_list(chunks)}).save_to_disk(str(tmp_path / "mytask" / "qa"))
    from_files = load_task_data(_own_task(tmp_path / "f"))
    task = _own_task(tmp_path, dataset={"path": "qa", "questions": {"split": "questions"},
                                        "chunks": {"split": "corpus"}})
    assert task.data.dataset.path == str(tmp_path / "mytask" / "qa")        # relative to the task file
    d = load_task_data(task)
    assert [(q.question, q.answer, q.gold_chunk_ids) for q in d.questions] == \
           [(q.question, q.answer, q.gold_chunk_ids) for q in from_files.questions]
    assert d.corpus.chunk_ids == from_files.corpus.chunk_ids and d.test_lines == from_files.test_lines
    assert d.corpus.paraphrases is None
    rec = task.data.loaded
    assert rec["questions"]["rows"] == 20 and rec["chunks"]["rows"] == 5 and rec["chunks"]["split"] == "corpus"
    assert rec["chunks"]["sha256"] == d.corpus.checksum and rec["questions"]["fingerprint"]
    missing = _own_task(tmp_path / "m", dataset={"path": str(tmp_path / "mytask" / "qa"),
                                                 "questions": {"split": "test"}, "chunks": {"split": "corpus"}})
    with pytest.raises(DataError, match="has no split 'test' .*it has questions, corpus"):
        load_task_data(missing)
    swapped = _own_task(tmp_path / "s", dataset={"path": str(tmp_path / "mytask" / "qa"),
                                                 "questions": {"split": "corpus"}, "chunks": {"split": "questions"}})
    with pytest.raises(DataError, match=r"missing column\(s\) \['chunk_id', 'content'\]"):
        load_task_data(swapped)
    from harness.cli.validate import validate_file

    assert validate_file(tmp_path / "mytask" / "task.yaml") == \
        "task; data: 5 chunks, 20 questions, test 2, dev 2, train 16"
