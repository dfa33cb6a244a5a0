"""Task data: locate, download (pinned, checksummed, atomic), parse and split (formats: docs/tasks.md).

A task reads either files (``data.files``) or a Hugging Face ``datasets`` dataset (``data.dataset``).
Resolution order for the files' folder: the ``data_dir`` argument (``--data-dir``), then the task's
``data.dir``, then ``$HARNESS_DATA_DIR``, then the user cache (``$HARNESS_CACHE_DIR`` or
``~/.cache/harness``) under ``<task>/``, downloading into the cache from the pinned URL when pinned
files are missing there. A file with a sha256 in the task is checked against it before use; a file
without one is read as found; either way its hash is recorded (``task.data.loaded``, in the run's
config.json). Nothing is ever unpickled.

The splits are drawn after the task's ``process_data`` hook, over the questions it returns (unless it
sets ``test_lines`` and ``dev_lines``), and checked against ``splits.paper.expected_test_lines`` and
``splits.dev.expected_lines`` when the task pins them (:func:`check_split`; ``harness validate`` runs the
same checks). ``test`` is reported on; ``dev``, carved from the training questions, is what training
selects its checkpoint and stops on; ``train`` is what training sees (neither).

Example (needs the data):
    >>> from harness.core.config import load_task
    >>> data = load_task_data(load_task("apollo3"))          # doctest: +SKIP
    >>> len(data.corpus), len(data.questions), len(data.split("test")), len(data.split("dev"))  # doctest: +SKIP
    (341, 318, 32, 32)
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
from typing import Any

import numpy as np

from harness.core.config import DataFile, TaskConfig
from harness.core.errors import DataError
from harness.core.io import atomic_write_bytes, check_name

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
    if f is None:
        raise DataError(f"task {task.name} reads a datasets dataset (data.dataset), not data files")
    return [x for x in (f.chunks, f.questions, f.paraphrases, f.report) if x is not None]


def _verify(path: Path, spec: DataFile, hint: str) -> str:
    """The file's sha256, checked against the pinned one when the task pins it."""
    got = sha256_file(path)
    if spec.sha256 is not None and got != spec.sha256:
        raise DataError(
            f"checksum mismatch for {path}: expected sha256 {spec.sha256}, got {got}. "
            f"The file is corrupt or a different version; {hint}"
        )
    return got


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


def _data_root(task: TaskConfig, data_dir: str | Path | None) -> tuple[Path, str] | None:
    """The folder the files are read from and what chose it, in order: ``--data-dir``, the task's
    ``data.dir``, ``$HARNESS_DATA_DIR``; None: the cache (where missing pinned files are downloaded)."""
    if data_dir:
        return Path(data_dir).expanduser(), "--data-dir"
    if task.data.dir:
        return Path(task.data.dir), f"data.dir of {task.source}"
    if os.environ.get("HARNESS_DATA_DIR"):
        return Path(os.environ["HARNESS_DATA_DIR"]).expanduser(), "HARNESS_DATA_DIR"
    return None


def data_available(task: TaskConfig, data_dir: str | Path | None = None) -> str | None:
    """None when every data file of ``task`` is on this machine (nothing is read or downloaded), else
    why not: what ``harness validate`` says when it skips the data checks."""
    if task.data.dataset is not None:
        path = Path(task.data.dataset.path)
        if path.is_absolute():
            return None if path.exists() else f"no dataset folder {path}"
        return f"the hub dataset {task.data.dataset.path} is loaded only by harness run / train / data prepare"
    found = _data_root(task, data_dir)
    root = found[0] if found else cache_root() / task.name
    missing = [spec.name for spec in _required_files(task) if not (root / spec.name).is_file()]
    return f"{', '.join(missing)} not in {root}" if missing else None


def _resolve(task: TaskConfig, data_dir: str | Path | None, download: bool) -> tuple[Path, dict[str, str]]:
    """The data folder and the sha256 of every file in it the task reads (checked where pinned)."""
    hashes: dict[str, str] = {}
    found = _data_root(task, data_dir)
    if found is not None:
        root, source = found
        hint = f"check {source} ({root})."
        for spec in _required_files(task):
            p = root / spec.name
            if not p.is_file():
                pinned = f" with sha256 {spec.sha256}" if spec.sha256 else ""
                raise DataError(f"{spec.name} not found in {root} (from {source}); expected a file{pinned}. "
                                f"Point {source} at the folder holding the task's data files.")
            hashes[spec.name] = _verify(p, spec, hint)
        return root, hashes
    root = cache_root() / check_name(task.name, "task name")
    for spec in _required_files(task):
        p = root / spec.name
        if p.is_file():
            hashes[spec.name] = _verify(p, spec, "delete it to re-download, or set HARNESS_DATA_DIR.")
            continue
        if spec.sha256 is None or not task.data.url_pattern:
            raise DataError(f"{spec.name} is not in {root} and task {task.name} does not pin it (sha256 and "
                            f"data.url_pattern) to download it; set data.dir in {task.source}, pass --data-dir "
                            "or set HARNESS_DATA_DIR to the folder holding it")
        if not download:
            raise DataError(f"{spec.name} is not in the cache {root}; run `harness data prepare`.")
        url = task.data.url_pattern.format(commit=task.data.commit or "", file=spec.name)
        _download(url, p, spec)
        hashes[spec.name] = spec.sha256
    return root, hashes


