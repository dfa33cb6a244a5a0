"""Every option of ``harness train`` in one typed config, resolved against the task before a model loads.

Layering: task defaults < preset (``tasks/<task>/task.yaml`` ``presets:``) < command-line values.
:func:`resolve` turns a :class:`TrainConfig` into a :class:`ResolvedTrain` (reward weights, train and
eval noise, protocol limits) and raises :class:`~harness.core.errors.ConfigError` with one clear message on
anything malformed, so a bad preset name or weight never costs a model load.

>>> cfg = TrainConfig(preset="baseline", reward_weights="format=0")
>>> r = resolve(cfg)
>>> sorted(r.weights.active())
['correctness', 'em_chunk']
>>> r.train_noise.level, r.eval_noise.level
(0.3, 0.0)
>>> r.semantics, r.stop_after_action
('rezero', False)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.core.config import (
    NoiseConfig,
    RewardSemantics,
    RewardWeights,
    TaskConfig,
    load_task,
    make_noise,
    parse_weight_overrides,
)
from harness.core.errors import ConfigError
from harness.scoring.rewards import check_task_weights, check_weights

SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")
SPLITS = ("train", "test", "all")


class TrainConfig(BaseModel):
    """Every option of ``harness train``; ``None`` means "the task's (or preset's) default"."""

    model_config = ConfigDict(extra="forbid")

    task: str = "apollo3"
    preset: str = Field("rezero", description="a preset of the task: reward weights and train noise")
    model: str = Field("tiny", description="model path or hub id, or 'tiny' (built from the corpus, no download)")
    reward_weights: str | None = Field(None, description="overrides of the preset's weights: 'retry=0,format=1'")
    train_noise: float | None = Field(None, description="train noise level (default: the preset's)")
    train_noise_mode: str | None = Field(None, description="train noise modes, comma-separated (default: preset's)")
    eval_noise: float | None = Field(None, description="eval noise level (default: the task's)")
    eval_noise_mode: str | None = None
    eval_split: str = "test"
    eval_limit: int | None = Field(None, ge=1)
    eval_every: int = Field(25, ge=1)
    save_every: int | None = Field(None, ge=1, description="checkpoint every K steps (default: eval_every)")
    max_steps: int = Field(300, ge=1)
    stop_after: int | None = Field(None, ge=1, description="stop as if interrupted after this step (resumable)")
    num_generations: int = Field(4, ge=2, description="GRPO group size: episodes per question per step")
    prompts_per_step: int = Field(2, ge=1, description="questions per step (batch = this x num_generations)")
    learning_rate: float = Field(1e-5, gt=0)
    lr_scheduler: str = "constant"
    warmup_steps: int = Field(0, ge=0)
    beta: float = Field(0.001, ge=0, description="KL coefficient (0 = no reference model)")
    epsilon: float = Field(0.2, gt=0, description="PPO clip range")
    max_grad_norm: float = Field(1.0, gt=0)
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = "dapo"
    temperature: float = Field(1.0, gt=0, description="sampling temperature of training rollouts")
    top_p: float = Field(1.0, gt=0, le=1)
    max_turns: int | None = Field(None, ge=1)
    max_new_tokens: int | None = Field(None, ge=1, description="per assistant turn")
    seed: int = 0
    lora_rank: int = Field(0, ge=0, description="0 = full fine-tuning; > 0 = LoRA adapters of this rank (peft)")
    lora_alpha: int | None = Field(None, ge=1)
    vllm: bool = False
    kl_alarm: float = Field(10.0, gt=0, description="record a fault when the logged KL exceeds this")
    zero_std_patience: int = Field(10, ge=1, description="record a fault after this many steps with no reward "
                                   "variance in any group")
    eval_batch_size: int = Field(64, ge=1)
    warm_start: int = Field(0, ge=0, description="supervised steps on scripted demonstrations before GRPO "
                            "(harness.train.warmstart; for random-init models such as tiny)")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")
    output_dir: str | None = None
    data_dir: str | None = None
    resume: bool = False
    report: bool = True
    reward_semantics: RewardSemantics | None = Field(
        None, description="reward semantics: 'rezero' (ReZero's reward code, rule for rule) or 'strict' (the "
        "project's stricter rules); see docs/rewards.md (default: the preset's)")
    stop_after_action: bool | None = Field(
        None, description="protocol: stop each turn at its first action (true, Search-R1) or keep the whole "
        "message as ReZero's agent does (false) (default: the preset's)")
    stop_on_collapse: bool = Field(False, description="end the run when the online collapse detector fires "
                                   "(harness.analysis.detect; status stopped_collapse)")
    patience: int | None = Field(None, ge=1, description="end the run after N evals without a statistically better "
                                 "one (status stopped_patience)")
    keep_peak: bool = Field(True, description="keep the best eval's model in RUN_DIR/peak/ (LoRA merged, tokenizer "
                            "included) with peak.json")

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.lr_scheduler not in SCHEDULERS:
            raise ValueError(f"unknown lr scheduler {self.lr_scheduler!r}; valid: {', '.join(SCHEDULERS)}")
        if self.eval_split not in SPLITS:
            raise ValueError(f"unknown eval split {self.eval_split!r}; valid: {', '.join(SPLITS)}")
        if self.stop_after is not None and self.stop_after > self.max_steps:
            raise ValueError(f"stop_after ({self.stop_after}) is past max_steps ({self.max_steps})")
        return self

    @classmethod
    def build(cls, **values) -> "TrainConfig":
        """Construct from command-line values, raising ConfigError (not a pydantic trace)."""
        try:
            return cls(**values)
        except ValidationError as e:
            msgs = [f"--{'.'.join(map(str, err['loc'])).replace('_', '-')}: {err['msg']}" if err["loc"]
                    else err["msg"].removeprefix("Value error, ") for err in e.errors()]
            raise ConfigError("invalid train config: " + "; ".join(msgs)) from None


class ResolvedTrain(BaseModel):
    """What a TrainConfig means for its task: the values actually used, written to config.json."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    task: TaskConfig
    weights: RewardWeights
    train_noise: NoiseConfig
    eval_noise: NoiseConfig
    max_turns: int
    max_new_tokens: int
    save_every: int
    semantics: RewardSemantics
    stop_after_action: bool

    def to_dict(self, cfg: TrainConfig) -> dict:
        return {"train": cfg.model_dump(), "resolved": {
            "reward_weights": self.weights.model_dump(), "active_rewards": list(self.weights.active()),
            "reward_semantics": self.semantics, "stop_after_action": self.stop_after_action,
            "train_noise": self.train_noise.model_dump(), "eval_noise": self.eval_noise.model_dump(),
            "max_turns": self.max_turns, "max_new_tokens": self.max_new_tokens, "save_every": self.save_every,
        }, "task": self.task.model_dump()}


