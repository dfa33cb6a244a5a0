"""A few supervised steps on scripted demonstrations, so a random ``tiny`` model emits the tag protocol.

A randomly initialised model never writes ``<think>…</think><search>…</search>``, so every episode
scores 0 on every reward, no GRPO group has reward variance and no update happens. Smoke tests and
the training benchmark therefore start from a model nudged towards the protocol: the ``oracle-retry``
scripted policy runs through the real :class:`~harness.environment.env.Environment` (with noise, so some
demonstrations retry) and the model is trained briefly on those conversations (loss on assistant
tokens of the first turn). It stays far from solving the task, which keeps rewards varied within groups.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from harness.core.config import TaskConfig, make_noise
from harness.data.loading import TaskData


def demonstrations(task: TaskConfig, data: TaskData, n: int = 64, noise: float = 0.5) -> list[list[dict]]:
    """Conversations of the oracle-retry policy on the first ``n`` train questions."""
    from harness.environment.env import Environment
    from harness.policies.scripted import ScriptedPolicy

    env = Environment.from_task(task, data, noise=make_noise(noise, ["drop_gold"]), max_turns=4)
    episodes = env.rollout(ScriptedPolicy("oracle-retry", max_turns=4), data.split("train")[:n])
    return [ep.messages[: max(i for i, m in enumerate(ep.messages) if m["role"] == "assistant") + 1]
            for ep in episodes]


def _tokenize(tokenizer, conv: list[dict]) -> tuple[list[int], list[int]]:
    """Ids of the prompt and the first assistant turn, with labels on the turn only.

    Later turns sit behind ~500-token ``<information>`` blocks; the first turn is enough to teach
    the shape of the protocol and keeps each step cheap.
    """
    from harness.train.tokens import ChatGlue

    glue = ChatGlue(tokenizer)
    prompt, turn = glue.prompt_ids(conv[:2]), glue.encode(conv[2]["content"])
    return prompt + turn, [-100] * len(prompt) + turn


def warm_start(model_path: str, task: TaskConfig, data: TaskData, out_dir: Path, steps: int = 60,
               batch_size: int = 8, lr: float = 5e-3, seed: int = 0) -> Path:
    """Train ``model_path`` for ``steps`` steps on demonstrations; save to ``out_dir`` (reused if present)."""
    out_dir = Path(out_dir)
    if (out_dir / "model.safetensors").is_file():
        return out_dir
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    rows = [_tokenize(tok, c) for c in demonstrations(task, data)]
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for step in range(steps):
        batch = [rows[(step * batch_size + j) % len(rows)] for j in range(batch_size)]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.tensor([x + [tok.pad_token_id] * (width - len(x)) for x, _ in batch])
        labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in batch])
        mask = (torch.arange(width)[None, :] < torch.tensor([len(x) for x, _ in batch])[:, None]).long()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir


def cached_warm_start(model_path: str, task: TaskConfig, data: TaskData, steps: int, seed: int = 0) -> Path:
    """:func:`warm_start` into the user cache, keyed by the source model, steps and seed."""
    import hashlib

    from harness.data.loading import cache_root

    key = hashlib.sha256(f"{Path(model_path).resolve()}|{steps}|{seed}".encode()).hexdigest()[:12]
    return warm_start(model_path, task, data, cache_root() / "models" / f"warm-{key}", steps=steps, seed=seed)