def resolve_data_dir(task: TaskConfig, data_dir: str | Path | None = None, download: bool = True) -> Path:
    """Return a folder holding every data file of ``task``, each verified by sha256 where the task pins one."""
    return _resolve(task, data_dir, download)[0]


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
    #: Paraphrases by chunk id; None when the task has no paraphrases (the ``paraphrase`` noise mode is refused).
    paraphrases: dict[str, list[str]] | None = field(default_factory=dict)

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


#: The split names :meth:`TaskData.split` knows.
SPLITS = ("test", "dev", "train", "train+dev", "all")


@dataclass
class TaskData:
    task: TaskConfig
    root: Path
    corpus: Corpus
    questions: list[Question]
    #: Positions in ``questions`` of the test split. None only while the ``process_data`` hook runs: the
    #: split is drawn after it, over the questions it returns, unless it sets ``test_lines`` itself.
    test_lines: list[int] | None
    #: Positions of the dev split (carved from the training questions; never trained on). None until the
    #: split is drawn (:func:`check_split`), unless the ``process_data`` hook sets it.
    dev_lines: list[int] | None = None

    def split(self, name: str) -> list[Question]:
        """A split's questions, in file order:

        ``test``       the reported questions (apollo3: the paper's 32)
        ``dev``        the selection questions (checkpoints, stopping, sweeps), carved from the training ones
        ``train``      the questions training sees: neither test nor dev
        ``train+dev``  every question but the test ones (the training questions before dev was carved out)
        ``all``        every question
        """
        if name == "all":
            return list(self.questions)
        if self.test_lines is None or (self.dev_lines is None and name != "test"):
            raise DataError("the split is drawn after the process_data hook; a hook cannot ask for it")
        if name == "test":
            return [self.questions[i] for i in self.test_lines]
        if name == "dev":
            return [self.questions[i] for i in sorted(self.dev_lines)]
        if name in ("train", "train+dev"):
            out = set(self.test_lines) | (set(self.dev_lines) if name == "train" else set())
            return [q for i, q in enumerate(self.questions) if i not in out]
        raise DataError(f"unknown split {name!r}; valid: {', '.join(SPLITS)}")

    def split_lines(self, name: str) -> list[int]:
        """The lines (positions in the questions file, or in the hook's questions) of a split, ascending."""
        return sorted(q.line for q in self.split(name))


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


def _check_question(obj: Any, where: str) -> dict:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected an object with question, answer and supporting_paragraphs")
    for key, typ in (("question", str), ("answer", str), ("supporting_paragraphs", list)):
        if not isinstance(obj.get(key), typ) or not obj.get(key):
            raise DataError(f"{where}: field {key!r} missing or not a non-empty {typ.__name__}")
    if not all(isinstance(p, str) for p in obj["supporting_paragraphs"]):
        raise DataError(f"{where}: supporting_paragraphs must be a list of strings")
    return obj


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
            out.append(_check_question(obj, f"{path}:{i}"))
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


def dev_lines(train: list[int], size: int, seed: int = 42) -> list[int]:
    """The dev split carved from the training positions ``train`` (in file order), ascending:
    ``Dataset.from_list(train).train_test_split(test_size=size, seed=seed)["test"]``, which draws
    ``np.random.default_rng(seed).permutation(len(train))`` and takes the first ``size``.

    >>> dev_lines(list(range(10, 20)), 3)
    [10, 15, 16]
    """
    perm = np.random.default_rng(seed).permutation(len(train))
    return sorted(int(train[i]) for i in perm[:size])


@dataclass
class _Tables:
    """A task's raw tables, from files or a dataset, and where each came from (the run's record)."""

    root: Path
    chunks: list[dict]
    questions: list[dict]
    paraphrases: list[dict] | None
    where: str                                   # how errors name the questions' source
    record: dict[str, dict[str, Any]]
    corpus_checksum: str


