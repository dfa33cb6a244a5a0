"""``harness validate FILE``: check task, ablation and run-config files against the schemas they bind to.

A file is a task (``data`` and ``prompt``, or an ``include``), an ablation (``search_space`` or
``objective``), a run record (a run's ``config.json``), or a flat file of ``harness train`` /
``harness run`` options (what ``--config`` takes; checked against whichever of the two its keys belong to).

A task is checked as ``harness run`` would use it, up to its first episode: includes merged, schema,
reward weights, hooks (the same allowlist; each hook imported and checked to be what it must be),
reference policy names, and, when the data is on this machine, the data itself: the files or
dataset parsed, the ``process_data`` hook run, the split drawn and checked
(:func:`harness.data.loading.load_task_data`). Nothing is downloaded; without the data the data
checks are skipped and the result says so.
"""

from __future__ import annotations

from pathlib import Path

from harness.core.config import load_task
from harness.core.errors import ConfigError
from harness.core.options import RECORD_SECTIONS, aliases, load_config, read_mapping


def _config_models():
    from harness.evaluation.config import RunConfig
    from harness.train.config import TrainConfig

    return {"train": TrainConfig, "run": RunConfig}


def _check_config(path: Path, section: str) -> None:
    model = _config_models()[section]
    cfg = load_config(model, section, path, what=f"{section} config")
    if section == "train":
        from harness.train.config import resolve

        resolve(cfg)   # preset, reward weights, noise: what harness train checks before loading a model
    else:
        load_task(cfg.task, profile=cfg.protocol)


def check_task(path: Path, data_dir: str | Path | None = None) -> str:
    """Check a task file as ``harness run`` uses it (module docstring); returns a one-line summary."""
    from harness.core.config import HOOK_KINDS
    from harness.data.loading import data_available, load_task_data
    from harness.policies import check_model_name, infer_backend
    from harness.scoring.rewards import check_task_weights
    from harness.train.config import TrainConfig, task_defaults

    task = load_task(path)
    check_task_weights(task)
    for preset in task.presets or {"": None}:  # the training defaults (train:) of the task and each preset
        task_defaults(TrainConfig.model_construct(task=str(path), preset=preset), task)
    for kind in HOOK_KINDS:
        task.hook(kind)
    for model in task.reference_policies:
        check_model_name(model, infer_backend(model))
    missing = data_available(task, data_dir)
    if missing:
        return f"task; data checks skipped: {missing}"
    data = load_task_data(task, data_dir, download=False)
    return (f"task; data: {len(data.corpus)} chunks, {len(data.questions)} questions, "
            f"test {len(data.split('test'))}, dev {len(data.split('dev'))}, train {len(data.split('train'))}")


def _named(path: Path) -> Path:
    """``path``, or the file a shipped task's or ablation's name names (``apollo3``, ``micro_retry``)."""
    if path.exists() or "/" in str(path) or path.suffix:
        return path
    from harness.core.config import available_tasks, task_path
    from harness.sweep.ablation import ablation_path, available_ablations

    if str(path) in available_tasks():
        return task_path(str(path))
    if str(path) in available_ablations():
        return ablation_path(str(path))
    return path


def validate_file(path: Path, data_dir: str | Path | None = None) -> str:
    """Validate one file (or a shipped task or ablation by name); returns what kind of file it is, raises
    HarnessError naming file and key."""
    path = _named(Path(path))
    raw = read_mapping(path)
    if "include" in raw or ("data" in raw and "prompt" in raw):
        return check_task(path, data_dir)
    if "search_space" in raw or "objective" in raw:
        from harness.sweep.ablation import load_ablation

        load_ablation(path)
        return "ablation"
    for section, command in RECORD_SECTIONS.items():
        if isinstance(raw.get(section), dict):
            _check_config(path, section)
            return f"{command} record"
    keys = {k.replace("-", "_") for k in raw}
    fits = [s for s, m in _config_models().items() if keys <= set(m.model_fields) | set(aliases(m))]
    if raw and fits:
        for section in fits:
            _check_config(path, section)
        return " or ".join(f"{RECORD_SECTIONS[s]} config" for s in fits)
    raise ConfigError(f"{path}: neither a task (needs 'data' and 'prompt'), an ablation (needs 'search_space'), "
                      "a run record (config.json) nor a file of harness train / harness run options")
