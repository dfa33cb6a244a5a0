"""What a ``--model`` name means: the harness's own CPU-built models by name, anything else unchanged."""

from __future__ import annotations

from harness.data.loading import Corpus


def resolve_model_path(model: str, corpus: Corpus | None = None) -> str:
    """``tiny`` and ``micro`` become built local folders; anything else (path or hub id) is returned unchanged.

    >>> resolve_model_path("Qwen/Qwen2.5-3B-Instruct")
    'Qwen/Qwen2.5-3B-Instruct'
    """
    if model == "micro":
        from harness.models.micro import resolve_micro

        return resolve_micro(corpus_checksum=corpus.checksum if corpus is not None else None)
    if model == "tiny":
        if corpus is None:
            raise ValueError("building the tiny model needs the task corpus")
        from harness.models.tiny import build_tiny

        return str(build_tiny(corpus))
    return model