def _read_files(task: TaskConfig, data_dir: str | Path | None, download: bool) -> _Tables:
    root, hashes = _resolve(task, data_dir, download)
    files = task.data.files
    record = {}
    for key in ("chunks", "questions", "paraphrases", "report"):
        spec = getattr(files, key)
        if spec is not None:
            p = root / spec.name
            record[key] = {"path": str(p), "sha256": hashes[spec.name], "bytes": p.stat().st_size,
                           "pinned": spec.sha256 is not None}
    para = None
    if files.paraphrases is not None:
        para = _read_csv(root / files.paraphrases.name, ("chunk_id", "paraphrased_text"))
    return _Tables(root, _read_csv(root / files.chunks.name, ("chunk_id", "content")),
                   _read_questions(root / files.questions.name), para, str(root / files.questions.name),
                   record, hashes[files.chunks.name])


def _rows_checksum(rows: list[dict], columns: tuple[str, ...]) -> str:
    blob = json.dumps([[r.get(c) for c in columns] for r in rows], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _read_dataset(task: TaskConfig) -> _Tables:
    """The tables of ``data.dataset``: a folder saved by ``datasets`` (``save_to_disk``), another local
    folder ``datasets.load_dataset`` reads, or a hub id (pinned with ``revision``)."""
    try:
        import datasets
    except ImportError:
        raise DataError("data.dataset needs the `datasets` package (pip install datasets)") from None
    src = task.data.dataset
    path = Path(src.path)
    saved = path.is_absolute() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file())
    if path.is_absolute() and not path.exists():
        raise DataError(f"data.dataset.path {path} (from {task.source}) does not exist")
    on_disk = datasets.load_from_disk(str(path)) if saved else None

    def table(key: str, columns: tuple[str, ...]) -> tuple[list[dict], dict[str, Any]]:
        t = getattr(src, key)
        where = f"{src.path} [{t.config + '/' if t.config else ''}{t.split}]"
        try:
            if on_disk is not None:
                if not isinstance(on_disk, datasets.DatasetDict):
                    raise DataError(f"{src.path} holds one Dataset; save a DatasetDict whose splits hold the "
                                    "questions and the chunks (data.dataset.questions.split, .chunks.split)")
                if t.split not in on_disk:
                    raise DataError(f"{src.path} has no split {t.split!r} (data.dataset.{key}.split); "
                                    f"it has {', '.join(on_disk)}")
                ds = on_disk[t.split]
            else:
                ds = datasets.load_dataset(str(path) if path.is_absolute() else src.path, t.config, split=t.split,
                                           revision=src.revision)
        except DataError:
            raise
        except Exception as e:  # datasets raises many types (missing hub id, offline, bad split)
            raise DataError(f"cannot load data.dataset.{key} {where}: {type(e).__name__}: {e}") from None
        missing = [c for c in columns if c not in ds.column_names]
        if missing:
            raise DataError(f"{where}: missing column(s) {missing}; columns are {ds.column_names}")
        rows = ds.to_list()
        return rows, {"dataset": src.path, "revision": src.revision, "config": t.config, "split": t.split,
                      "rows": len(rows), "fingerprint": getattr(ds, "_fingerprint", None),
                      "sha256": _rows_checksum(rows, columns)}

    chunks, rec_c = table("chunks", ("chunk_id", "content"))
    chunks = [{"chunk_id": str(r["chunk_id"]), "content": str(r["content"])} for r in chunks]
    questions_raw, rec_q = table("questions", ("question", "answer", "supporting_paragraphs"))
    where = f"{src.path} [{src.questions.split}]"
    questions = [_check_question(r, f"{where} row {i}") for i, r in enumerate(questions_raw)]
    record = {"chunks": rec_c, "questions": rec_q}
    para = None
    if src.paraphrases is not None:
        para, record["paraphrases"] = table("paraphrases", ("chunk_id", "paraphrased_text"))
        para = [{"chunk_id": str(r["chunk_id"]), "paraphrased_text": str(r["paraphrased_text"] or "")} for r in para]
    root = path if path.is_absolute() else cache_root() / check_name(task.name, "task name")
    return _Tables(root, chunks, questions, para, where, record, rec_c["sha256"])


