"""What every run records about itself (versions, git commit, machine) and the file helpers it writes with
(atomic JSON, append-only JSONL). The record itself is :class:`harness.core.record.RunRecord`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.core.errors import DataError
from harness.core.io import atomic_write_text, named

_PACKAGES = ("torch", "transformers", "trl", "datasets", "optuna", "bm25s", "faiss-cpu", "sentence-transformers",
             "lm_eval", "vllm", "numpy", "pandas", "peft", "accelerate")


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "harness": _version("retry-harness")}
    for p in _PACKAGES:
        v = _version(p)
        if v:
            out[p] = v
    return out


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_hash(cwd: Path | None = None) -> str | None:
    root = cwd or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()}
    # where a scheduler placed the run: the GPUs it was given (sweep --gpus-per-trial, Slurm) and its Slurm job
    for key in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURMD_NODENAME"):
        if key in os.environ:
            info[key.lower()] = os.environ[key]
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["cuda"] = torch.cuda.is_available()
        if info["cuda"]:
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(Path(path), json.dumps(obj, indent=2, default=_json_default, allow_nan=False) + "\n")


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def clean_nans(obj: Any) -> Any:
    """Replace NaN/inf floats by None so results stay valid JSON."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: clean_nans(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [clean_nans(v) for v in obj]
    return obj


def _drop_torn_tail(path: Path) -> None:
    """Cut a file back to its last newline: a killed writer's partial row must not prefix the next one."""
    if not path.is_file():
        return
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        block = min(size, 1 << 20)
        while True:
            f.seek(size - block)
            chunk = f.read(block)
            cut = chunk.rfind(b"\n")
            if cut >= 0 or block == size:
                f.truncate(size - block + cut + 1 if cut >= 0 else 0)
                return
            block = min(size, block * 2)


class JsonlAppender:
    """Append-only JSONL writer that flushes and fsyncs every row: a killed run keeps what it wrote."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(self.path)
        self._f = open(self.path, "a", encoding="utf-8")
        self._failed = False

    def write(self, row: dict) -> None:
        """Append one row; an OSError naming the file when it cannot be written (a full disk: the torn
        line is dropped when the file is next opened)."""
        line = json.dumps(clean_nans(row), default=_json_default) + "\n"
        try:
            self._f.write(line)
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as e:
            self._failed = True
            raise named(e, self.path) from None

    def close(self) -> None:
        try:
            self._f.close()
        except OSError as e:    # after a failed write the buffer cannot be flushed either: said once already
            if not self._failed:
                raise named(e, self.path) from None

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_jsonl(path: Path) -> list[dict]:
    """Read rows; a torn last line (from a killed writer) is skipped, any other bad line is a DataError.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "samples.jsonl"
    >>> _ = f.write_text('{"a": 1}\\n{"a": 2}\\n{"a"')
    >>> read_jsonl(f)
    [{'a': 1}, {'a': 2}]
    >>> _ = f.write_text('{"a": 1}\\n{"a": \\n{"a": 3}\\n')
    >>> read_jsonl(f)
    Traceback (most recent call last):
    ...
    harness.core.errors.DataError: .../samples.jsonl line 2 is not valid JSON (Expecting value, column 7); ...
    """
    rows: list[dict] = []
    path = Path(path)
    if not path.is_file():
        return rows
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines):
                break
            raise DataError(f"{path} line {i} is not valid JSON ({e.msg}, column {e.colno}); only a torn last line "
                            f"is skipped. Delete or repair that line (--resume runs a deleted episode again), "
                            f"or start again in a new --output-dir") from None
    return rows
