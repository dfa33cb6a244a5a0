"""Start a trial's ``harness`` process so that it dies with the worker that started it.

``python -m harness.sweep.child PARENT_PID harness ARGS...`` asks Linux to SIGKILL this process when
its parent dies (``PR_SET_PDEATHSIG``), checks the parent is still the one named (it may have died
before the request), then ``exec``s ``python -m harness ARGS...``; the request survives the exec.

It replaces a ``preexec_fn``, which runs Python between fork and exec and is unsafe while other
threads run (Optuna's heartbeat thread does). The worker starts this module with
``start_new_session=True`` (no Python before exec), so a Ctrl-C at the terminal reaches the worker,
which stops its trial itself. Elsewhere than Linux the request is skipped: a killed worker's trial
then finishes on its own.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Have this process killed when ``parent_pid`` (its parent) dies; exit now if it already has."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux
        return
    if os.getppid() != parent_pid:
        os._exit(1)


def command(parent_pid: int, args: list[str]) -> list[str]:
    """The argv that runs ``python -m harness ARGS`` as a child of ``parent_pid`` that dies with it.

    >>> command(42, ["train", "--config", "t.yaml"])[3:]
    ['42', 'train', '--config', 't.yaml']
    """
    return [sys.executable, "-m", "harness.sweep.child", str(parent_pid), *args]


def main(argv: list[str]) -> None:
    parent, args = int(argv[0]), argv[1:]
    die_with_parent(parent)
    os.execv(sys.executable, [sys.executable, "-m", "harness", *args])


if __name__ == "__main__":
    main(sys.argv[1:])
