"""Commands generated from config models: one ``--option`` per field, plus ``--config FILE``.

``config_command(TrainConfig, body, ...)`` returns a typer command whose options are the model's
fields (name, type, default, help from ``Field(description=...)``, extra flags from
:func:`harness.core.options.cli`), so adding a field adds the option. The values reach ``body`` as one
validated model, layered defaults < ``--config FILE`` < options given on the command line (an option
left at its default never overrides the file); see :func:`harness.core.options.load_config`.

How a field's type becomes an option: ``bool`` -> ``--x/--no-x``; ``int``/``float``/``str`` as they are;
``Literal[...]`` -> a choice; lists and anything else -> text the model parses (lists: comma-separated).

Options declared by hand (``harness search -k``, ``harness sweep --workers``, the ``bench`` commands)
say their bounds where they are declared, through :func:`bounded`: every number has a lower bound, and
a float must be finite (click's ranges let ``nan`` through, since ``nan < 0`` is false). Their text options
go through :func:`text`, which refuses an empty value.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from harness.core.options import SEED_MAX, flags_of, load_config

#: Parameter sources (by name: typer ships its own copy of click's enum) that mean "the user did not
#: say it", so the model's default applies, or the file's.
_NOT_GIVEN = ("DEFAULT", "DEFAULT_MAP")
_SCALARS = (bool, int, float, str)


def finite(value: Any) -> Any:
    """Option callback: a float option's value unless it is ``nan`` or infinite (the ranges of
    :func:`bounded` cannot say so: every comparison with ``nan`` is false)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def given(value: Any) -> Any:
    """Option callback: a text option's value unless it is empty or blank (``--retriever ''`` would search
    with the task's retriever, ``--storage ''`` would use the default storage, each without a word)."""
    if isinstance(value, str) and not value.strip():
        raise typer.BadParameter("empty value: give one, or leave the option out for its default")
    return value


def text(default: Any, *flags: str, **kw: Any) -> Any:
    """A text ``typer.Option`` that refuses an empty value (:func:`given`): every hand-declared text option
    but the few where empty means something (``bench env --model ''`` skips the model)."""
    return typer.Option(default, *flags, callback=given, **kw)


def bounded(default: Any, *flags: str, min: float, max: float | None = None, **kw: Any) -> Any:
    """A numeric ``typer.Option`` with its range said where it is declared (``min`` required) and, for floats,
    :func:`finite` as its check: ``--repeats -1``, ``-k 0``, ``--workers 0`` or ``--trial-timeout nan`` are
    refused by the command line in one message, exit 2, before any work.
    """
    return typer.Option(default, *flags, min=min, max=max, callback=finite, **kw)


def int_list(text: str, flag: str, *, min: int, max: int) -> tuple[int, ...]:  # noqa: A002 - as bounded()'s
    """A comma-separated list option of whole numbers, each in ``min .. max``, at least one; BadParameter
    naming ``flag`` otherwise.

    >>> int_list("1000, 2000", "--sizes", min=1, max=20000)
    (1000, 2000)
    """
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise typer.BadParameter("give at least one whole number", param_hint=flag)
    out = []
    for p in parts:
        try:
            v = int(p)
        except ValueError:
            raise typer.BadParameter(f"{p!r} is not a whole number", param_hint=flag) from None
        if not min <= v <= max:
            raise typer.BadParameter(f"{v} is not in {min} .. {max}", param_hint=flag)
        out.append(v)
    return tuple(out)


def seed_option(default: int = 0, help: str | None = None) -> Any:  # noqa: A002 - typer's name
    """``--seed``: 0 .. 2**32 - 1, what numpy and torch accept."""
    return bounded(default, "--seed", min=0, max=SEED_MAX, help=help)


def _strip_optional(annotation: Any) -> Any:
    """``X | None`` -> ``X`` (other unions unchanged)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def option_type(field: FieldInfo) -> Any:
    """The annotation typer sees for ``field``: scalars and ``Literal`` as they are, anything else as text.

    >>> option_type(FieldInfo.from_annotation(int)), option_type(FieldInfo.from_annotation(list[float] | None))
    (<class 'int'>, typing.Optional[str])
    """
    inner = _strip_optional(field.annotation)
    optional = inner is not field.annotation
    if inner not in _SCALARS and typing.get_origin(inner) is not Literal:
        inner = str                   # lists, mappings, ...: text that the model parses (lists: comma-separated)
    return Optional[inner] if optional else inner


def _help(field: FieldInfo) -> str | None:
    """The description as a sentence (a leading code name such as ``drop_gold`` or ``vLLM`` kept as is)."""
    text = field.description
    if not text:
        return None
    first = text.split(" ", 1)[0]
    if first.isalpha() and first.islower():
        text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def _decls(model: type[BaseModel], name: str, field: FieldInfo) -> list[str]:
    """The field's flags; a boolean's long flags get their negative (``--report/--no-report``)."""
    flags = flags_of(model, name)
    if _strip_optional(field.annotation) is bool:
        flags = [f"{f}/--no-{f[2:]}" if f.startswith("--") and "/" not in f else f for f in flags]
    return flags


def model_parameters(model: type[BaseModel]) -> list[inspect.Parameter]:
    """One keyword parameter (a ``typer.Option``) per field of ``model``."""
    params = []
    for name, field in model.model_fields.items():
        annotation = option_type(field)
        default = field.get_default(call_default_factory=True)
        if default is not None and not isinstance(default, _SCALARS):
            default = None                # shown as text the model parses; the model's default applies
        opt = typer.Option(default, *_decls(model, name, field), help=_help(field))
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=annotation))
    return params


def given_options(ctx: typer.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The values the user gave on the command line (not those left at their default)."""
    return {k: v for k, v in values.items() if getattr(ctx.get_parameter_source(k), "name", None) not in _NOT_GIVEN}


def config_command(model: type[BaseModel], body: Callable[[Any], Any], *, section: str, name: str,
                   doc: str) -> Callable[..., Any]:
    """A typer command with ``--config FILE`` and one option per field of ``model``, calling ``body(cfg)``.

    ``section`` is the key of the command's options in its run records (``config.json``), so a run's
    record is a valid ``--config``.
    """
    reserved = {"ctx", "config"} & set(model.model_fields)
    if reserved:
        raise TypeError(f"{model.__name__} has fields named like the command's own parameters: {reserved}")

    def command(ctx: typer.Context, config: Optional[Path] = None, **values: Any) -> Any:
        given = given_options(ctx, values)
        for k, v in given.items():
            if isinstance(v, Path):
                given[k] = str(v)
        cfg = load_config(model, section, config, overrides=given, what=f"{name} config")
        return body(cfg)

    config_opt = typer.Option(None, "--config", help=f"YAML or JSON file of {name} options (a run's config.json "
                              "works too); options given on the command line override it.")
    command.__signature__ = inspect.Signature([
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=config_opt, annotation=Optional[Path]),
        *model_parameters(model),
    ])
    command.__annotations__ = {}      # typer reads the types from the signature above
    command.__doc__ = doc
    command.__name__ = command.__qualname__ = name.replace(" ", "_").replace("-", "_")
    return command