def load_task_data(task: TaskConfig, data_dir: str | Path | None = None, download: bool = True) -> TaskData:
    """Locate, verify and parse a task's data; map every question to its gold chunk ids; run the
    ``process_data`` hook; draw and check the split.

    What was read (per table: where from, sha256, size) is recorded in ``task.data.loaded``, so a
    run's config.json says which data it used, checksums pinned or not.
    """
    tables = _read_dataset(task) if task.data.dataset is not None else _read_files(task, data_dir, download)
    task.data.record_loaded(tables.record)
    ids = [r["chunk_id"] for r in tables.chunks]
    if len(set(ids)) != len(ids):
        dup = next(c for c in ids if ids.count(c) > 1)
        raise DataError(f"chunk_id {dup!r} appears more than once in the chunks of task {task.name}")
    corpus = Corpus(chunk_ids=ids, texts=[r["content"] for r in tables.chunks], checksum=tables.corpus_checksum,
                    paraphrases=None)
    if tables.paraphrases is not None:
        para: dict[str, list[str]] = defaultdict(list)
        for r in tables.paraphrases:
            if r["chunk_id"] in corpus.index_of and r["paraphrased_text"].strip():
                para[r["chunk_id"]].append(r["paraphrased_text"].strip())
        corpus.paraphrases = dict(para)

    questions = []
    for line, obj in enumerate(tables.questions):
        last = obj["supporting_paragraphs"][-1]
        gold = tuple(cid for cid, text in zip(corpus.chunk_ids, corpus.texts) if last in text)
        if not gold:
            raise DataError(f"{tables.where}:{line + 1}: last supporting paragraph is in no chunk of the corpus")
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
    data = TaskData(task=task, root=tables.root, corpus=corpus, questions=questions, test_lines=None)
    hook = task.hooks.process_data
    if hook:
        data = task.hook("process_data")(data)
        if not isinstance(data, TaskData):
            raise DataError(f"the process_data hook {hook!r} of {task.source} returned {type(data).__name__}, "
                            "not the TaskData it was given")
    return check_split(data, tables.where)


def check_split(data: TaskData, where: str = "the questions") -> TaskData:
    """Draw the paper split and the dev split over ``data.questions`` unless a hook set them; check they fit
    the questions, do not overlap, and reproduce ``splits.paper.expected_test_lines`` and
    ``splits.dev.expected_lines``. Raises DataError saying which and how to fix it."""
    task, n = data.task, len(data.questions)
    hook = task.hooks.process_data
    after = f" after the process_data hook {hook!r}" if hook else ""
    if n == 0:
        raise DataError(f"task {task.name} has no questions{after} ({where})")
    sp = task.splits.paper
    if data.test_lines is None:
        data.test_lines = paper_test_lines(n, sp.test_size, sp.seed)
    lines = data.test_lines
    _check_positions(task.name, "test", lines, n, after)
    if sp.expected_test_lines is not None and sorted(lines) != sorted(sp.expected_test_lines):
        if hook:
            raise DataError(
                f"splits.paper.expected_test_lines of {task.source} pins a test split of "
                f"{len(sp.expected_test_lines)} questions (up to line {max(sp.expected_test_lines, default=0)}), but "
                f"the split{after} ({n} questions) is another one. expected_test_lines pins the split of one "
                "questions file: remove it (expected_test_lines: ~) when a hook changes the questions")
        raise DataError(
            f"the paper split of {where} ({n} questions) does not reproduce the test lines recorded in "
            f"{task.source}; the questions file or the split settings changed"
        )
    dv = task.splits.dev
    test = set(lines)
    if data.dev_lines is None:
        train = [i for i in range(n) if i not in test]
        size = min(dv.size if dv.size is not None else len(lines), len(train) // 4)
        data.dev_lines = dev_lines(train, size, dv.seed)
    _check_positions(task.name, "dev", data.dev_lines, n, after)
    both = sorted(test & set(data.dev_lines))
    if both:
        raise DataError(f"task {task.name}: the dev split{after} shares positions {both[:5]} with the test split; "
                        "dev is carved from the training questions")
    if dv.expected_lines is not None and sorted(data.dev_lines) != sorted(dv.expected_lines):
        if hook:
            raise DataError(
                f"splits.dev.expected_lines of {task.source} pins a dev split of {len(dv.expected_lines)} questions, "
                f"but the split{after} ({n} questions) is another one. expected_lines pins the split of one "
                "questions file: remove it (splits.dev.expected_lines: ~) when a hook changes the questions")
        raise DataError(f"the dev split of {where} ({n} questions) does not reproduce the dev lines recorded in "
                        f"{task.source}; the questions file or the split settings changed")
    return data


def _check_positions(task: str, split: str, lines: list[int], n: int, after: str) -> None:
    bad = [i for i in lines if not isinstance(i, int) or not 0 <= i < n]
    if bad or len(set(lines)) != len(lines):
        raise DataError(f"task {task}: the {split} split{after} names question positions "
                        f"{bad[:5] or 'twice'} but there are {n} questions; {split}_lines are positions in "
                        "data.questions, each at most once")
