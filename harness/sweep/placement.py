"""Which GPUs each sweep worker's trials see (``harness sweep --workers N --gpus-per-trial G``).

A worker runs one trial at a time, so giving each worker its own ``G`` GPUs (through
``CUDA_VISIBLE_DEVICES``, which its trial processes inherit) means no two trials ever share a GPU. The
GPUs to share out are those visible to the sweep: ``CUDA_VISIBLE_DEVICES`` when it is set (ids or
UUIDs, as CUDA takes them), else the ones ``nvidia-smi -L`` lists. Asking for more than there are, or
for any on a machine without a GPU, is one ConfigError line before a worker starts.

>>> place(["0", "1", "2", "3"], workers=2, per_trial=2)
[['0', '1'], ['2', '3']]
>>> place(["0", "1", "2"], workers=3, per_trial=1)
[['0'], ['1'], ['2']]
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping

from harness.core.errors import ConfigError


def parse_visible(value: str) -> list[str]:
    """The devices a ``CUDA_VISIBLE_DEVICES`` value names; CUDA ignores everything from the first invalid
    entry on, and ``-1`` (or nothing) hides every GPU.

    >>> parse_visible("0,2"), parse_visible(""), parse_visible("-1"), parse_visible("1,-1,2")
    (['0', '2'], [], [], ['1'])
    >>> parse_visible("GPU-5d3c, MIG-1a2b")
    ['GPU-5d3c', 'MIG-1a2b']
    """
    out = []
    for item in (x.strip() for x in value.split(",")):
        if not item or item.startswith("-"):
            break
        out.append(item)
    return out


def nvidia_smi_gpus() -> list[str]:
    """Indices of the GPUs ``nvidia-smi -L`` lists (none when it is missing or fails)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        text = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [m.group(1) for m in re.finditer(r"^GPU (\d+):", text, re.M)]


def visible_gpus(env: Mapping[str, str] | None = None) -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else what ``nvidia-smi`` lists."""
    env = os.environ if env is None else env
    if "CUDA_VISIBLE_DEVICES" in env:
        return parse_visible(env["CUDA_VISIBLE_DEVICES"])
    return nvidia_smi_gpus()


def place(gpus: list[str], workers: int, per_trial: int) -> list[list[str]]:
    """Disjoint slices of ``per_trial`` GPUs, one per worker; a ConfigError when there are too few.

    >>> place(["0"], workers=2, per_trial=1)
    Traceback (most recent call last):
    ...
    harness.core.errors.ConfigError: --workers 2 x --gpus-per-trial 1 needs 2 GPUs; 1 is visible (0)
    """
    if per_trial < 1 or workers < 1:
        raise ConfigError(f"--workers ({workers}) and --gpus-per-trial ({per_trial}) must be at least 1")
    need = workers * per_trial
    if need > len(gpus):
        seen = f"{len(gpus)} {'is' if len(gpus) == 1 else 'are'} visible" + (f" ({', '.join(gpus)})" if gpus else "")
        raise ConfigError(f"--workers {workers} x --gpus-per-trial {per_trial} needs {need} GPUs; {seen}")
    return [gpus[w * per_trial:(w + 1) * per_trial] for w in range(workers)]


def worker_gpus(workers: int, per_trial: int | None, env: Mapping[str, str] | None = None) -> list[list[str]] | None:
    """Each worker's GPUs for ``--gpus-per-trial`` (None when not asked); refuses a machine without GPUs."""
    if per_trial is None:
        return None
    gpus = visible_gpus(env)
    if not gpus:
        env = os.environ if env is None else env
        why = ("CUDA_VISIBLE_DEVICES hides them all" if "CUDA_VISIBLE_DEVICES" in env
               else "nvidia-smi finds none" if shutil.which("nvidia-smi") else "there is no nvidia-smi")
        raise ConfigError(f"--gpus-per-trial needs CUDA GPUs and this machine shows none ({why}); "
                          "leave it out to run trials on the CPU")
    return place(gpus, workers, per_trial)


def worker_env(gpus: list[str] | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker process: ``base`` with its GPUs, if any, as ``CUDA_VISIBLE_DEVICES``.

    >>> worker_env(["2", "3"], {"PATH": "/bin"})
    {'PATH': '/bin', 'CUDA_VISIBLE_DEVICES': '2,3'}
    """
    env = dict(os.environ if base is None else base)
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    return env
