"""Where a command may write: never over what the harness keeps for another command, never over a stranger's file.

The harness keeps its results in three kinds of folder:

    run directory      ``harness run`` / ``harness train`` output (:func:`harness.core.rundir.is_run_dir`:
                       config.json, results.json, samples.jsonl, curve.csv, eval_samples/, ...)
    study directory    ``harness sweep`` output: study.db, summary.json, trials/
    model folder       a built model (``harness micro build``: config.json, model.safetensors, harness_build.json)

A command that writes a file or a folder named on its command line (``harness report -o``, ``--figures``,
``harness cells -o``, ``harness micro build -o``, ``harness lmeval -o``, ``harness bench corpus -o``)
checks the path first with :func:`check_output`:

* a path that is, or lies inside, a run directory is refused, except the run's own ``report.html``
  when the command writes reports (``harness report RUN -o RUN/report.html`` redraws it);
* inside a study directory, what the sweep keeps (``study.db``, ``summary.json``, ``trials/``) is
  refused; a report, cells or figures beside them are fine;
* a path inside a model folder is refused;
* an existing file is replaced only when the command wrote it (``is_ours(path)``, e.g. an HTML page
  carrying the harness's generator tag), or with ``--force``.

Each refusal is one :class:`~harness.core.errors.ConfigError` line saying what the path belongs to.

>>> import tempfile, pathlib
>>> run = pathlib.Path(tempfile.mkdtemp()) / "run"; run.mkdir()
>>> _ = (run / "samples.jsonl").write_text("{}\\n")
>>> check_output(run / "samples.jsonl", "harness report", own=("report.html",))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
harness.core.errors.ConfigError: .../run/samples.jsonl is a file of the run directory .../run, which harness report ...
>>> check_output(run / "report.html", "harness report", own=("report.html",)).name
'report.html'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from harness.core.errors import ConfigError
from harness.core.rundir import BUILD_RECORD, STUDY_FILES, is_model_dir, is_run_dir, is_study_dir

__all__ = ["BUILD_RECORD", "STUDY_FILES", "check_output", "is_model_dir", "is_study_dir", "owner"]


def owner(path: Path | str) -> tuple[str, Path] | None:
    """The harness folder ``path`` is or lies inside, nearest first: ``("run directory", folder)``,
    ``("study directory", folder)`` or ``("model folder", folder)``; None when it belongs to none."""
    p = Path(path).absolute()
    for folder in (p, *p.parents):
        if is_run_dir(folder):
            return "run directory", folder
        if is_study_dir(folder):
            return "study directory", folder
        if is_model_dir(folder):
            return "model folder", folder
    return None


def _show(p: Path, like: Path | str) -> str:
    """``p`` spelled as the user spelled the path it came from (relative stays relative)."""
    return str(p) if Path(like).is_absolute() else str(_relative(p))


def _relative(p: Path) -> Path:
    try:
        return p.relative_to(Path.cwd())
    except ValueError:
        return p


def check_output(path: Path | str, command: str, *, own: Iterable[str] = (), folder: bool = False,
                 force: bool = False, is_ours: Callable[[Path], bool] | None = None) -> Path:
    """``path`` when ``command`` may write it (a file, or with ``folder=True`` a folder it writes into);
    ConfigError saying why not otherwise (module docstring). ``own`` names the files a run or study
    directory holds that ``command`` itself writes there (``report.html``)."""
    path = Path(path)
    found = owner(path)
    if found is not None:
        kind, root = found
        inside = path.absolute().relative_to(root)
        first = inside.parts[0] if inside.parts else ""
        where = f"the {kind} {_show(root, path)}"
        if kind != "model folder" and len(inside.parts) == 1 and first in set(own) and not folder:
            if path.is_dir():
                raise ConfigError(f"{path} is a folder; give a file name")
            return path               # the directory's own file of this command (its report.html)
        if not (kind == "study directory" and first not in STUDY_FILES):
            if not inside.parts:
                what = f"is a {kind}"
            elif path.exists():
                what = f"is a {'folder' if path.is_dir() else 'file'} of {where}"
            else:
                what = f"lies inside {where}"
            raise ConfigError(f"{path} {what}, which {command} does not write into; choose a path outside it "
                              "(nothing was written)")
    if folder:
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{path} exists and is not a folder; choose another")
        return path
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give a file name")
    if path.exists() and not force and not (is_ours and is_ours(path)):
        raise ConfigError(f"{path} exists and was not written by {command}; choose another path, or pass --force "
                          "to replace it")
    return path
