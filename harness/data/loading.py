"""Task data: locate, download (pinned, checksummed, atomic), parse and split.

Resolution order for the data directory: the ``data_dir`` argument (``--data-dir``), then
``$HARNESS_DATA_DIR``, then the user cache (``$HARNESS_CACHE_DIR`` or ``~/.cache/harness``) under
``<task>/``, downloading into the cache from the pinned URL when files are missing there.
Every file is checked against its sha256 before use; nothing is ever unpickled.

Example (needs the data):
    >>> from harness.core.config import load_task
    >>> data = load_task_data(load_task("apollo3"))          # doctest: +SKIP
    >>> len(data.corpus), len(data.questions), len(data.split("test"))  # doctest: +SKIP
    (341, 318, 32)
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from harness.core.config import DataFile, TaskConfig
from harness.core.errors import DataError
from harness.core.io import atomic_write_bytes

csv.field_size_limit(1 << 26)


def cache_root() -> Path:
    """Root of the user cache (data, indexes, built models)."""
    env = os.environ.get("HARNESS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "harness"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- locating files


def _required_files(task: TaskConfig) -> list[DataFile]:
    f = task.data.files
    return [x for x in (f.chunks, f.questions, f.paraphrases, f.report) if x is not None]


def _verify(path: Path, spec: DataFile, hint: str) -> None:
    got = sha256_file(path)
    if got != spec.sha256:
        raise DataError(
            f"checksum mismatch for {path}: expected sha256 {spec.sha256}, got {got}. "
            f"The file is corrupt or a different version; {hint}"
        )


def _download(url: str, dest: Path, spec: DataFile, timeout: float = 60.0) -> None:
    """Download to a temp file, verify its checksum, then rename into place."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            payload = r.read()
    except (urllib.error.URLError, OSError) as e:
        raise DataError(
            f"{spec.name} is missing and could not be downloaded from {url} ({e}). "
            f"Set HARNESS_DATA_DIR (or pass --data-dir) to a folder holding {spec.name} "
            f"with sha256 {spec.sha256}."
        ) from None
    got = hashlib.sha256(payload).hexdigest()
    if got != spec.sha256:
        raise DataError(
            f"downloaded {url} but its sha256 is {got}, expected {spec.sha256}; nothing was saved. "
            f"Set HARNESS_DATA_DIR to a folder with the verified file."
        )
    atomic_write_bytes(dest, payload)


def resolve_data_dir(task: TaskConfig, data_dir: str | Path | None = None, download: bool = True) -> Path:
    """Return a folder holding every data file of ``task``, each verified by sha256."""
    explicit = data_dir or os.environ.get("HARNESS_DATA_DIR")
    if explicit:
        root = Path(explicit).expanduser()
        source = "--data-dir" if data_dir else "HARNESS_DATA_DIR"
        hint = f"check {source} ({root})."
        for spec in _required_files(task):
            p = root / spec.name
            if not p.is_file():
                raise DataError(
                    f"{spec.name} not found in {root} (from {source}); expected a file with sha256 "
                    f"{spec.sha256}. Point {source} at the folder holding the task's data files."
                )
            _verify(p, spec, hint)
        return root
    root = cache_root() / task.name
    for spec in _required_files(task):
        p = root / spec.name
        if p.is_file():
            _verify(p, spec, "delete it to re-download, or set HARNESS_DATA_DIR.")
            continue
        if not download:
            raise DataError(f"{spec.name} is not in the cache {root}; run `harness data prepare`.")
        url = task.data.url_pattern.format(commit=task.data.commit, file=spec.name)
        _download(url, p, spec)
    return root


# ----------------------------------------------------------------------------- parsed data


@dataclass(frozen=True)
class Question:
    """One QA pair. ``qid`` is ``q<line>`` because the file's own ``id`` is not unique."""

    qid: str
    line: int
    question: str
    answer: str
    supporting_paragraphs: tuple[str, ...]
    gold_chunk_ids: tuple[str, ...]

    @property
    def gold_paragraph(self) -> str:
        """The last supporting paragraph: the text whose presence marks the gold chunk as seen."""
        return self.supporting_paragraphs[-1]


@dataclass
class Corpus:
    chunk_ids: list[str]
    texts: list[str]
    checksum: str
    paraphrases: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.chunk_ids)

    @cached_property
    def flat_texts(self) -> list[str]:
        """Each text with its whitespace runs collapsed to one space (computed once)."""
        return [" ".join(t.split()) for t in self.texts]

    @cached_property
    def index_of(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.chunk_ids)}

    def text(self, chunk_id: str) -> str:
        return self.texts[self.index_of[chunk_id]]


