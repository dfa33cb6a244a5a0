"""The run directory: its layout, the one process that may write it, and the one way to read it.

Layout (every name is a constant here; nothing else spells them)::

    config.json                     CONFIG: the resolved options ({"run": ...} or {"train": ..., "resolved": ...})
    results.json                    RECORD: the run record (:class:`harness.core.record.RunRecord`)
    samples.jsonl                   SAMPLES: ``harness run``'s episodes, one per line, with policy and noise_level
    curve.csv                       CURVE: ``harness train``'s curve, one row per step
    eval_samples/step_NNNNN.jsonl   the episodes of each eval step on the selection split (:func:`eval_samples_path`)
    eval_samples/reported/step_NNNNN.jsonl   the reported split's (test) episodes, at the steps it was evaluated
                                    when it is not the selection split (``reported=True``)
    report.html                     REPORT: written by the command line once the run returns

Writing. A run opens its directory through :class:`RunLifecycle` (``EvalRun`` and ``TrainRun`` both):

    open              refuse a path that is a file or cannot be written (one-line ConfigError); create
                      the directory if needed, remembering whether this process created it; take
                      ``RUN_DIR/.lock`` (``filelock``, without waiting) and record the holder (pid, host,
                      command, start time) in ``RUN_DIR/.lock.json`` (:class:`RunDir`); refuse a directory
                      that holds a run unless resuming; refuse up front, not after the last episode, a
                      run file that could not be written; on ``--resume``, refuse a different configuration
                      (:func:`check_resume`)
    write             ``config.json`` and the record, atomically
    close             give files that a library wrote private (0600) the umask's mode, like every other
                      run file; release the lock. ``discard=True`` removes a directory this process
                      created instead (a run that failed before writing anything leaves nothing behind)

A second process opening the same directory fails at once with a message naming the holder. The lock
is the OS's (``flock``): a killed holder releases it, so there is never a stale lock to delete by hand.

Reading. :func:`read_curve`, :func:`read_options`, :func:`read_samples`, :func:`read_eval_samples`,
:func:`eval_steps` and :func:`outcomes` are the only readers of those files; the record is read by
:func:`harness.core.record.read_record`.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp()) / "run"
>>> rd = RunDir(d).open()
>>> rd.created, sorted(p.name for p in d.iterdir())
(True, ['.lock', '.lock.json'])
>>> RunDir(d).open()  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
harness.core.errors.ConfigError: ... is in use by another process (pid ...); wait for it to finish or
    choose another --output-dir
>>> rd.close(discard=True); d.exists()
False
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError, DataError
from harness.core.io import atomic_write_text, file_mode

CONFIG = "config.json"
RECORD = "results.json"
SAMPLES = "samples.jsonl"
CURVE = "curve.csv"
EVAL_SAMPLES = "eval_samples"
#: The reported split's eval samples, under ``eval_samples/`` (training runs that select on another split).
REPORTED = "reported"
REPORT = "report.html"
#: The files whose presence makes a directory a run (``eval_samples/`` too).
RUN_FILES = (RECORD, CURVE, SAMPLES, CONFIG)
#: What only one kind of run writes, by its config section: a directory holding another kind's files is
#: never opened as a run of this kind (its config.json and results.json would be overwritten).
KIND_FILES = {"run": (SAMPLES,), "train": (CURVE, EVAL_SAMPLES, "checkpoints")}

#: The command that writes each kind of run, by its config section.
RECORD_COMMANDS = {"run": "harness run", "train": "harness train"}

LOCK_NAME = ".lock"
#: The lock's companion file: who holds the lock (written atomically after the lock is taken).
HOLDER_NAME = ".lock.json"


def holder_info() -> dict[str, Any]:
    """What a refused second process is told about this one."""
    from datetime import datetime, timezone

    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if prog == "__main__.py":                      # python -m harness
        prog = f"python -m {Path(sys.argv[0]).parent.name}"
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([prog, *sys.argv[1:]])}


def describe_holder(run_dir: Path) -> str:
    """One phrase naming the process that holds ``run_dir``'s lock, from its companion file."""
    try:
        h = json.loads((Path(run_dir) / HOLDER_NAME).read_text(encoding="utf-8"))
        return (f"pid {h['pid']} on {h['host']}, started {h['started_at']}"
                + (f": {h['command']}" if h.get("command") else ""))
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown: the holder has not recorded itself yet"


