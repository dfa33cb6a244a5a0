"""Build the ``micro`` policy: corpus tokenizer, a ~1.5M-parameter Llama, warm start on demonstrations.

Everything is deterministic on CPU for a given :class:`BuildSpec` (fixed seeds, a fixed number of
torch threads, deterministic algorithms, all scoped to the build by :func:`harness.models.rng.deterministic`),
so ``harness micro build`` rebuilds the same bytes and the calling process keeps its own torch settings.

Steps:
1. tokenizer: byte-level BPE trained on the chunks (as for ``tiny``) plus one token per word of the
   task's ``added_tokens`` hook (apollo3_micro: its code words); chat template with the protocol tags,
   which are plain (non-special) tokens so decoders that skip special tokens keep them;
2. demonstrations: episodes of the task's ``demonstrator`` hook (apollo3_micro: ``Demonstrator`` in
   ``tasks/apollo3_micro/hooks.py``) on the micro task's ``train+dev`` split (the training facts as they
   were before the dev split was carved out of them: the shipped weights were built on this list, and a
   build must keep reproducing them; GRPO training reads ``train``, without dev), played through the real
   environment under drop_gold noise (:func:`harness.models.sft.demonstrations`);
3. supervised warm start: next-token loss on the assistant turns only (the ``<information>`` blocks
   and prompts are context), AdamW with warm-up and cosine decay (:func:`harness.models.sft.train_sft`).

The output folder is a standard Hugging Face model folder (``config.json``, ``model.safetensors``,
tokenizer files with the chat template) plus ``harness_build.json`` (the spec and training log).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from harness.models.tiny import is_built

#: Bump when the build procedure changes in a way that changes the weights.
BUILD_VERSION = 1
#: Bump when the tokenizer files change but the ids (and so the weights) do not. 2: protocol tags non-special.
TOKENIZER_VERSION = 2
#: The task the micro policy is built for; its code (environment, demonstrator, code words) is reached
#: through the task's hooks (:meth:`harness.core.config.TaskConfig.hook`), never imported from its folder.
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

        blob = json.dumps({"spec": asdict(self), "corpus": corpus_checksum, "template": CHAT_TEMPLATE,
                           "tokenizer": TOKENIZER_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def build_tokenizer(texts: list[str], vocab: int, added: list[str]):
    """The ``tiny`` tokenizer recipe plus the ``added`` words (the task's ``added_tokens``) as whole tokens."""
    from tokenizers import AddedToken

    from harness.models.tiny import train_tokenizer

    tok = train_tokenizer(texts, vocab, protocol_ids_first=True)  # the ids the committed weights were built with
    tok.add_tokens([AddedToken(c, single_word=True, normalized=False) for c in added])
    return tok


def task_tokenizer(data, vocab: int):
    """:func:`build_tokenizer` on ``data``'s corpus with its task's ``added_tokens`` hook (none when undeclared)."""
    added = data.task.hook("added_tokens")
    return build_tokenizer(data.corpus.texts, vocab, list(added()) if added is not None else [])


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
    """``n`` demonstration conversations on the micro ``train+dev`` split (several passes, fresh noise each):
    the pre-dev training list the shipped weights were built on (see the module docstring)."""
    from itertools import islice

    from harness.core.config import NoiseConfig
    from harness.core.errors import ConfigError
    from harness.data.retrieval import build_retriever
    from harness.environment.env import Environment
    from harness.models.sft import demonstrations as play

    Demonstrator = data.task.hook("demonstrator")
    if Demonstrator is None:
        raise ConfigError(f"task {data.task.name} declares no demonstrator hook to warm-start a policy on")

    retriever = build_retriever(data.task.retrieval, data.corpus, "bm25")
    noise = NoiseConfig(level=spec.demo_noise, modes=("drop_gold",))

    def make_env(rnd: int) -> Environment:
        return Environment.from_task(data.task, data, noise=noise, seed=1000 * spec.seed + rnd, retriever=retriever)

    policy = Demonstrator(p_retry=spec.p_retry, seed=spec.seed)
    return list(islice(play(policy, make_env, data.split("train+dev")), n))


def sft_config(spec: BuildSpec):
    """The warm start's optimisation: AdamW, warm-up then cosine to 10%, clipping at 1, shuffled once."""
    from harness.models.sft import SFTConfig

    return SFTConfig(steps=spec.steps, batch_size=spec.batch_size, learning_rate=spec.learning_rate,
                     weight_decay=spec.weight_decay, betas=(0.9, 0.95), schedule="cosine",
                     warmup_steps=spec.warmup_steps, min_lr_ratio=0.1, max_grad_norm=1.0, order="shuffle",
                     seed=spec.seed, log_every=25)


def train(data, spec: BuildSpec, out_dir: Path, progress: Callable[[int, dict], None] | None = None) -> dict:
    """Tokenizer, model and warm start into ``out_dir``; returns the training log.

    Runs seeded, single-threaded (``spec.threads``) and with deterministic algorithms, all scoped to
    the build (:func:`harness.models.rng.deterministic`): the caller's torch state is unchanged after.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness.models.rng import deterministic
    from harness.models.sft import mask_to_labels, train_sft

    with deterministic(spec.seed, spec.threads):
        t0 = time.time()
        tok = task_tokenizer(data, spec.vocab)
        convs = demonstrations(data, spec, spec.steps * spec.batch_size)
        examples = []
        for c in convs:
            ids, mask = encode_conversation(tok, c)
            examples.append((ids, mask_to_labels(ids, mask)))
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
                          num_hidden_layers=spec.num_hidden_layers, num_attention_heads=spec.num_attention_heads,
                          num_key_value_heads=spec.num_attention_heads, max_position_embeddings=1024,
                          rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        model = LlamaForCausalLM(cfg)
        model.generation_config.pad_token_id = tok.pad_token_id
        model.generation_config.eos_token_id = tok.eos_token_id
        log = train_sft(model, examples, tok.pad_token_id, sft_config(spec), progress=progress)
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


def check_build_target(target: Path | str) -> Path:
    """``target`` when a build may replace it: absent, an empty folder, or a model folder a build wrote
    (it holds ``harness_build.json``); a ConfigError otherwise. The build swaps its folder in whole, so
    anything else there (a run directory's results, a user's files) would be deleted."""
    from harness.core.errors import ConfigError
    from harness.core.outputs import BUILD_RECORD, check_output, is_model_dir

    target = Path(target)
    if is_model_dir(target) and (target / BUILD_RECORD).is_file():
        return target
    check_output(target, "harness micro build", folder=True)
    if target.is_dir() and any(target.iterdir()):
        raise ConfigError(f"{target} holds files that are not a model build, and a build replaces the folder "
                          "whole; choose a new or empty folder (nothing was written)")
    return target


def build_micro(out_dir: Path | None = None, spec: BuildSpec = BuildSpec(), data=None, force: bool = False,
                progress: Callable[[int, dict], None] | None = None) -> Path:
    """Build (or reuse) the micro policy folder; returns its path.

    Built in a temp folder and swapped in whole (:func:`harness.core.io.atomic_build_dir`) under a
    file lock (:func:`harness.core.io.build_lock`): sweep workers that need the same build wait for
    the first one and reuse its folder instead of building twice or deleting each other's files.
    """
    from harness.core.io import atomic_build_dir, build_lock

    data = data or load_micro_data()
    target = Path(out_dir) if out_dir else default_path(data.corpus.checksum, spec)
    if is_built(target) and not force:
        return target
    with build_lock(target):
        if is_built(target) and not force:  # another process built it while this one waited
            return target
        atomic_build_dir(target, lambda tmp: train(data, spec, tmp, progress=progress))
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


def resolve_micro(data_dir: str | Path | None = None, corpus_checksum: str | None = None,
                  spec: BuildSpec = BuildSpec()) -> str:
    """The folder ``--model micro`` (or ``micro:p_retry=0.03``, any :class:`BuildSpec`) names: shipped weights
    when their spec matches, else the cache (keyed by the spec), else built now (with a bar)."""
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