@dataclass
class TaskData:
    task: TaskConfig
    root: Path
    corpus: Corpus
    questions: list[Question]
    test_lines: list[int]

    def split(self, name: str) -> list[Question]:
        """``test`` (the paper's 32), ``train`` (the paper's 286) or ``all`` (318)."""
        if name == "all":
            return list(self.questions)
        test = set(self.test_lines)
        if name == "test":
            return [self.questions[i] for i in self.test_lines]
        if name == "train":
            return [q for q in self.questions if q.line not in test]
        raise DataError(f"unknown split {name!r}; valid: test, train, all")


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; header is {reader.fieldnames}")
        rows = []
        for i, row in enumerate(reader, start=2):
            if any(row.get(c) is None for c in columns):
                raise DataError(f"{path}:{i}: malformed row (expected columns {list(columns)})")
            rows.append(row)
    return rows


def _read_questions(path: Path) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{i}: not valid JSON ({e.msg})") from None
            for key, typ in (("question", str), ("answer", str), ("supporting_paragraphs", list)):
                if not isinstance(obj.get(key), typ) or not obj.get(key):
                    raise DataError(f"{path}:{i}: field {key!r} missing or not a non-empty {typ.__name__}")
            out.append(obj)
    return out


def paper_test_lines(n: int, test_size: float = 0.1, seed: int = 42) -> list[int]:
    """Indices of the test split made by ``Dataset.train_test_split(test_size, seed=seed)``.

    ``datasets`` draws ``np.random.default_rng(seed).permutation(n)`` and takes the first
    ``ceil(test_size * n)`` as test; this reproduces it without importing ``datasets``
    (a test checks the two agree).

    >>> paper_test_lines(318)[:5]
    [50, 204, 314, 291, 161]
    """
    n_test = int(np.ceil(test_size * n))
    perm = np.random.default_rng(seed).permutation(n)
    return [int(i) for i in perm[:n_test]]


def load_task_data(task: TaskConfig, data_dir: str | Path | None = None, download: bool = True) -> TaskData:
    """Locate, verify and parse a task's data; map every question to its gold chunk ids."""
    root = resolve_data_dir(task, data_dir, download=download)
    files = task.data.files
    chunk_rows = _read_csv(root / files.chunks.name, ("chunk_id", "content"))
    corpus = Corpus(
        chunk_ids=[r["chunk_id"] for r in chunk_rows],
        texts=[r["content"] for r in chunk_rows],
        checksum=files.chunks.sha256,
    )
    para: dict[str, list[str]] = defaultdict(list)
    for r in _read_csv(root / files.paraphrases.name, ("chunk_id", "paraphrased_text")):
        if r["chunk_id"] in corpus.index_of and r["paraphrased_text"].strip():
            para[r["chunk_id"]].append(r["paraphrased_text"].strip())
    corpus.paraphrases = dict(para)

    questions = []
    qpath = root / files.questions.name
    for line, obj in enumerate(_read_questions(qpath)):
        last = obj["supporting_paragraphs"][-1]
        gold = tuple(cid for cid, text in zip(corpus.chunk_ids, corpus.texts) if last in text)
        if not gold:
            raise DataError(f"{qpath}:{line + 1}: last supporting paragraph is in no chunk of the corpus")
        questions.append(
            Question(
                qid=f"q{line:04d}",
                line=line,
                question=obj["question"].strip(),
                answer=str(obj["answer"]).strip(),
                supporting_paragraphs=tuple(obj["supporting_paragraphs"]),
                gold_chunk_ids=gold,
            )
        )
    sp = task.splits.paper
    test_lines = paper_test_lines(len(questions), sp.test_size, sp.seed)
    if sp.expected_test_lines is not None and sorted(test_lines) != sorted(sp.expected_test_lines):
        raise DataError(
            f"the paper split of {qpath} does not reproduce the test lines recorded in {task.source}; "
            f"the questions file or the split settings changed"
        )
    data = TaskData(task=task, root=root, corpus=corpus, questions=questions, test_lines=test_lines)
    if task.hooks.process_data:
        from harness.core.config import import_hook

        data = import_hook(task.hooks.process_data, task.source)(data)
    return data