class RunDir:
    """An output directory held by this process (see the module docstring)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        #: True when this process created the directory (only then may ``close(discard=True)`` remove it).
        self.created = False
        self._top: Path | None = None  # the highest folder this process created (the run dir or a parent)
        self._lock = None

    @property
    def locked(self) -> bool:
        return self._lock is not None and self._lock.is_locked

    def open(self) -> RunDir:
        from filelock import FileLock, Timeout

        p = self.path
        if p.exists() and not p.is_dir():
            raise ConfigError(f"{p} exists and is not a directory; choose another --output-dir")
        try:
            self._mkdir()
            lock = FileLock(str(p / LOCK_NAME), timeout=0, mode=file_mode(), thread_local=False)
            try:
                lock.acquire()
            except Timeout:
                raise ConfigError(f"{p} is in use by another process ({describe_holder(p)}); "
                                  "wait for it to finish or choose another --output-dir") from None
            self._lock = lock
            atomic_write_text(p / HOLDER_NAME, json.dumps(holder_info()) + "\n")
        except PermissionError:
            self.close(discard=True)
            raise ConfigError(f"cannot write in {p}: permission denied; choose a writable --output-dir "
                              "or fix the directory's permissions") from None
        return self

    def _mkdir(self) -> None:
        top = self.path
        while not top.parent.exists() and top.parent != top:
            top = top.parent
        try:
            self.path.mkdir(parents=True)
        except FileExistsError:
            if not self.path.is_dir():
                raise ConfigError(f"{self.path} exists and is not a directory; choose another --output-dir") from None
            return
        self.created, self._top = True, top

    def require_writable(self, *names: str, append: bool = False) -> None:
        """Refuse now, in one line, run files that could not be written later.

        Files written by atomic replace only need not to be directories; ``append=True`` files
        (``samples.jsonl``) are opened in place and must also be writable.
        """
        for name in names:
            f = self.path / name
            if f.is_dir():
                raise ConfigError(f"{f} is a directory where the run writes a file; move it away "
                                  "or choose another --output-dir")
            if append and f.is_file():
                try:
                    open(f, "ab").close()   # appends nothing; fails as the real write would
                except PermissionError:
                    raise ConfigError(f"{f} is read-only; make it writable (chmod u+w) "
                                      "or choose another --output-dir") from None

    def close(self, discard: bool = False) -> None:
        """Release the lock (idempotent); with ``discard``, first remove the directory if this process created it."""
        if discard and self.created and self.locked:
            shutil.rmtree(self.path, ignore_errors=True)
            self._remove_empty_parents()
        elif discard and self.created:       # created but never locked (permission error): remove only if empty
            try:
                self.path.rmdir()
                self._remove_empty_parents()
            except OSError:
                pass
        elif self.locked:
            (self.path / HOLDER_NAME).unlink(missing_ok=True)
            match_umask(self.path)
        if discard:
            self.created = False
        if self._lock is not None:
            self._lock.release(force=True)
            self._lock = None

    def _remove_empty_parents(self) -> None:
        """Parents this process created for the run directory (``runs/``), when nothing else is in them."""
        d = self.path.parent
        while self._top is not None and d != self._top.parent and d != d.parent:
            try:
                d.rmdir()
            except OSError:
                return
            d = d.parent

    def __enter__(self) -> RunDir:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


#: The mode of files written through ``mkstemp`` or by writers that ignore the umask: safetensors 0.8
#: ``save_file`` (model weights in ``checkpoints/`` and ``model/``) creates them 0600 whatever the umask.
PRIVATE_MODE = 0o600


def match_umask(root: Path | str) -> list[Path]:
    """Give every file under ``root`` that was written private (0600) the mode the umask gives; return them.

    One mode for all run files: what ``open()`` would create (:func:`harness.core.io.file_mode`). Files
    with any other mode are left alone (a user's deliberate ``chmod`` is not undone).

    >>> import tempfile, pathlib, os
    >>> d = pathlib.Path(tempfile.mkdtemp()); f = d / "w.safetensors"; _ = f.write_bytes(b"x"); f.chmod(0o600)
    >>> [p.name for p in match_umask(d)] == (["w.safetensors"] if file_mode() != 0o600 else [])
    True
    >>> oct(f.stat().st_mode & 0o777) == oct(file_mode())
    True
    """
    want = file_mode()
    fixed: list[Path] = []
    if want == PRIVATE_MODE:
        return fixed
    for dirpath, _, files in os.walk(root):
        for name in files:
            f = Path(dirpath) / name
            try:
                if f.is_file() and not f.is_symlink() and (f.stat().st_mode & 0o777) == PRIVATE_MODE:
                    f.chmod(want)
                    fixed.append(f)
            except OSError:
                continue
    return fixed


def saved_config(run_dir: Path, section: str, *, holds_results: bool) -> dict | None:
    """The ``section`` (``run`` or ``train``) of ``RUN_DIR/config.json``, for ``--resume``.

    ``None`` when there is no config and nothing to mix with; a ConfigError when results are there but
    their configuration cannot be read (missing or corrupt file), since appending could mix two runs.
    """
    path = Path(run_dir) / "config.json"
    spoiled = (f"the episodes already there could belong to another configuration, so --resume would mix "
               f"two runs. Restore {path.name} from a copy" + (" (results.json records the options under 'config')"
                                                   if (Path(run_dir) / "results.json").is_file() else "")
               + " or start again in a new --output-dir")
    if not path.exists():
        if holds_results:
            raise ConfigError(f"cannot resume {run_dir}: its config.json is missing; {spoiled}")
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))[section]
        if not isinstance(saved, dict):
            raise TypeError(f"'{section}' is not a mapping")
    except (ValueError, OSError) as e:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ConfigError(f"cannot resume {run_dir}: its config.json is corrupt ({_first_line(e)}); "
                          f"{spoiled}") from None
    except (KeyError, TypeError) as e:
        raise ConfigError(f"cannot resume {run_dir}: its config.json has no '{section}' settings ({e}); "
                          f"{spoiled}") from None
    return saved


def check_resume(run_dir: Path, section: str, new: dict, free: Iterable[str], *, holds_results: bool,
                 what: str = "the results", model=None) -> None:
    """Refuse ``--resume`` unless the saved configuration is readable and equal on every option not in ``free``.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "config.json").write_text('{"run": {"seed": 0, "limit": 4}}')
    >>> check_resume(d, "run", {"seed": 0, "limit": 8}, {"limit"}, holds_results=True)
    >>> check_resume(d, "run", {"seed": 1, "limit": 4}, {"limit"}, holds_results=True)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    harness.core.errors.ConfigError: cannot resume ... with a different configuration (seed: 0 -> 1); the
        results would mix two runs; use a new --output-dir
    """
    saved = saved_config(run_dir, section, holds_results=holds_results)
    if saved is None:
        return
    if model is not None:  # a run recorded before an option was renamed (``limit`` -> ``eval_limit``) or added
        from pydantic import ValidationError

        from harness.core.options import canonical

        saved = canonical(model, saved)
        try:   # options added since the run was recorded take their defaults, as they did then
            saved = {**model.model_validate(saved).model_dump(), **saved}
        except ValidationError:
            pass   # compared as recorded; the differing options are named below
    free = set(free)
    changed = sorted(k for k in new if k not in free and saved.get(k) != new[k])
    if changed:
        diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {new[k]!r}" for k in changed)
        raise ConfigError(f"cannot resume {run_dir} with a different configuration ({diffs}); "
                          f"{what} would mix two runs; use a new --output-dir")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


# ----------------------------------------------------------------------------- the run lifecycle


def default_output_dir(*parts: str) -> Path:
    """``runs/PART-PART-...-YYYYmmdd-HHMMSS``, each part made a safe path component.

    >>> str(default_output_dir("apollo3", "org/model")).startswith("runs/apollo3-org_model-")
    True
    """
    import time

    from harness.core.io import slug

    return Path("runs") / "-".join([*(slug(p, 40, keep="tail") for p in parts), time.strftime("%Y%m%d-%H%M%S")])


class RunLifecycle:
    """Open and lock a run directory, check a resume, write the config and the record, clean up.

    ``holds(path)`` says whether the directory already holds a run of this kind (a new run there is
    refused unless ``resume``); ``has_results(path)`` whether it holds anything a different
    configuration would be mixed with (then ``--resume`` must match the saved options outside
    ``resume_free``). ``files`` are written by atomic replace, ``append`` files in place.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> life = RunLifecycle(d, section="run", noun="a run", what="the episodes", files=(CONFIG, RECORD))
    >>> life.open({"seed": 0}, resume=False)
    >>> life.write_config({"run": {"seed": 0}}); sorted(p.name for p in d.iterdir())
    ['.lock', '.lock.json', 'config.json']
    >>> life.close(); sorted(p.name for p in d.iterdir())
    ['.lock', 'config.json']
    """

    def __init__(self, out: Path | str, *, section: str, noun: str, what: str, files: Iterable[str] = (),
                 append: Iterable[str] = (), holds=None, has_results=None, resume_free: Iterable[str] = (),
                 model=None):
        self.out = Path(out)
        self.section, self.noun, self.what = section, noun, what
        self.files, self.append = tuple(files), tuple(append)
        self.holds = holds or (lambda path: False)
        self.has_results = has_results or self.holds
        self.resume_free = set(resume_free)
        #: The options' config model: a saved config written with old option spellings compares in its names.
        self.model = model
        self.rundir = RunDir(self.out)

    def open(self, options: dict[str, Any], *, resume: bool) -> None:
        """Lock the directory (held until :meth:`close`) and run every check before the first write."""
        self.check_not_foreign()
        self.rundir.open()
        if not resume and self.holds(self.out):
            raise ConfigError(f"{self.out} already holds {self.noun}; pass --resume to continue it "
                              "or choose another --output-dir")
        self.rundir.require_writable(*self.append, append=True)
        self.rundir.require_writable(*self.files)
        if resume:
            check_resume(self.out, self.section, options, self.resume_free,
                         holds_results=self.has_results(self.out), what=self.what, model=self.model)

    def check_not_foreign(self) -> None:
        """Refuse, before anything is created, a directory that belongs to something else: a run of the other
        kind (``harness run -o TRAIN_RUN``), a sweep's study directory, a model folder, or a folder inside
        another run directory."""
        out = self.out
        for parent in out.absolute().parents:
            if is_run_dir(parent):
                raise ConfigError(f"{out} lies inside the run directory {parent}; choose an --output-dir outside it")
        if is_study_dir(out):
            raise ConfigError(f"{out} is a study directory of harness sweep; choose another --output-dir")
        if is_model_dir(out):
            raise ConfigError(f"{out} is a model folder; choose another --output-dir")
        for section, names in KIND_FILES.items():
            theirs = [n for n in names if section != self.section and (out / n).exists()]
            if theirs:
                raise ConfigError(f"{out} holds a `{RECORD_COMMANDS[section]}` run ({', '.join(theirs)}), not one of "
                                  f"`{RECORD_COMMANDS[self.section]}`; choose another --output-dir")
        try:
            saved = json.loads((out / CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        other = [s for s in RECORD_COMMANDS if s != self.section and isinstance(saved, dict) and s in saved]
        if other:
            raise ConfigError(f"{out} holds a `{RECORD_COMMANDS[other[0]]}` run (its config.json), not one of "
                              f"`{RECORD_COMMANDS[self.section]}`; choose another --output-dir")

    def write_config(self, config: dict[str, Any]) -> None:
        from harness.core.results import write_json

        write_json(self.out / CONFIG, config)

    def write_record(self, record) -> None:
        """Write the :class:`~harness.core.record.RunRecord` atomically."""
        from harness.core.record import write_record

        write_record(self.out / RECORD, record)

    def close(self, discard: bool = False) -> None:
        self.rundir.close(discard=discard)


# ----------------------------------------------------------------------------- reading


def eval_samples_path(run_dir: Path | str, step: int, reported: bool = False) -> Path:
    """Where a training run keeps the episodes of the eval at ``step``: of the selection split, or
    (``reported``) of the reported split when it is another one.

    >>> eval_samples_path("run", 40).as_posix(), eval_samples_path("run", 40, reported=True).as_posix()
    ('run/eval_samples/step_00040.jsonl', 'run/eval_samples/reported/step_00040.jsonl')
    """
    folder = Path(run_dir) / EVAL_SAMPLES
    return (folder / REPORTED if reported else folder) / f"step_{int(step):05d}.jsonl"


def eval_steps(run_dir: Path | str, reported: bool = False) -> list[int]:
    """The steps of a training run's eval-sample files (of the reported split's, with ``reported``), ascending."""
    import re

    folder = Path(run_dir) / EVAL_SAMPLES
    folder = folder / REPORTED if reported else folder
    return sorted(int(m.group(1)) for p in folder.glob("step_*.jsonl")
                  if (m := re.fullmatch(r"step_(\d+)\.jsonl", p.name)))


def is_run_dir(path: Path | str) -> bool:
    """A directory holding any run file (or an ``eval_samples`` folder)."""
    path = Path(path)
    return path.is_dir() and (any((path / f).is_file() for f in RUN_FILES) or (path / EVAL_SAMPLES).is_dir())


#: What a study directory keeps (``harness sweep``); the rest of the folder is free for pages and figures.
STUDY_FILES = ("study.db", "summary.json", "trials")
#: A model folder the harness built records how (``harness micro build``, the ``tiny`` and warm-start caches).
BUILD_RECORD = "harness_build.json"


def is_study_dir(path: Path | str) -> bool:
    """A ``harness sweep`` output directory: holds study.db, summary.json or trials/ (the other folders the
    harness keeps; :mod:`harness.core.outputs` keeps every command off them)."""
    path = Path(path)
    return path.is_dir() and any((path / f).exists() for f in STUDY_FILES)


def is_model_dir(path: Path | str) -> bool:
    """A model folder: a Hugging Face ``config.json`` with weights (or a build record) beside it."""
    path = Path(path)
    return path.is_dir() and (path / CONFIG).is_file() and (
        (path / "model.safetensors").is_file() or (path / BUILD_RECORD).is_file())


def read_curve(path: Path | str, *, live: bool = False):
    """A training curve as a DataFrame sorted by step: ``RUN_DIR/curve.csv`` when given a directory.

    ``step`` must be a whole number >= 0 on every row, and unique; ``accuracy`` a number in [0, 1] or
    blank (a step without an eval); ``n`` (questions evaluated) a whole number >= 1 or blank. Anything
    else is a DataError naming the file and its line: a curve is never read with rows dropped.

    ``live=True`` is for a curve another process is writing (a sweep polling its trial): a missing,
    empty or half-written file gives None, and only the eval rows come back.
    """
    import pandas as pd

    path = Path(path)
    csv = path / CURVE if path.is_dir() else path
    try:
        if not csv.is_file():
            raise FileNotFoundError(f"no curve file at {csv}")
        curve = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (FileNotFoundError, pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        if live:
            return None
        if isinstance(e, FileNotFoundError):
            raise
        if isinstance(e, UnicodeDecodeError):
            raise DataError(f"{csv} is not UTF-8 text (byte {e.start}); is it a curve.csv?") from None
        raise DataError(f"{csv} is not a readable CSV ({_first_line(e)})") from None
    try:
        curve = _checked_curve(curve, csv)
    except DataError:
        if live:
            return None
        raise
    if live:
        curve = curve[curve["accuracy"].notna()].reset_index(drop=True)
        return curve if len(curve) else None
    return curve


def _checked_curve(raw, csv: Path):
    import math

    import pandas as pd

    for column in ("step", "accuracy"):
        if column not in raw.columns:
            raise DataError(f"{csv}: missing required column {column!r} (columns: {', '.join(map(str, raw.columns))})")
    curve = raw.apply(lambda col: pd.to_numeric(col.mask(col.str.strip() == ""), errors="coerce"))
    seen: set[float] = set()
    for i in range(len(raw)):
        line = i + 2  # the header is line 1
        text, step = raw["step"].iat[i], float(curve["step"].iat[i])
        if not (math.isfinite(step) and step >= 0 and step.is_integer()):
            raise DataError(f"{csv} line {line}: step {text!r} is not a whole number >= 0")
        if step in seen:
            raise DataError(f"{csv} line {line}: step {int(step)} appears twice")
        seen.add(step)
        acc_text, acc = raw["accuracy"].iat[i], float(curve["accuracy"].iat[i])
        if acc_text.strip() and not (math.isfinite(acc) and 0 <= acc <= 1):
            raise DataError(f"{csv} line {line}: accuracy {acc_text!r} is not a number in [0, 1] (a step without "
                            "an eval leaves it blank)")
        if "n" in raw.columns and raw["n"].iat[i].strip():
            n = float(curve["n"].iat[i])
            if not (math.isfinite(n) and n >= 1 and n.is_integer()):
                raise DataError(f"{csv} line {line}: n {raw['n'].iat[i]!r} is not a whole number >= 1")
    for column in curve.columns:  # text columns stay text (a column pandas could not read as numbers)
        if curve[column].isna().all() and raw[column].str.strip().ne("").any():
            curve[column] = raw[column]
    curve["step"] = curve["step"].astype("int64")
    return curve.sort_values("step", kind="mergesort").reset_index(drop=True)


def read_options(run_dir: Path | str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``config.json``'s options (its ``train`` or ``run`` section) and what a training run resolved them to
    (``resolved``: reward weights, train and eval noise, ...); empty mappings when there is no file.
    A DataError when the file is there but unreadable."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        return {}, {}
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not readable JSON ({_first_line(e)})") from None
    if not isinstance(cfg, dict):
        raise DataError(f"{path}: expected a JSON object")
    options = next((cfg[s] for s in ("train", "run") if isinstance(cfg.get(s), dict)), {})
    resolved = cfg.get("resolved") if isinstance(cfg.get("resolved"), dict) else {}
    return options, resolved


def read_samples(run_dir: Path | str) -> dict[tuple[str, float], list[dict]]:
    """``harness run``'s episodes grouped by (policy, noise level), in file order."""
    from harness.core.results import read_jsonl

    path = Path(run_dir) / SAMPLES
    out: dict[tuple[str, float], list[dict]] = {}
    for i, row in enumerate(read_jsonl(path), start=1):
        if "policy" not in row or "noise_level" not in row:
            raise DataError(f"{path}: episode {i} lacks 'policy' or 'noise_level'")
        out.setdefault((str(row["policy"]), float(row["noise_level"])), []).append(row)
    return out


