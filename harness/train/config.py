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

import logging
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.core.config import (
    NoiseConfig,
    RewardSemantics,
    RewardWeights,
    SemanticsOverride,
    StopAfterActionOverride,
    TaskConfig,
    load_task,
    make_noise,
    parse_weight_overrides,
    weights_field,
)
from harness.core.errors import ConfigError
from harness.core.options import (
    SEED_MAX,
    build,
    canonical,
    cli,
    finite_number,
    nonempty_list,
    normalise_keys,
    not_blank,
    unknown_keys,
)
from harness.scoring.rewards import check_task_weights, check_weights

log = logging.getLogger(__name__)

SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")
#: TRL 1.16's GRPO losses (GRPOConfig.loss_type).
LOSS_TYPES = ("grpo", "dapo", "dr_grpo", "bnpo", "cispo", "sapo", "luspo", "vespo")
SPLITS = ("test", "dev", "train", "train+dev", "all")


class TrainConfig(BaseModel):
    """Every option of ``harness train``; ``None`` means "the task's (or preset's) default".

    The command line is generated from these fields (name, type, default, ``description`` as help;
    ``cli(...)`` gives extra flags), and ablations validate against them: a field added here is an
    option of ``harness train``, of ``--config`` files and of sweeps, with nothing else to edit.
    """

    model_config = ConfigDict(extra="forbid")
    #: Options that may differ on --resume without changing the curve's prefix.
    RESUME_FREE: ClassVar[frozenset[str]] = frozenset({"resume", "report", "output_dir", "data_dir", "max_steps",
                                                       "stop_after", "threads", "eval_batch_size", "save_every",
                                                       "report_to"})

    task: str = Field("apollo3", description="task name (a folder under tasks/) or path to a task.yaml",
                      json_schema_extra=cli("--task", "-t"))
    preset: str = Field("rezero", description="task preset: reward weights and train noise (the shipped tasks': "
                        "rezero, baseline, retry_after_miss)")
    model: str = Field("tiny", description="model path or hub id, 'tiny' (built locally, CPU smoke runs), or 'micro' "
                       "(the shipped micro-scale policy, for apollo3_micro; 'micro:KEY=VALUE' builds a variant)",
                       json_schema_extra=cli("--model", "-m"))
    reward_weights: dict[str, float] | None = Field(None, description="override preset weights: 'retry=0,format=1' "
                                                    "(0 disables; a {name: weight} mapping in files)")
    train_noise: float | None = Field(None, ge=0, le=1, description="train noise level in [0,1] (default: preset)")
    train_noise_modes: list[str] | None = Field(None, description="drop_gold, paraphrase, random, shuffle "
                                                "(comma-separated; default: preset)",
                                                validation_alias=AliasChoices("train_noise_modes", "train_noise_mode"),
                                                json_schema_extra=cli("--train-noise-modes", "--train-noise-mode"))
    eval_noise: float | None = Field(None, ge=0, le=1, description="eval noise level in [0,1] (default: the task's)")
    eval_noise_modes: list[str] | None = Field(None, description="eval noise modes, comma-separated (default: the "
                                               "task's)", validation_alias=AliasChoices("eval_noise_modes",
                                                                                        "eval_noise_mode"),
                                               json_schema_extra=cli("--eval-noise-modes", "--eval-noise-mode"))
    eval_split: str = Field("test", description="the reported split: test (the default), dev, train, train+dev or "
                            "all; evaluated at each new best of the selection split and at the end")
    selection_split: str = Field("dev", description="the split checkpoints are selected on: the peak and peak/, "
                                 "--patience, --stop-on-collapse, sweep pruning and objectives read it (evaluated "
                                 "every --eval-every steps). 'test' selects on the reported questions as the paper "
                                 "did: an optimistic number")
    eval_reported: Literal["best", "every"] = Field("best", description="when the reported split is evaluated: at "
                                                    "each new best selection eval and at the end (best), or at every "
                                                    "eval (every: to measure what selecting on it would gain)")
    eval_samples: int = Field(1, ge=1, description="samples per question of every eval (avg@k, pass@k, maj@k; "
                              "give --eval-temperature > 0)")
    eval_temperature: float = Field(0.0, ge=0.0, description="sampling temperature of the evals (0 = greedy)")
    eval_limit: int | None = Field(None, ge=1, description="evaluate only the first N questions of each split")
    eval_every: int = Field(25, ge=1, description="evaluate every N steps (and at step 0 and the last)")
    save_every: int | None = Field(None, ge=1, description="checkpoint every K steps (default: --eval-every)")
    max_steps: int = Field(300, ge=1, description="GRPO steps")
    stop_after: int | None = Field(None, ge=1, description="stop after step N as if interrupted (resumable)")
    num_generations: int = Field(4, ge=2, description="GRPO group size: episodes per question per step",
                                 json_schema_extra=cli("--num-generations", "-G"))
    prompts_per_step: int = Field(2, ge=1, description="questions per step (batch = this x group size)")
    learning_rate: float = Field(1e-5, gt=0, description="learning rate",
                                 json_schema_extra=cli("--lr", "--learning-rate"))
    lr_scheduler: str = Field("constant", description="constant, constant_with_warmup, linear or cosine")
    warmup_steps: int = Field(0, ge=0, description="learning-rate warm-up steps")
    beta: float = Field(0.001, ge=0, description="KL coefficient (0 = no reference model)")
    epsilon: float = Field(0.2, gt=0, description="PPO clip range")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    adam_beta1: float = Field(0.9, ge=0, lt=1, description="Adam beta1")
    adam_beta2: float = Field(0.999, ge=0, lt=1, description="Adam beta2")
    weight_decay: float = Field(0.0, ge=0, description="weight decay")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="learning-rate warm-up as a share of max_steps "
                                "(instead of --warmup-steps)")
    optim: str = Field("adamw_torch_fused", description="optimizer, as transformers names it (its default "
                       "adamw_torch_fused; paged_adamw_8bit needs bitsandbytes and a GPU)")
    loss_type: Literal[LOSS_TYPES] = Field("dapo", description="TRL's GRPO loss: grpo, dapo, dr_grpo, bnpo, cispo, "
                                         "sapo, luspo (needs --importance-sampling-level sequence) or vespo")
    importance_sampling_level: Literal["token", "sequence"] = Field(
        "token", description="importance ratios per token, or one per sequence (sequence: GSPO)")
    epsilon_high: float | None = Field(None, gt=0, description="upper clip range (clip-higher, DAPO: 0.28; default: "
                                       "--epsilon)")
    entropy_coef: float = Field(0.0, ge=0, description="entropy bonus coefficient (TRL's entropy_coef; 0: off)")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="advantage scaling: by the group's reward std, the batch's, or none (Dr. GRPO)")
    mask_truncated_completions: bool = Field(False, description="leave episodes cut off by a limit out of the loss "
                                             "(DAPO)")
    sync_ref_model: bool = Field(False, description="move the reference model toward the policy every "
                                 "--ref-model-sync-steps steps (TR-DPO; needs --beta > 0 and full fine-tuning)")
    ref_model_mixup_alpha: float = Field(0.6, ge=0, le=1, description="reference sync mixing: ref = alpha x policy "
                                         "+ (1 - alpha) x ref")
    ref_model_sync_steps: int = Field(512, ge=1, description="steps between reference syncs")
    drop_zero_std_groups: bool = Field(False, description="leave groups whose rewards are all equal out of the loss "
                                       "(DAPO's dynamic-sampling filter, without its re-sampling; TRL has none)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of training rollouts")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling of training rollouts")
    max_turns: int | None = Field(None, ge=1, description="assistant turns per episode (default: the task's)")
    max_new_tokens: int | None = Field(None, ge=1, description="tokens per assistant turn (default: the task's)")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="seed of the model init, sampling, noise and data order")
    lora_rank: int = Field(0, ge=0, description="0 = full fine-tuning; > 0 = LoRA adapters of this rank (peft)")
    lora_alpha: int | None = Field(None, ge=1, description="LoRA alpha (default 2 x rank)")
    vllm: bool = Field(False, description="vLLM colocated generation (not implemented: explains why)")
    kl_alarm: float = Field(10.0, gt=0, description="record a fault when the logged KL exceeds this")
    zero_std_patience: int = Field(10, ge=1, description="record a fault after this many steps with no reward "
                                   "variance in any group")
    eval_batch_size: int = Field(64, ge=1, description="episodes evaluated together")
    warm_start: int = Field(0, ge=0, description="supervised steps on scripted demonstrations before GRPO "
                            "(random-init models such as tiny never emit the protocol otherwise)")
    warm_start_lr: float = Field(5e-3, gt=0, description="learning rate of the warm start (5e-3 suits a random "
                                 "tiny model; a pretrained model wants about 1e-5 to 1e-4)")
    threads: int | None = Field(1, ge=0, description="torch CPU threads; 1, the default, is the fastest measured on "
                                "a shared 2-core CPU (2 threads: 5-6x slower per step, docs/benchmarks.md); 0: "
                                "torch's own default (one per core), for an idle many-core CPU")
    output_dir: str | None = Field(None, description="run directory (default: runs/train-TASK-PRESET-MODEL-TIME)",
                                   json_schema_extra=cli("--output-dir", "-o"))
    data_dir: str | None = Field(None, description="task data folder (else $HARNESS_DATA_DIR, else the cache)")
    resume: bool = Field(False, description="continue from the last checkpoint in --output-dir")
    report: bool = Field(True, description="write report.html at the end")
    protocol: str | None = Field(None, description="a protocol profile of the task (rezero: ReZero's prompts, "
                                 "result format, retrieval and limits; see docs/reproduce.md); default: the task's")
    reward_semantics: SemanticsOverride = None
    stop_after_action: StopAfterActionOverride = None
    train_noise_schedule: Literal["constant", "curriculum"] = Field(
        "constant", description="train noise over the run: constant, or ZeroSearch's curriculum from "
        "--train-noise-start to the train noise level (harness.train.schedule)")
    train_noise_start: float = Field(0.0, ge=0, le=1, description="curriculum: the noise level it starts from (p_s)")
    train_noise_base: float = Field(4.0, gt=1, description="curriculum: the exponential base b of ZeroSearch's "
                                    "p_i = p_s + b^(i/m - 1) (p_e - p_s)")
    stop_on_collapse: bool = Field(False, description="end the run when the online collapse detector fires "
                                   "(harness.stats.detect; status stopped_collapse); same as --on-collapse stop")
    on_collapse: Literal["stop", "rollback"] | None = Field(
        None, description="what the online collapse detector does: stop the run, or roll back to the peak's weights "
        "and optimiser state, reset the reference model there, scale the learning rate by --rollback-lr-factor and "
        "go on (at most --max-rollbacks times, then stop); overrides --stop-on-collapse")
    rollback_lr_factor: float = Field(0.5, gt=0, le=1, description="learning-rate factor applied at each rollback")
    max_rollbacks: int = Field(2, ge=1, description="rollbacks before a collapse stops the run")
    patience: int | None = Field(None, ge=1, description="end the run after N evals without a statistically better "
                                 "one (status stopped_patience)")
    keep_peak: bool = Field(True, description="keep the best eval's model in RUN_DIR/peak/ (LoRA merged, tokenizer "
                            "included) with peak.json")
    report_to: list[str] | None = Field(None, description="also log TRL's steps and the harness's evals to "
                                        "tensorboard, wandb and/or mlflow (comma-separated; none: only curve.csv)")

    @field_validator("report_to", mode="before")
    @classmethod
    def _report_to(cls, v):
        from harness.train.reporting import report_targets

        v = nonempty_list(v)
        return None if v is None else report_targets([str(x) for x in v])

    _weights = field_validator("reward_weights", mode="before")(weights_field)
    _modes = field_validator("train_noise_modes", "eval_noise_modes", mode="before")(nonempty_list)
    _not_blank = field_validator("*", mode="before")(not_blank)
    _finite = field_validator("*")(finite_number)   # inf passes gt= and would crash the JSON after the work

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.lr_scheduler not in SCHEDULERS:
            raise ValueError(f"unknown lr scheduler {self.lr_scheduler!r}; valid: {', '.join(SCHEDULERS)}")
        for what, split in (("eval", self.eval_split), ("selection", self.selection_split)):
            if split not in SPLITS:
                raise ValueError(f"unknown {what} split {split!r}; valid: {', '.join(SPLITS)}")
        if self.warmup_ratio and self.warmup_steps:
            raise ValueError("give --warmup-steps or --warmup-ratio, not both")
        if self.stop_after is not None and self.stop_after > self.max_steps:
            raise ValueError(f"stop_after ({self.stop_after}) is past max_steps ({self.max_steps})")
        if self.loss_type == "luspo" and self.importance_sampling_level != "sequence":
            raise ValueError("loss_type luspo needs importance_sampling_level sequence (TRL 1.16)")
        if self.sync_ref_model and self.beta == 0:
            raise ValueError("sync_ref_model needs a reference model: beta > 0")
        if self.sync_ref_model and self.lora_rank:
            raise ValueError("sync_ref_model needs full fine-tuning (TRL 1.16 cannot sync a LoRA run's reference)")
        return self

    @property
    def collapse_action(self) -> str | None:
        """What a collapse the online detector finds does: ``stop``, ``rollback`` or None (nothing).

        >>> TrainConfig().collapse_action, TrainConfig(stop_on_collapse=True).collapse_action
        (None, 'stop')
        >>> TrainConfig(stop_on_collapse=True, on_collapse="rollback").collapse_action
        'rollback'
        """
        return self.on_collapse or ("stop" if self.stop_on_collapse else None)

    @classmethod
    def build(cls, **values) -> TrainConfig:
        """Construct from command-line values, raising ConfigError (not a pydantic trace)."""
        return build(cls, values, what="train config")


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


