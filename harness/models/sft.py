"""Supervised warm starts: demonstrations played through the real environment, and one SFT loop.

Two places teach a model the tag protocol before RL: the ``micro`` build
(:mod:`harness.models.micro`, a task's scripted ``demonstrator`` hook) and
``harness train --warm-start N`` (:mod:`harness.train.warmstart`, the ``oracle-retry`` scripted
policy). Both go through the two functions here:

:func:`demonstrations`
    plays any policy (anything with the environment's ``generate(episodes, max_new_tokens)``
    protocol) through a real :class:`~harness.environment.env.Environment`, round after round with a
    fresh environment (fresh noise draws) per round, and yields the conversations;
:func:`train_sft`
    next-token loss on the labelled tokens of pre-tokenised examples (``-100`` = context), AdamW,
    optional warm-up + cosine decay and gradient clipping, in a fixed batch order.

Tokenisation stays with the caller (the micro build renders the chat template piece by piece; the
warm start uses the rollout's :class:`~harness.train.tokens.ChatGlue`), so each keeps the exact ids
its model was built with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from harness.data.loading import Question
from harness.environment.env import Environment, Policy

IGNORE = -100
Example = tuple[Sequence[int], Sequence[int]]  # (input ids, labels with IGNORE on context tokens)


def demonstrations(policy: Policy, make_env: Callable[[int], Environment], questions: list[Question],
                   rounds: int | None = None, through_last_assistant: bool = False) -> Iterator[list[dict]]:
    """Conversations of ``policy`` on ``questions``, played in ``make_env(0)``, ``make_env(1)``, ... .

    Each round rolls out every question once in a new environment (``make_env(round)``, e.g. a new
    noise seed); ``rounds=None`` goes on until the caller stops (take what you need with
    :func:`itertools.islice`). ``through_last_assistant`` drops what follows the last assistant
    message (an ``<information>`` block after a final search teaches nothing).
    """
    rnd = 0
    while rounds is None or rnd < rounds:
        for ep in make_env(rnd).rollout(policy, questions):
            msgs = ep.messages
            if through_last_assistant:
                last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=len(msgs) - 1)
                msgs = msgs[: last + 1]
            yield msgs
        rnd += 1


def mask_to_labels(ids: Sequence[int], mask: Sequence[int]) -> list[int]:
    """Labels for a 0/1 learn mask: the id where the mask is 1, :data:`IGNORE` elsewhere.

    >>> mask_to_labels([5, 6, 7], [0, 1, 1])
    [-100, 6, 7]
    """
    return [t if m else IGNORE for t, m in zip(ids, mask)]


@dataclass(frozen=True)
class SFTConfig:
    """One supervised run: ``steps`` AdamW steps of ``batch_size`` examples."""

    steps: int
    batch_size: int
    learning_rate: float
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    #: ``constant``, or ``cosine``: linear warm-up over ``warmup_steps``, then cosine down to ``min_lr_ratio``.
    schedule: str = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    #: Clip the gradient's global norm to this (``None``: no clipping).
    max_grad_norm: float | None = None
    #: Batch order: ``shuffle`` (a seeded permutation, then cycled) or ``cycle`` (examples in order).
    order: str = "cycle"
    seed: int = 0
    #: Keep a log row at the first step and every ``log_every`` steps.
    log_every: int = 25

    def lr_factor(self, step: int) -> float:
        """Multiplier of ``learning_rate`` at ``step`` (0-based).

        >>> c = SFTConfig(steps=10, batch_size=1, learning_rate=1.0, schedule="cosine", warmup_steps=2)
        >>> [round(float(c.lr_factor(s)), 3) for s in (0, 1, 2, 9)]
        [0.5, 1.0, 1.0, 0.134]
        """
        if self.schedule == "constant":
            return 1.0
        if self.schedule != "cosine":
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: constant, cosine")
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        frac = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + np.cos(np.pi * frac))

    def batches(self, n_examples: int) -> Iterator[list[int]]:
        """Example indices of each step's batch.

        >>> list(SFTConfig(steps=3, batch_size=2, learning_rate=1.0).batches(5))
        [[0, 1], [2, 3], [4, 0]]
        """
        if n_examples == 0:
            raise ValueError("no examples to train on")
        if self.order == "shuffle":
            order = np.random.default_rng(self.seed).permutation(n_examples)
        elif self.order == "cycle":
            order = np.arange(n_examples)
        else:
            raise ValueError(f"unknown order {self.order!r}; valid: shuffle, cycle")
        for step in range(self.steps):
            yield [int(order[(step * self.batch_size + j) % n_examples]) for j in range(self.batch_size)]


def collate(batch: Iterable[Example], pad_id: int):
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` tensors for one batch."""
    import torch

    batch = list(batch)
    width = max(len(ids) for ids, _ in batch)
    x = torch.full((len(batch), width), pad_id, dtype=torch.long)
    y = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    att = torch.zeros((len(batch), width), dtype=torch.long)
    for r, (ids, labels) in enumerate(batch):
        x[r, :len(ids)] = torch.tensor(ids)
        att[r, :len(ids)] = 1
        y[r, :len(labels)] = torch.tensor(labels)
    return x, att, y


def train_sft(model, examples: Sequence[Example], pad_id: int, cfg: SFTConfig,
              progress: Callable[[int, dict], None] | None = None) -> list[dict]:
    """Train ``model`` in place on ``examples``; returns the kept log rows (``step``, ``loss``, ``lr``).

    Deterministic given the model's initial weights, the examples and ``cfg`` (run it inside
    :func:`harness.models.rng.deterministic` for bit-for-bit repeatability on CPU). The model is left
    in eval mode.
    """
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay, betas=cfg.betas)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cfg.lr_factor)
    log: list[dict] = []
    model.train()
    for step, idx in enumerate(cfg.batches(len(examples))):
        x, att, y = collate((examples[i] for i in idx), pad_id)
        out = model(input_ids=x, attention_mask=att, labels=y)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        if cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        sched.step()
        row = {"step": step + 1, "loss": round(out.loss.item(), 4), "lr": sched.get_last_lr()[0]}
        if (step + 1) % cfg.log_every == 0 or step == 0:
            log.append(row)
        if progress:
            progress(1, row)
    model.eval()
    return log