def read_eval_samples(run_dir: Path | str, step: int, reported: bool = False) -> list[dict]:
    """The episodes of a training run's eval at ``step`` (the reported split's with ``reported``); a DataError
    when the file is missing."""
    from harness.core.results import read_jsonl

    path = eval_samples_path(run_dir, step, reported)
    if not path.is_file():
        raise DataError(f"{run_dir}: no eval samples for step {int(step)} ({path.name} is missing)")
    return read_jsonl(path)


def correct_by_question(rows: list[dict], where: str) -> dict[str, float]:
    """{question id: success rate} of episode rows: the share of the question's episodes (its K samples;
    one: 1.0 or 0.0) judged correct; a DataError naming ``where`` for a row without them.

    >>> correct_by_question([{"qid": "a", "correct": True}, {"qid": "b", "correct": False},
    ...                      {"qid": "a", "correct": False, "sample": 1}], "x")
    {'a': 0.5, 'b': 0.0}
    """
    hits: dict[str, list[bool]] = {}
    for r in rows:
        if "qid" not in r or "correct" not in r:
            raise DataError(f"{where}: a row lacks 'qid' or 'correct'")
        hits.setdefault(str(r["qid"]), []).append(bool(r["correct"]))
    return {q: sum(v) / len(v) for q, v in hits.items()}


