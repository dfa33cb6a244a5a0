"""A few supervised steps on scripted demonstrations, so a random ``tiny`` model emits the tag protocol.

A randomly initialised model never writes ``<think>…</think><search>…</search>``, so every episode
scores 0 on every reward, no GRPO group has reward variance and no update happens. Smoke tests and
the training benchmark therefore start from a model nudged towards the protocol: the ``oracle-retry``
scripted policy runs through the real :class:`~harness.environment.env.Environment` (with noise, so some
demonstrations retry) and the model is trained briefly on those conversations (loss on assistant
tokens of the first turn). It stays far from solving the task, which keeps rewards varied within groups.
"""

from __future__ import annotations

from pathlib import Path

from harness.core.config import TaskConfig, make_noise
from harness.data.loading import TaskData


def demonstrations(task: TaskConfig, data: TaskData, n: int = 64, noise: float = 0.5) -> list[list[dict]]:
    """Conversations of the oracle-retry policy on the first ``n`` train questions (up to its last turn)."""
    from harness.environment.env import Environment
    from harness.models.sft import demonstrations as play
    from harness.policies.scripted import ScriptedPolicy

    def make_env(rnd: int) -> Environment:
        return Environment.from_task(task, data, noise=make_noise(noise, ["drop_gold"]), max_turns=4)

    return list(play(ScriptedPolicy("oracle-retry", max_turns=4), make_env, data.split("train")[:n], rounds=1,
                     through_last_assistant=True))


def _tokenize(tokenizer, conv: list[dict]) -> tuple[list[int], list[int]]:
    """Ids of the prompt and the first assistant turn, with labels on the turn only.

    Later turns sit behind ~500-token ``<information>`` blocks; the first turn is enough to teach
    the shape of the protocol and keeps each step cheap.
    """
    from harness.models.sft import IGNORE
    from harness.train.tokens import ChatGlue

    glue = ChatGlue(tokenizer)
    prompt, turn = glue.prompt_ids(conv[:2]), glue.encode(conv[2]["content"])
    return prompt + turn, [IGNORE] * len(prompt) + turn


def warm_start(model_path: str, task: TaskConfig, data: TaskData, out_dir: Path, steps: int = 60,
               batch_size: int = 8, lr: float = 5e-3, seed: int = 0) -> Path:
    """Train ``model_path`` for ``steps`` steps on demonstrations; save to ``out_dir`` (reused if present).

    The folder is built in a temp sibling and swapped in whole under a file lock, so sweep workers
    that ask for the same warm start build it once; the global torch RNG is left as it was.
    """
    from harness.core.io import atomic_build_dir, build_lock
    from harness.models.tiny import is_built

    out_dir = Path(out_dir)
    if is_built(out_dir):
        return out_dir
    with build_lock(out_dir):
        if not is_built(out_dir):  # else another process built it while this one waited
            atomic_build_dir(out_dir, lambda tmp: _train_into(tmp, model_path, task, data, steps, batch_size, lr, seed))
    return out_dir


def _train_into(folder: Path, model_path: str, task: TaskConfig, data: TaskData, steps: int, batch_size: int,
                lr: float, seed: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.models.rng import seeded
    from harness.models.sft import SFTConfig, train_sft

    with seeded(seed):
        tok = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        rows = [_tokenize(tok, c) for c in demonstrations(task, data)]
        train_sft(model, rows, tok.pad_token_id, SFTConfig(steps=steps, batch_size=batch_size, learning_rate=lr,
                                                           order="cycle", seed=seed))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)


def cached_warm_start(model_path: str, task: TaskConfig, data: TaskData, steps: int, seed: int = 0,
                      lr: float = 5e-3) -> Path:
    """:func:`warm_start` into the user cache, keyed by the source model, steps, seed and learning rate (the
    default's key is the one earlier versions used, so their cached warm starts are found again)."""
    import hashlib

    from harness.data.loading import cache_root

    spec = f"{Path(model_path).resolve()}|{steps}|{seed}" + (f"|{lr!r}" if lr != 5e-3 else "")
    key = hashlib.sha256(spec.encode()).hexdigest()[:12]
    return warm_start(model_path, task, data, cache_root() / "models" / f"warm-{key}", steps=steps, lr=lr,
                      seed=seed)
