"""What the command line says when a run is interrupted: what was saved, and the command that continues it."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Sequence

#: Options that name the output directory (the hint names it once, as ``-o``).
OUTPUT_FLAGS = ("-o", "--output-dir")


def resume_command(args: Sequence[str], out: str | Path, drop: Sequence[str] = ()) -> str:
    """The command that continues an interrupted run: the same arguments, then ``--resume -o OUT`` (a run whose
    folder was chosen for it must be named, or ``--resume`` would start a new one); the options ``drop`` are
    left out with their values (``--stop-after``: the step the run already stopped at).

    >>> resume_command(["run", "--model", "micro", "--noise", "0,0.5"], "runs/apollo3_micro-micro-20260101-120000")
    'harness run --model micro --noise 0,0.5 --resume -o runs/apollo3_micro-micro-20260101-120000'
    >>> resume_command(["train", "-o", "my run", "--resume", "--output-dir=x", "--lr", "1e-4", "--stop-after", "3"],
    ...                "my run", drop=["--stop-after"])
    "harness train --lr 1e-4 --resume -o 'my run'"
    """
    with_value = (*OUTPUT_FLAGS, *drop)
    kept: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in with_value:
            skip = True
            continue
        if a == "--resume" or any(a.startswith(f"{f}=") for f in with_value if f.startswith("--")):
            continue
        kept.append(a)
    return shlex.join(["harness", *kept, "--resume", "-o", str(out)])


def interrupted_message(saved: int, unit: str, args: Sequence[str], out: str | Path) -> str:
    """Two lines for an interrupted run: what was saved where, and how to continue (or that nothing was saved).

    >>> print(interrupted_message(64, "episode", ["run", "--model", "micro"], "runs/x"))
    interrupted: 64 finished episodes are saved in runs/x
    continue with: harness run --model micro --resume -o runs/x
    >>> interrupted_message(0, "episode", ["run"], "runs/x")
    'interrupted before the first episode finished: nothing was saved'
    """
    if saved <= 0:
        return f"interrupted before the first {unit} finished: nothing was saved"
    return (f"interrupted: {saved} finished {unit}{'s' if saved != 1 else ''} "
            f"{'are' if saved != 1 else 'is'} saved in {out}\ncontinue with: {resume_command(args, out)}")
