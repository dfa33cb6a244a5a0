"""What `--model` may name, and one line (not a transformers traceback) when it names nothing loadable."""

from __future__ import annotations

import pytest

from harness.core.errors import ConfigError
from harness.policies import check_model_name, hub_error_message, suggest_model

pytestmark = pytest.mark.tier("unit")


@pytest.mark.parametrize("typo, meant", [("orcale-retry", "oracle-retry"), ("closedbook", "closed-book"),
                                         ("one_search", "one-search"), ("mirco", "micro"), ("tinyy", "tiny")])
def test_a_misspelt_harness_name_is_refused_with_a_suggestion(typo, meant):
    assert suggest_model(typo) == meant
    with pytest.raises(ConfigError, match=rf"unknown model '{typo}': did you mean '{meant}'\?"):
        check_model_name(typo, "hf")


@pytest.mark.parametrize("name, backend", [("oracle-retry", "scripted"), ("micro", "hf"), ("tiny", "hf"),
                                           ("gpt2", "hf"), ("Qwen/Qwen2.5-3B-Instruct", "hf"),
                                           ("org/orcale-retry", "vllm"), ("hf", "lm-eval"),
                                           ("local-chat-completions", "lm-eval")])
def test_real_names_pass(name, backend):
    check_model_name(name, backend)


def test_an_existing_path_passes_whatever_its_name(tmp_path, monkeypatch):
    (tmp_path / "orcale-retry").mkdir()
    monkeypatch.chdir(tmp_path)
    check_model_name("orcale-retry", "hf")


def _chain(*errors: BaseException) -> BaseException:
    """errors[0] raised from errors[1] raised from ..."""
    for outer, inner in zip(errors, errors[1:]):
        outer.__cause__ = inner
    return errors[0]


def _http_error(cls):
    e = cls.__new__(cls)   # the hub's HTTP errors need a live response to construct; only the type matters here
    Exception.__init__(e, "404")
    return e


def test_hub_errors_become_one_line_that_says_why(monkeypatch):
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError

    offline = _chain(OSError("We couldn't connect to 'https://huggingface.co'"), LocalEntryNotFoundError("no cache"),
                     ConnectionError("Name or service not known"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    msg = hub_error_message("org/model", offline)
    assert "the Hugging Face hub cannot be reached" in msg and "hf download org/model" in msg and "\n" not in msg
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_HUB_OFFLINE is set" in hub_error_message("org/model", offline)
    assert "has no such model" in hub_error_message("org/nope", _chain(OSError("not found"),
                                                                     _http_error(RepositoryNotFoundError)))
    invalid = hub_error_message("a b", _chain(OSError("Repo id must use"), HFValidationError("Repo id must use")))
    assert "nor a valid hub id" in invalid


def test_other_errors_are_not_taken_for_hub_errors():
    assert hub_error_message("org/model", OSError("disk full")) is None
    assert hub_error_message("org/model", _chain(ValueError("bad dtype"), KeyError("x"))) is None
