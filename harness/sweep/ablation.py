"""Ablation definitions (``ablations/*.yaml``): what a sweep varies, validated before anything runs.

An ablation names a task and preset, a base training config (``harness train`` options), a search
space, the objective, the sampler and the pruner. Unknown keys and impossible ranges are errors that
name the file and the key.

Search-space entries (``search_space: {name: spec}``)::

    reward.retry:   {type: categorical, choices: [0.0, 1.0]}     # a reward weight (0 = ablated)
    train_noise:    {type: float, low: 0.0, high: 0.6}             # train noise level
    train_noise_mode: {type: categorical, choices: [drop_gold, "drop_gold,paraphrase"]}
    learning_rate:  {type: float, low: 1e-6, high: 1e-4, log: true}
    seed:           {type: categorical, choices: [0, 1, 2]}        # seeds as a dimension

Parameter names other than ``reward.<name>`` are ``harness train`` options (dashes or
underscores); ``reward.*`` entries are merged into one ``--reward-weights`` override.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.core.config import load_task, read_yaml
from harness.core.errors import ConfigError
from harness.scoring.rewards import REWARDS

OBJECTIVES = ("peak", "auc", "final", "peak_and_collapse")
#: Train options a search-space or base entry may set (checked so typos fail before any trial runs).
TRAIN_OPTIONS = {
    "model", "preset", "max_steps", "eval_every", "eval_split", "eval_limit", "eval_noise", "eval_noise_mode",
    "train_noise", "train_noise_mode", "learning_rate", "lr_scheduler", "warmup_steps", "beta", "epsilon",
    "num_generations", "prompts_per_step", "max_turns", "max_new_tokens", "temperature", "top_p", "seed",
    "save_every", "lora_rank", "lora_alpha", "reward_weights", "max_grad_norm", "loss_type", "warm_start",
    "threads", "eval_batch_size", "kl_alarm", "zero_std_patience", "reward_semantics", "stop_after_action",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamSpec(_Strict):
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> "ParamSpec":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical needs a non-empty 'choices' list")
            if self.low is not None or self.high is not None:
                raise ValueError("categorical takes 'choices', not low/high")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"{self.type} needs 'low' and 'high'")
            if self.low > self.high:
                raise ValueError(f"impossible range: low {self.low} > high {self.high}")
            if self.log and self.low <= 0:
                raise ValueError("log scale needs low > 0")
        return self

    def grid_values(self) -> list[Any]:
        if self.type == "categorical":
            return list(self.choices)
        if self.step is None:
            raise ValueError("a grid over a numeric range needs 'step' (or use categorical choices)")
        n = int(round((self.high - self.low) / self.step)) + 1
        vals = [self.low + i * self.step for i in range(n)]
        return [int(v) for v in vals] if self.type == "int" else vals


class SamplerConfig(_Strict):
    name: Literal["tpe", "grid", "random"] = "tpe"
    seed: int = 0
    n_startup_trials: int = Field(5, ge=0)


class PrunerConfig(_Strict):
    name: Literal["median", "none", "hyperband"] = "median"
    n_startup_trials: int = Field(2, ge=0)
    n_warmup_steps: int = Field(0, ge=0)


class CollapseStop(_Strict):
    """Stop a trial once its curve has collapsed (its value is then its peak)."""

    enabled: bool = True
    delta: float = Field(0.5, gt=0, lt=1)
    m: int = Field(2, ge=1)


class Ablation(_Strict):
    name: str
    description: str = ""
    task: str = "apollo3"
    preset: str = "rezero"
    base: dict[str, Any] = {}
    search_space: dict[str, ParamSpec]
    objective: Literal["peak", "auc", "final", "peak_and_collapse"] = "peak"
    sampler: SamplerConfig = SamplerConfig()
    pruner: PrunerConfig = PrunerConfig()
    collapse_stop: CollapseStop = CollapseStop()
    n_trials: int | None = Field(None, ge=1)
    source: str | None = None

    @model_validator(mode="after")
    def _names(self) -> "Ablation":
        for key in list(self.base) + list(self.search_space):
            k = key.replace("-", "_")
            if k.startswith("reward."):
                if k[len("reward."):] not in REWARDS:
                    raise ValueError(f"unknown reward in '{key}'; valid: {', '.join(REWARDS)}")
            elif k not in TRAIN_OPTIONS:
                raise ValueError(f"unknown training option '{key}'; valid: {', '.join(sorted(TRAIN_OPTIONS))}")
        if self.sampler.name == "grid":
            for name, spec in self.search_space.items():
                try:
                    spec.grid_values()
                except ValueError as e:
                    raise ValueError(f"search_space.{name}: {e}") from None
        return self

    @property
    def directions(self) -> list[str]:
        return ["maximize", "maximize"] if self.objective == "peak_and_collapse" else ["maximize"]

    def grid_size(self) -> int:
        n = 1
        for spec in self.search_space.values():
            n *= len(spec.grid_values())
        return n


def load_ablation(path: str | Path) -> Ablation:
    path = Path(path)
    raw = read_yaml(path)
    try:
        ab = Ablation(**raw, source=str(path))
    except ValidationError as e:
        lines = [f"invalid ablation {path}:"]
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"  {loc or '(top level)'}: {msg}" if loc else f"  {msg}")
        raise ConfigError("\n".join(lines)) from None
    task = load_task(ab.task)
    if ab.preset not in task.presets:
        raise ConfigError(f"{path}: preset {ab.preset!r} is not in task {ab.task}; valid: {', '.join(task.presets)}")
    return ab
