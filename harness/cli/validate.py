"""``harness validate FILE``: check task and ablation YAML files against their schemas."""

from __future__ import annotations

from pathlib import Path

from harness.core.config import load_task, read_yaml
from harness.core.errors import ConfigError


def validate_file(path: Path) -> str:
    """Validate one file; returns what kind of file it is, raises ConfigError naming file and key."""
    path = Path(path)
    raw = read_yaml(path)
    if "data" in raw and "prompt" in raw:
        from harness.scoring.rewards import check_task_weights

        check_task_weights(load_task(path))
        return "task"
    if "search_space" in raw or "objective" in raw:
        from harness.sweep.ablation import load_ablation

        load_ablation(path)
        return "ablation"
    raise ConfigError(f"{path}: neither a task (needs 'data' and 'prompt') nor an ablation (needs 'search_space')")