def eval_outcomes(run_dir: Path | str, steps: Iterable[int]) -> dict[int, dict[str, float]]:
    """{step: {question id: success rate}} of a training run's evals (selection split) at ``steps``."""
    return {int(s): correct_by_question(read_eval_samples(run_dir, s), str(eval_samples_path(run_dir, s)))
            for s in steps}


@dataclass
class Outcomes:
    """Each question's success rate (1.0 / 0.0 with one sample) in one run, and which episodes they come from."""

    run: Path
    outcomes: dict[str, float]
    source: str
    step: int | None = None


def outcomes(run_dir: Path | str, step: int | None = None, policy: str | None = None,
             noise: float | None = None, reported: bool = True) -> Outcomes:
    """A training run's outcomes at ``step`` (default: its peak, the earliest best eval of the selection
    split): on the reported split (test) where it was evaluated at that step and ``reported``, else on the
    selection split; or an evaluation run's for one policy and noise level (chosen when the run holds several)."""
    run = Path(run_dir)
    if (run / EVAL_SAMPLES).is_dir():
        if step is None:
            curve = read_curve(run)
            evals = curve[curve["accuracy"].notna()]
            if not len(evals):
                raise DataError(f"{run}: its curve has no eval")
            step = int(evals.loc[evals["accuracy"].idxmax(), "step"])
        reported = reported and eval_samples_path(run, step, reported=True).is_file()
        rows = read_eval_samples(run, step, reported)
        path = eval_samples_path(run, step, reported)
        return Outcomes(run, correct_by_question(rows, str(path)), f"{path.relative_to(run)}", int(step))
    if not (run / SAMPLES).is_file():
        raise DataError(f"{run}: neither eval_samples/ (harness train) nor samples.jsonl (harness run)")
    groups = read_samples(run)
    chosen = [c for c in groups if (policy is None or c[0] == policy) and (noise is None or c[1] == noise)]
    if len(chosen) != 1:
        listed = ", ".join(f"{p} @ noise {n:g}" for p, n in sorted(groups))
        raise DataError(f"{run}: {'several' if chosen else 'no'} policy/noise combinations match "
                        f"({listed}); choose one with --policy and --noise")
    p, n = chosen[0]
    return Outcomes(run, correct_by_question(groups[(p, n)], str(run / SAMPLES)), f"samples.jsonl: {p} @ noise {n:g}")