def resolve(cfg: TrainConfig, task: TaskConfig | None = None) -> ResolvedTrain:
    """Validate ``cfg`` against its task and resolve every default; raises ConfigError."""
    task = task or load_task(cfg.task)
    if cfg.preset not in task.presets:
        raise ConfigError(f"unknown preset {cfg.preset!r} for task {task.name}; "
                          f"available: {', '.join(sorted(task.presets)) or 'none'}")
    if cfg.vllm:
        raise ConfigError("--vllm is not implemented for harness train: multi-turn rollouts interleave generation "
                          "with environment turns and generate with transformers (see harness.train.rollout). "
                          "Use the default transformers generation, or --lora-rank to cut memory on a GPU.")
    preset = task.presets[cfg.preset]
    check_task_weights(task)
    weights = check_weights(parse_weight_overrides(cfg.reward_weights, preset.reward_weights), "--reward-weights")
    bad = {k: v for k, v in weights.model_dump().items() if v < 0}
    if bad:
        raise ConfigError(f"reward weights must be >= 0 (0 disables a reward); got {bad}")
    if not weights.active():
        raise ConfigError("every reward weight is 0: GRPO needs at least one reward")
    train_noise = make_noise(preset.train_noise.level if cfg.train_noise is None else cfg.train_noise,
                             cfg.train_noise_mode or preset.train_noise.modes)
    eval_noise = make_noise(task.noise.level if cfg.eval_noise is None else cfg.eval_noise,
                            cfg.eval_noise_mode or task.noise.modes)
    semantics = cfg.reward_semantics or preset.reward_semantics or task.rewards.semantics
    stop = next(v for v in (cfg.stop_after_action, preset.stop_after_action, task.protocol.stop_after_action)
                if v is not None)
    return ResolvedTrain(task=task, weights=weights, train_noise=train_noise, eval_noise=eval_noise,
                         max_turns=cfg.max_turns or task.protocol.max_turns,
                         max_new_tokens=cfg.max_new_tokens or task.protocol.max_new_tokens,
                         save_every=cfg.save_every or cfg.eval_every, semantics=semantics, stop_after_action=stop)
