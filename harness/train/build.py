"""Factories for the pieces of a training run: dataset, environments, rollout, GRPO config and trainer.

Each takes resolved values and returns one object; heavy imports (torch, TRL, peft) happen inside.
"""

from __future__ import annotations

from pathlib import Path

from harness.core.config import NoiseConfig
from harness.data.loading import Question, TaskData
from harness.environment.env import Environment
from harness.scoring.rewards import trl_reward
from harness.train.config import ResolvedTrain, TrainConfig


def make_dataset(env: Environment, questions: list[Question]):
    """The train split as a ``datasets.Dataset``: a conversational ``prompt`` and the ``qid``."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": env.new_episode(q).messages, "qid": q.qid} for q in questions])


def make_env(r: ResolvedTrain, data: TaskData, retriever, noise: NoiseConfig, seed: int) -> Environment:
    env = Environment.from_task(r.task, data, noise=noise, seed=seed, retriever=retriever, max_turns=r.max_turns,
                                stop_after_action=r.stop_after_action)
    env.max_new_tokens = r.max_new_tokens
    return env


def grpo_config(cfg: TrainConfig, r: ResolvedTrain, out: Path):
    """TRL's GRPOConfig for this run: one optimiser step per generation batch, logging every step."""
    import torch
    from trl import GRPOConfig

    cuda = torch.cuda.is_available()
    weights = r.weights.active()
    report_to = cfg.report_to or "none"   # TRL logs every step there too (harness.train.reporting)
    return GRPOConfig(
        output_dir=str(out / "checkpoints"), max_steps=cfg.max_steps, seed=cfg.seed, use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        per_device_train_batch_size=cfg.prompts_per_step * cfg.num_generations, gradient_accumulation_steps=1,
        num_generations=cfg.num_generations, learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio or cfg.warmup_steps,  # transformers 5: a float in [0, 1) is a ratio
        adam_beta1=cfg.adam_beta1,
        adam_beta2=cfg.adam_beta2, weight_decay=cfg.weight_decay, optim=cfg.optim, beta=cfg.beta, epsilon=cfg.epsilon,
        max_grad_norm=cfg.max_grad_norm,
        loss_type=cfg.loss_type, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0,
        **stability_options(cfg),
        reward_weights=list(weights.values()), logging_steps=1, save_strategy="steps",
        save_steps=r.save_every, save_total_limit=2, report_to=report_to, run_name=out.name, disable_tqdm=True,
        log_level="warning",
        remove_unused_columns=False, dataloader_num_workers=0,
    )


def stability_options(cfg: TrainConfig) -> dict:
    """The collapse remedies TRL's GRPOConfig has, from the run's options (TRL 1.16 names and meanings).

    >>> opts = stability_options(TrainConfig(epsilon_high=0.28, sync_ref_model=True))
    >>> opts["epsilon_high"], opts["sync_ref_model"], opts["entropy_coef"], "epsilon_high" in stability_options(
    ...     TrainConfig())
    (0.28, True, 0.0, False)
    """
    out = {"importance_sampling_level": cfg.importance_sampling_level, "entropy_coef": cfg.entropy_coef,
           "scale_rewards": cfg.scale_rewards, "mask_truncated_completions": cfg.mask_truncated_completions,
           "sync_ref_model": cfg.sync_ref_model, "ref_model_mixup_alpha": cfg.ref_model_mixup_alpha,
           "ref_model_sync_steps": cfg.ref_model_sync_steps}
    if cfg.epsilon_high is not None:
        out["epsilon_high"] = cfg.epsilon_high
    if cfg.epsilon_high is not None or cfg.importance_sampling_level == "sequence":
        import logging

        logging.getLogger(__name__).warning(
            "epsilon_high / importance_sampling_level=sequence act only through the importance ratio, which is exactly "
            "1 here (one optimiser step per batch): they change nothing (docs/remedies.md, 'Clipping is inert here')")
    return out


def lora_config(cfg: TrainConfig):
    if not cfg.lora_rank:
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha or 2 * cfg.lora_rank, lora_dropout=0.0,
                      target_modules="all-linear", task_type="CAUSAL_LM")


def make_trainer(cfg: TrainConfig, r: ResolvedTrain, out: Path, model_path: str, tokenizer, dataset, rollout,
                 callbacks: list):
    """A GRPOTrainer whose rollouts are our episodes and whose rewards are the task's active rewards."""
    import os

    from transformers.trainer_callback import PrinterCallback

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from harness.train.trainer import trainer_class

    trainer = trainer_class(cfg)(
        model=model_path, reward_funcs=[trl_reward(n, r.semantics) for n in r.weights.active()],
        args=grpo_config(cfg, r, out),
        train_dataset=dataset, processing_class=tokenizer, rollout_func=rollout, peft_config=lora_config(cfg),
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # our progress bar and curve.csv report every step
    return trainer


def load_tokenizer(model_path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
