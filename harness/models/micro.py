"""Build the ``micro`` policy: corpus tokenizer, a ~1.5M-parameter Llama, warm start on demonstrations.

Everything is deterministic on CPU for a given :class:`BuildSpec` (fixed seeds, a fixed number of
torch threads, deterministic algorithms), so ``harness micro build`` rebuilds the same bytes.

Steps:
1. tokenizer: byte-level BPE trained on the chunks (as for ``tiny``) plus one token per code word
   of :data:`~harness.environment.micro.CODE_POOL`; chat template with the protocol tags;
2. demonstrations: :class:`~harness.models.micro_demos.Demonstrator` episodes on the micro task's *train*
   split, played through the real environment under drop_gold noise;
3. supervised warm start: next-token loss on the assistant turns only (the ``<information>`` blocks
   and prompts are context), AdamW with warm-up and cosine decay.

The output folder is a standard Hugging Face model folder (``config.json``, ``model.safetensors``,
tokenizer files with the chat template) plus ``harness_build.json`` (the spec and training log).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

#: Bump when the build procedure changes in a way that changes the weights.
BUILD_VERSION = 1
MICRO_TASK = "apollo3_micro"


@dataclass(frozen=True)
class BuildSpec:
    """Everything that determines the micro policy's bytes."""

    seed: int = 0
    vocab: int = 2048
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    steps: int = 300
    batch_size: int = 16
    learning_rate: float = 3e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    p_retry: float = 0.3
    demo_noise: float = 0.5
    threads: int = 1
    version: int = BUILD_VERSION

    def key(self, corpus_checksum: str) -> str:
        from harness.models.tiny import CHAT_TEMPLATE

        blob = json.dumps({"spec": asdict(self), "corpus": corpus_checksum, "template": CHAT_TEMPLATE}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def build_tokenizer(texts: list[str], vocab: int):
    """The ``tiny`` tokenizer recipe plus the code words as whole tokens."""
    from tokenizers import AddedToken

    from harness.environment.micro import CODE_POOL
    from harness.models.tiny import train_tokenizer

    tok = train_tokenizer(texts, vocab, protocol_special=True)  # the recipe the committed weights were built with
    tok.add_tokens([AddedToken(c, single_word=True, normalized=False) for c in CODE_POOL])
    return tok


def encode_conversation(tok, messages: list[dict]) -> tuple[list[int], list[int]]:
    """Token ids of a chat-templated conversation and a 0/1 mask of the assistant tokens to learn.

    Rendered piece by piece in the chat template's own layout (``harness.models.tiny.CHAT_TEMPLATE``), so
    the ids equal those of ``apply_chat_template`` (a test checks) and the mask is exact.
    """
    ids, mask = [tok.bos_token_id], [0]
    for m in messages:
        head = tok(f"<|{m['role']}|>\n", add_special_tokens=False)["input_ids"]
        body = tok(m["content"], add_special_tokens=False)["input_ids"]
        learn = m["role"] == "assistant"
        ids += head
        mask += [0] * len(head)
        ids += body
        mask += [int(learn)] * len(body)
        if learn:
            ids.append(tok.eos_token_id)
            mask.append(1)
        # the template's newline after each message is eaten by jinja's trim_blocks
    return ids, mask


def demonstrations(data, spec: BuildSpec, n: int) -> list[list[dict]]:
    """``n`` demonstration conversations on the micro train split (several passes, fresh noise each)."""
    from harness.core.config import NoiseConfig
    from harness.data.retrieval import build_retriever
    from harness.environment.env import Environment
    from harness.models.micro_demos import Demonstrator

    train = data.split("train")
    policy = Demonstrator(p_retry=spec.p_retry, seed=spec.seed)
    retriever = build_retriever("bm25", data.corpus, stopwords=data.task.retrieval.bm25_stopwords)
    out: list[list[dict]] = []
    rnd = 0
    while len(out) < n:
        env = Environment.from_task(data.task, data, noise=NoiseConfig(level=spec.demo_noise, modes=("drop_gold",)),
                                    seed=1000 * spec.seed + rnd, retriever=retriever)
        out.extend(ep.messages for ep in env.rollout(policy, train))
        rnd += 1
    return out[:n]


def _set_determinism(torch, spec: BuildSpec) -> None:
    torch.manual_seed(spec.seed)
    torch.set_num_threads(spec.threads)
    torch.use_deterministic_algorithms(True)


def train(data, spec: BuildSpec, out_dir: Path, progress: Callable[[int, dict], None] | None = None) -> dict:
    """Tokenizer, model and warm start into ``out_dir``; returns the training log."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    _set_determinism(torch, spec)
    t0 = time.time()
    tok = build_tokenizer(data.corpus.texts, spec.vocab)
    convs = demonstrations(data, spec, spec.steps * spec.batch_size)
    encoded = [encode_conversation(tok, c) for c in convs]
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
                      num_hidden_layers=spec.num_hidden_layers, num_attention_heads=spec.num_attention_heads,
                      num_key_value_heads=spec.num_attention_heads, max_position_embeddings=1024,
                      rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    opt = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=spec.weight_decay,
                            betas=(0.9, 0.95))

    def lr_at(step: int) -> float:
        if step < spec.warmup_steps:
            return (step + 1) / spec.warmup_steps
        frac = (step - spec.warmup_steps) / max(1, spec.steps - spec.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    order = np.random.default_rng(spec.seed).permutation(len(encoded))
    log: list[dict] = []
    model.train()
    for step in range(spec.steps):
        batch = [encoded[i] for i in order[step * spec.batch_size:(step + 1) * spec.batch_size]]
        width = max(len(ids) for ids, _ in batch)
        x = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
        y = torch.full((len(batch), width), -100, dtype=torch.long)
        att = torch.zeros((len(batch), width), dtype=torch.long)
        for r, (ids, mask) in enumerate(batch):
            x[r, :len(ids)] = torch.tensor(ids)
            att[r, :len(ids)] = 1
            y[r, :len(ids)] = torch.tensor([t if m else -100 for t, m in zip(ids, mask)])
        out = model(input_ids=x, attention_mask=att, labels=y)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        row = {"step": step + 1, "loss": round(out.loss.item(), 4), "lr": sched.get_last_lr()[0]}
        if (step + 1) % 25 == 0 or step == 0:
            log.append(row)
        if progress:
            progress(1, row)
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    n_params = sum(p.numel() for p in model.parameters())
    info = {"spec": asdict(spec), "n_params": n_params, "n_demonstrations": len(convs),
            "train_seconds": round(time.time() - t0, 1), "log": log, "torch": torch.__version__}
    (out_dir / "harness_build.json").write_text(json.dumps(info, indent=2))
    return info


def load_micro_data(data_dir: str | Path | None = None):
    from harness.core.config import load_task
    from harness.data.loading import load_task_data

    return load_task_data(load_task(MICRO_TASK), data_dir)


def default_path(corpus_checksum: str, spec: BuildSpec = BuildSpec()) -> Path:
    from harness.data.loading import cache_root

    return cache_root() / "models" / f"micro-{spec.key(corpus_checksum)}"


def is_built(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def build_micro(out_dir: Path | None = None, spec: BuildSpec = BuildSpec(), data=None, force: bool = False,
                progress: Callable[[int, dict], None] | None = None) -> Path:
    """Build (or reuse) the micro policy folder; returns its path. Written atomically."""
    data = data or load_micro_data()
    target = Path(out_dir) if out_dir else default_path(data.corpus.checksum, spec)
    if is_built(target) and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        train(data, spec, tmp, progress=progress)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def weights_digest(path: Path) -> str:
    """sha256 of ``model.safetensors`` (what the bit-for-bit rebuild test compares)."""
    h = hashlib.sha256((Path(path) / "model.safetensors").read_bytes())
    return h.hexdigest()


#: Where committed weights would live (used first when their spec is the default spec).
SHIPPED = Path(__file__).resolve().parent / "micro_weights"


def _shipped_matches(spec: BuildSpec) -> bool:
    meta = SHIPPED / "harness_build.json"
    return is_built(SHIPPED) and meta.is_file() and json.loads(meta.read_text()).get("spec") == asdict(spec)


def resolve_micro(data_dir: str | Path | None = None, corpus_checksum: str | None = None) -> str:
    """The folder ``--model micro`` names: shipped weights, else the cache, else built now (with a bar)."""
    spec = BuildSpec()
    if _shipped_matches(spec):
        return str(SHIPPED)
    if corpus_checksum is not None and is_built(default_path(corpus_checksum, spec)):
        return str(default_path(corpus_checksum, spec))
    import logging
    import sys

    from tqdm.auto import tqdm

    data = load_micro_data(data_dir)
    path = default_path(data.corpus.checksum, spec)
    if not is_built(path):
        logging.getLogger(__name__).warning("building the micro policy once (a few minutes on CPU) into %s", path)
        bar = tqdm(total=spec.steps, desc="micro warm start", unit="step", file=sys.stderr)
        build_micro(path, spec=spec, data=data, progress=lambda n, row: bar.update(n))
        bar.close()
    return str(path)
