"""Models built from a config, no download: ``tiny`` (random init, for smoke tests and training runs).

The tokenizer is a byte-level BPE trained on the task corpus with the protocol tags as single
tokens, saved with a chat template in the standard Hugging Face format, so the ``hf`` backend,
TRL and lm-eval load it by path like any hub model. Built deterministically into the cache
(``$HARNESS_CACHE_DIR/models/tiny-<hash>``) on first use.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from harness.data.loading import Corpus, cache_root

PROTOCOL_TOKENS = ["<think>", "</think>", "<search>", "</search>", "<answer>", "</answer>",
                   "<information>", "</information>"]
SPECIAL = {"bos": "<|bos|>", "eos": "<|end|>", "pad": "<|pad|>", "unk": "<|unk|>"}
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

#: The ``tiny`` architecture: a 2-layer Llama, 64 wide (about 0.3M parameters with a 2k vocabulary).
TINY_CONFIG = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2, "max_position_embeddings": 8192, "rope_theta": 10000.0,
               "tie_word_embeddings": True}
TINY_VOCAB = 2048


def _spec_hash(corpus: Corpus, spec: dict) -> str:
    blob = json.dumps({"corpus": corpus.checksum, **spec, "template": CHAT_TEMPLATE, "tokenizer": 2}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def train_tokenizer(texts: list[str], vocab_size: int = TINY_VOCAB, protocol_ids_first: bool = False):
    """Byte-level BPE over ``texts`` with protocol and role tags kept whole; returns a fast tokenizer.

    The protocol tags are plain added tokens, never *special* ones, so decoders that skip special
    tokens (lm-eval decodes with ``skip_special_tokens=True``) keep ``<search>``/``<answer>``.
    They get the ids after the BPE vocabulary; ``protocol_ids_first=True`` reserves ids right after
    the role tokens instead (the ``micro`` recipe, kept so its committed weights rebuild bit for bit;
    the tags are reserved before BPE training, then marked non-special: same ids, same merges).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = list(SPECIAL.values()) + ROLE_TOKENS + (PROTOCOL_TOKENS if protocol_ids_first else [])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    if protocol_ids_first:
        tok = _unmark_special(tok, PROTOCOL_TOKENS)
    else:
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in PROTOCOL_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=SPECIAL["bos"], eos_token=SPECIAL["eos"], pad_token=SPECIAL["pad"],
        unk_token=SPECIAL["unk"], additional_special_tokens=ROLE_TOKENS,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def _unmark_special(tok, contents: list[str]):
    """The same tokenizer with the added tokens ``contents`` flagged non-special (ids unchanged)."""
    from tokenizers import Tokenizer

    spec = json.loads(tok.to_str())
    for t in spec["added_tokens"]:
        if t["content"] in contents:
            t["special"] = False
    return Tokenizer.from_str(json.dumps(spec))


def build_tiny(corpus: Corpus, out_dir: Path | None = None, seed: int = 0,
               config_overrides: dict | None = None) -> Path:
    """Build (or reuse) the ``tiny`` model folder; returns its path. Deterministic for a given seed.

    Built in a temp folder and swapped in whole under a file lock, so concurrent sweep workers build
    it once (the others wait and reuse it); the global torch RNG is left as it was.
    """
    from harness.core.io import atomic_build_dir, build_lock

    spec = {"arch": {**TINY_CONFIG, **(config_overrides or {})}, "vocab": TINY_VOCAB, "seed": seed}
    target = Path(out_dir) if out_dir else cache_root() / "models" / f"tiny-{_spec_hash(corpus, spec)}"
    if is_built(target):
        return target
    with build_lock(target):
        if not is_built(target):  # else another process built it while this one waited
            atomic_build_dir(target, lambda tmp: _build_tiny_into(tmp, corpus, spec))
    return target


def is_built(path: Path) -> bool:
    """A model folder is complete when its config and weights are there (they are swapped in together)."""
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def _build_tiny_into(folder: Path, corpus: Corpus, spec: dict) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness.models.rng import seeded

    tok = train_tokenizer(corpus.texts, TINY_VOCAB)
    cfg = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, **spec["arch"])
    with seeded(spec["seed"]):
        model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    (folder / "harness_build.json").write_text(json.dumps(spec, indent=2))
