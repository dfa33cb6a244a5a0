"""One process per run directory: an exclusive lock for the run's lifetime and the checks before any write.

``harness run`` and ``harness train`` open their output directory through :class:`RunDir`:

    open              refuse a path that is a file or cannot be written (one-line ConfigError); create
                      the directory if needed, remembering whether this process created it; take
                      ``RUN_DIR/.lock`` (``filelock``, without waiting) and record the holder (pid, host,
                      command, start time) in ``RUN_DIR/.lock.json``
    require_writable  refuse up front, not after the last episode, a run file that could not be
                      written (a directory named ``results.json``, a read-only ``samples.jsonl``)
    close             give files that a library wrote private (0600) the umask's mode, like every other
                      run file; release the lock. ``discard=True`` removes a directory this process
                      created instead (a run that failed before writing anything leaves nothing behind)

A second process opening the same directory fails at once with a message naming the holder. The lock
is the OS's (``flock``): a killed holder releases it, so there is never a stale lock to delete by hand.

:func:`check_resume` is the one configuration check of ``--resume``: it refuses a directory whose
``config.json`` is missing (while results are there) or corrupt, or differs in an option that changes
what would be appended.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp()) / "run"
>>> rd = RunDir(d).open()
>>> rd.created, sorted(p.name for p in d.iterdir())
(True, ['.lock', '.lock.json'])
>>> RunDir(d).open()
Traceback (most recent call last):
...
harness.core.errors.ConfigError: ... is in use by another process (pid ...); wait for it to finish or choose another --output-dir
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
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError
from harness.core.io import atomic_write_text, file_mode

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
        raise ConfigError(f"cannot resume {run_dir}: its config.json is corrupt ({_first_line(e)}); {spoiled}") from None
    except (KeyError, TypeError) as e:
        raise ConfigError(f"cannot resume {run_dir}: its config.json has no '{section}' settings ({e}); "
                          f"{spoiled}") from None
    return saved


def check_resume(run_dir: Path, section: str, new: dict, free: Iterable[str], *, holds_results: bool,
                 what: str = "the results") -> None:
    """Refuse ``--resume`` unless the saved configuration is readable and equal on every option not in ``free``.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "config.json").write_text('{"run": {"seed": 0, "limit": 4}}')
    >>> check_resume(d, "run", {"seed": 0, "limit": 8}, {"limit"}, holds_results=True)
    >>> check_resume(d, "run", {"seed": 1, "limit": 4}, {"limit"}, holds_results=True)
    Traceback (most recent call last):
    ...
    harness.core.errors.ConfigError: cannot resume ... with a different configuration (seed: 0 -> 1); the results would mix two runs; use a new --output-dir
    """
    saved = saved_config(run_dir, section, holds_results=holds_results)
    if saved is None:
        return
    free = set(free)
    changed = sorted(k for k in new if k not in free and saved.get(k) != new[k])
    if changed:
        diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {new[k]!r}" for k in changed)
        raise ConfigError(f"cannot resume {run_dir} with a different configuration ({diffs}); "
                          f"{what} would mix two runs; use a new --output-dir")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