#: Options a task or preset cannot set for a run (they name the run itself, or where its files are).
NOT_TASK_DEFAULTS = frozenset({"task", "preset", "output_dir", "data_dir", "resume", "stop_after"})


def task_defaults(cfg: TrainConfig, task: TaskConfig | None = None) -> dict[str, Any]:
    """The options ``cfg``'s task and preset set (``train:`` in ``task.yaml``; the preset's over the task's),
    checked against :class:`TrainConfig`; a ConfigError naming the file and key otherwise.

    >>> sorted(task_defaults(TrainConfig(task="apollo3_micro")))
    ['learning_rate', 'num_generations', 'threads']
    """
    task = task or load_task(cfg.task, profile=cfg.protocol)
    preset = task.presets.get(cfg.preset)
    where = task.source or task.name
    out: dict[str, Any] = {}
    for label, layer in (("train", task.train), (f"presets.{cfg.preset}.train", preset.train if preset else {})):
        values = canonical(TrainConfig, normalise_keys(layer))
        bad = unknown_keys(TrainConfig, values, f"{where}: {label}.")
        bad += [f"{where}: {label}.{k}: a task cannot set {k}" for k in values if k in NOT_TASK_DEFAULTS]
        if bad:
            raise ConfigError("invalid task training defaults: " + "; ".join(bad))
        out.update(values)
    return out


