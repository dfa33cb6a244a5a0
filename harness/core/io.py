"""File-system primitives every layer uses: atomic writes, atomic directory swaps, slugs, build locks.

Run files are written through a temp file in the same folder and ``os.replace``, so a reader (or a
killed process) never sees half a file. Files get the mode an ordinary ``open()`` would give them
(``0o666`` less the umask), not ``mkstemp``'s private ``0o600``: every file of a run directory has
one mode.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write_text(d / "a.txt", "hello")
>>> (d / "a.txt").read_text()
'hello'
>>> slug("Qwen/Qwen2.5-3B Instruct!")
'Qwen_Qwen2.5-3B_Instruct'
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

_SLUG_RE = re.compile(r"[^A-Za-z0-9_.-]+")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open(path, "w")`` would create a file with here (0o666 less the umask)."""
    return 0o666 & ~_umask()


def slug(text: str, max_len: int = 80, keep: str = "head") -> str:
    """A file-name-safe version of ``text``: runs of other characters become ``_``; cut to ``max_len``.

    ``keep="tail"`` keeps the end (a model path's last component says more than its first).

    >>> slug("a b/c", 3), slug("org/model-name", 10, keep="tail")
    ('a_b', 'model-name')
    """
    s = _SLUG_RE.sub("_", text).strip("_")
    return s[-max_len:].lstrip("_") if keep == "tail" else s[:max_len]


_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_name(name: str, what: str = "name") -> str:
    """``name`` unchanged when it is safe as one path component, else ValueError saying why.

    Task, preset, ablation and data-file names become folder and file names (the data cache
    ``<cache>/<task>/``, ``runs/sweeps/<ablation>/``); a name is refused unless it is one plain
    component: letters, digits, ``_``, ``.`` and ``-``, not starting with ``.`` or ``-``, at most 128
    characters (so no ``/``, no ``..``, nothing absolute, nothing hidden).

    >>> check_name("apollo3_micro", "task name")
    'apollo3_micro'
    >>> check_name("../escaped", "ablation name")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    ValueError: ablation name '../escaped' is not a plain name: use letters, digits, '_', '.' and '-'
        (no '/', not starting with '.' or '-'); it becomes a folder name
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(f"{what} {name!r} is not a plain name: use letters, digits, '_', '.' and '-' (no '/', "
                         "not starting with '.' or '-'); it becomes a folder name")
    return name


def named(error: OSError, path: Path | str) -> OSError:
    """``error`` with ``path`` as its file name when it has none (``write()`` on a full disk raises
    ``OSError(28, 'No space left on device')`` naming no file); the command line prints it in one line.

    >>> named(OSError(28, "No space left on device"), "run/results.json")
    OSError(28, 'No space left on device')
    >>> named(OSError(28, "No space left on device"), "run/results.json").filename
    'run/results.json'
    """
    if error.filename is not None:
        return error
    return OSError(error.errno, error.strerror or str(error), str(path))


def atomic_write_bytes(path: Path | str, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temp file in the same folder, fsync, then ``os.replace``.

    A failed write (a full disk) leaves ``path`` as it was and raises an OSError naming ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise named(e, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_build_dir(target: Path | str, build: Callable[[Path], object]) -> Path:
    """Build a directory in a temp sibling with ``build(tmp)``, then swap it into ``target``.

    A failed or killed build leaves ``target`` as it was (the temp folder is removed on failure).
    Callers that may race with other processes hold :func:`build_lock` around this call.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "out"
    >>> _ = atomic_build_dir(d, lambda tmp: (tmp / "x").write_text("1"))
    >>> sorted(p.name for p in d.iterdir())
    ['x']
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        build(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
        swap_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def swap_dir(src: Path | str, target: Path | str) -> None:
    """Move the finished directory ``src`` onto ``target``, replacing what was there.

    The old directory is first renamed aside, so ``target`` never holds a mix of old and new files;
    a crash between the two renames leaves the old copy under ``.<name>.old.*``, never a half-copy.
    """
    src, target = Path(src), Path(target)
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old."))
        os.rmdir(old)
        os.replace(target, old)
    os.replace(src, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def build_lock(target: Path | str, timeout: float = 3600.0) -> Iterator[None]:
    """Hold an exclusive lock (``<target>.lock`` beside it) while a cached artefact is built.

    Sweep workers that need the same cached model or index wait for one another instead of deleting
    each other's half-finished build. The lock is a ``filelock.FileLock`` (released when the
    process dies).
    """
    from filelock import FileLock

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock"), timeout=timeout):
        yield
