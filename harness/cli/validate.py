"""``harness validate FILE``: check task, ablation and run-config files against the schemas they bind to.

A file is a task (``data`` and ``prompt``), an ablation (``search_space`` or ``objective``), a run
record (a run's ``config.json``), or a flat file of ``harness train`` / ``harness run`` options (what
``--config`` takes; checked against whichever of the two its keys belong to).
"""

from __future__ import annotations

from pathlib import Path

from harness.core.config import load_task
from harness.core.errors import ConfigError
from harness.core.options import RECORD_SECTIONS, load_config, read_mapping


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
        load_task(cfg.task)


def validate_file(path: Path) -> str:
    """Validate one file; returns what kind of file it is, raises ConfigError naming file and key."""
    path = Path(path)
    raw = read_mapping(path)
    if "data" in raw and "prompt" in raw:
        from harness.scoring.rewards import check_task_weights

        check_task_weights(load_task(path))
        return "task"
    if "search_space" in raw or "objective" in raw:
        from harness.sweep.ablation import load_ablation

        load_ablation(path)
        return "ablation"
    for section, command in RECORD_SECTIONS.items():
        if isinstance(raw.get(section), dict):
            _check_config(path, section)
            return f"{command} record"
    keys = {k.replace("-", "_") for k in raw}
    fits = [s for s, m in _config_models().items() if keys <= set(m.model_fields)]
    if raw and fits:
        for section in fits:
            _check_config(path, section)
        return " or ".join(f"{RECORD_SECTIONS[s]} config" for s in fits)
    raise ConfigError(f"{path}: neither a task (needs 'data' and 'prompt'), an ablation (needs 'search_space'), "
                      "a run record (config.json) nor a file of harness train / harness run options")