def with_task_defaults(cfg: TrainConfig, task: TaskConfig | None = None) -> TrainConfig:
    """``cfg`` with the options its task and preset set (:func:`task_defaults`) where ``cfg`` left them at
    TrainConfig's defaults: TrainConfig defaults < task ``train`` < preset ``train`` < what the run set
    (command line or ``--config`` file). A run's own ``config.json`` sets every option, so re-running it
    ignores later task defaults.

    >>> cfg = with_task_defaults(TrainConfig(task="apollo3_micro", learning_rate=1e-3))
    >>> cfg.learning_rate, cfg.num_generations  # the run's own lr, the task's group size
    (0.001, 8)
    """
    defaults = task_defaults(cfg, task)
    explicit = cfg.model_dump(include=cfg.model_fields_set)
    unused = {k: v for k, v in defaults.items() if k not in explicit}
    if not unused:
        return cfg
    log.info("task %s, preset %s set %s", cfg.task, cfg.preset, ", ".join(f"{k}={v!r}" for k, v in unused.items()))
    return TrainConfig.build(**{**defaults, **explicit})


def resolve(cfg: TrainConfig, task: TaskConfig | None = None) -> ResolvedTrain:
    """Validate ``cfg`` against its task and resolve every default; raises ConfigError."""
    task = task or load_task(cfg.task, profile=cfg.protocol)
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
                             cfg.train_noise_modes or preset.train_noise.modes)
    eval_noise = make_noise(task.noise.level if cfg.eval_noise is None else cfg.eval_noise,
                            cfg.eval_noise_modes or task.noise.modes)
    semantics = cfg.reward_semantics or preset.reward_semantics or task.rewards.semantics
    stop = next(v for v in (cfg.stop_after_action, preset.stop_after_action, task.protocol.stop_after_action)
                if v is not None)
    return ResolvedTrain(task=task, weights=weights, train_noise=train_noise, eval_noise=eval_noise,
                         max_turns=cfg.max_turns or task.protocol.max_turns,
                         max_new_tokens=cfg.max_new_tokens or task.protocol.max_new_tokens,
                         save_every=cfg.save_every or cfg.eval_every, semantics=semantics, stop_after_action=stop)
