"""Config models as the one declaration of every option: command-line flags, config files, layering.

A config model (pydantic: :class:`~harness.train.config.TrainConfig`,
:class:`~harness.evaluation.config.RunConfig`) declares each option once: name, type, default,
constraints and help (``Field(description=...)``). The command line is generated from those fields
(:mod:`harness.cli.options`); this module holds what needs no CLI library:

=========================  ==========================================================================
``cli(*flags)``            field metadata: the option's flags when they differ from ``--field-name``
``flags_of(model, name)``  the flags a field gets on the command line
``read_config_file``       a YAML or JSON mapping of options, or the section of a run's ``config.json``
``layer``                  defaults < file < overrides, validated, logging what the file and the
                           command line set
``build``                  validate, raising one :class:`ConfigError` that names each bad option
=========================  ==========================================================================

List-valued fields accept a comma-separated string as well (``--noise 0,0.5``); the model splits it
(:func:`split_commas`), so a file and the command line mean the same thing by the same text.

>>> from pydantic import BaseModel, Field
>>> class Demo(BaseModel):
...     learning_rate: float = Field(1e-5, gt=0, description="step size",
...                                  json_schema_extra=cli("--lr", "--learning-rate"))
...     max_steps: int = Field(300, ge=1)
>>> flags_of(Demo, "learning_rate"), flags_of(Demo, "max_steps")
(['--lr', '--learning-rate'], ['--max-steps'])
>>> layer(Demo, file_values={"max_steps": 5}, overrides={"learning_rate": 0.1}).model_dump()
{'learning_rate': 0.1, 'max_steps': 5}
>>> build(Demo, {"learning_rate": 0}, what="demo config")
Traceback (most recent call last):
...
harness.core.errors.ConfigError: invalid demo config: --learning-rate: Input should be greater than 0
"""

from __future__ import annotations

import difflib
import json
import logging
from pathlib import Path
from typing import Any, Callable, TypeVar

from pydantic import BaseModel, ValidationError

from harness.core.config import read_yaml
from harness.core.errors import ConfigError

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

#: The key under which each command's run record (``RUN_DIR/config.json``) keeps its own options.
RECORD_SECTIONS = {"train": "harness train", "run": "harness run"}
#: Options a run record keeps for the record's sake but that are actions, not configuration: re-running
#: a record starts a new run unless the command line says ``--resume``.
RECORD_ACTIONS = ("resume",)


def cli(*flags: str) -> dict[str, Any]:
    """Field metadata (``json_schema_extra``) giving an option its command-line flags.

    The first long flag that spells the field name (else the first flag) names the option in errors.

    >>> cli("--lr", "--learning-rate")
    {'cli': ['--lr', '--learning-rate']}
    """
    if not flags or not all(f.startswith("-") for f in flags):
        raise ValueError(f"command-line flags must start with '-', got {flags!r}")
    return {"cli": list(flags)}


def flags_of(model: type[BaseModel], name: str) -> list[str]:
    """The flags of field ``name``: its ``cli(...)`` metadata, else ``--name-with-dashes``."""
    extra = model.model_fields[name].json_schema_extra
    if isinstance(extra, dict) and extra.get("cli"):
        return list(extra["cli"])
    return ["--" + name.replace("_", "-")]


def flag_of(model: type[BaseModel], name: str) -> str:
    """The one flag that names field ``name`` in messages.

    >>> from pydantic import BaseModel, Field
    >>> class Demo(BaseModel):
    ...     k: int = Field(3, json_schema_extra=cli("-k"))
    ...     noise_levels: list[float] | None = Field(None, json_schema_extra=cli("--noise"))
    >>> flag_of(Demo, "k"), flag_of(Demo, "noise_levels")
    ('-k', '--noise')
    """
    flags = flags_of(model, name)
    own = "--" + name.replace("_", "-")
    return own if own in flags else next((f for f in flags if f.startswith("--")), flags[0])


def split_commas(value: Any) -> Any:
    """``"a, b,"`` -> ``['a', 'b']`` (a list field's text form); anything else unchanged.

    >>> split_commas("0, 0.5"), split_commas([0.1]), split_commas(None)
    (['0', '0.5'], [0.1], None)
    """
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


#: The largest seed any command takes: seeds reach numpy and torch, which take 0 .. 2**32 - 1.
SEED_MAX = 2**32 - 1


def nonempty_list(value: Any) -> Any:
    """:func:`split_commas`, refusing a list with nothing in it (``--noise ''`` would run zero episodes and
    call the run complete; ``--noise-mode ''`` would search without noise under a "noise 0.5" heading).

    >>> nonempty_list("0,0.5"), nonempty_list(None)
    (['0', '0.5'], None)
    >>> nonempty_list(" , ")
    Traceback (most recent call last):
    ...
    ValueError: empty list: give at least one value, or leave the option out for its default
    """
    value = split_commas(value)
    if isinstance(value, (list, tuple)) and not value:
        raise ValueError("empty list: give at least one value, or leave the option out for its default")
    return value


def finite_number(value: Any) -> Any:
    """``value`` unless it is a float that is ``nan`` or infinite: a field validator for the options a run
    records (``--temperature inf`` passes ``ge=0``, plays every episode, then cannot be written as JSON).
    Mappings are left to their own checks (an ablation may mean non-finite reward weights).

    >>> finite_number(0.5), finite_number("inf")
    (0.5, 'inf')
    >>> finite_number(float("inf"))
    Traceback (most recent call last):
    ...
    ValueError: Input should be a finite number
    """
    import math

    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("Input should be a finite number")
    return value


def not_blank(value: Any) -> Any:
    """``value`` unchanged unless it is an empty or all-blank string (``--model ''``, ``--task ''``), which
    no option means: leave the option out for its default.

    >>> not_blank("tiny"), not_blank(None)
    ('tiny', None)
    >>> not_blank("  ")
    Traceback (most recent call last):
    ...
    ValueError: empty value: give one, or leave the option out for its default
    """
    if isinstance(value, str) and not value.strip():
        raise ValueError("empty value: give one, or leave the option out for its default")
    return value


def validation_messages(err: ValidationError, name_of: Callable[[str], str]) -> list[str]:
    """One ``name: message`` per problem; ``name_of`` turns a field name into how the user spelled it."""
    out = []
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown option"
        loc = [str(p) for p in e["loc"]]
        if not loc:
            out.append(msg)
            continue
        where = name_of(loc[0]) + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in loc[1:])
        out.append(f"{where}: {msg}")
    return out


def build(model: type[M], values: dict[str, Any], *, what: str, name_of: Callable[[str], str] | None = None) -> M:
    """``model(**values)``, raising ConfigError naming each bad option by its flag (not a pydantic trace)."""
    try:
        return model(**values)
    except ValidationError as e:
        name_of = name_of or (lambda n: flag_of(model, n) if n in model.model_fields else n)
        raise ConfigError(f"invalid {what}: " + "; ".join(validation_messages(e, name_of))) from None


def normalise_keys(values: dict[str, Any]) -> dict[str, Any]:
    """Option names as fields: ``--max-steps`` / ``max-steps`` -> ``max_steps``."""
    return {str(k).lstrip("-").replace("-", "_"): v for k, v in values.items()}


def aliases(model: type[BaseModel]) -> dict[str, str]:
    """Old spellings still accepted for ``model``'s fields (``validation_alias=AliasChoices(name, old)``):
    ``{old: name}``.

    >>> from pydantic import AliasChoices, BaseModel, Field
    >>> class Demo(BaseModel):
    ...     eval_limit: int | None = Field(None, validation_alias=AliasChoices("eval_limit", "limit"))
    >>> aliases(Demo)
    {'limit': 'eval_limit'}
    """
    out = {}
    for name, field in model.model_fields.items():
        choices = getattr(field.validation_alias, "choices", None) or ()
        out.update({c: name for c in choices if isinstance(c, str) and c != name})
    return out


def canonical(model: type[BaseModel], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with old spellings renamed to their fields (a field given under two spellings keeps the
    field's own); what ``--resume`` compares and what a run records are in these names."""
    old = aliases(model)
    out = {k: v for k, v in values.items() if k not in old}
    for k, v in values.items():
        if k in old:
            out.setdefault(old[k], v)
    return out


def unknown_keys(model: type[BaseModel], keys, where: str) -> list[str]:
    """One message per key that is not a field of ``model`` (nor an old spelling of one), with a close
    match when there is one."""
    out = []
    known = aliases(model)
    for k in keys:
        if k in model.model_fields or k in known:
            continue
        close = difflib.get_close_matches(k, list(model.model_fields), n=1)
        out.append(f"{where}{k}: unknown option" + (f" (did you mean {close[0]}?)" if close else ""))
    return out


def read_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML (or, by its ``.json`` suffix, JSON) file's top-level mapping; ConfigError naming the file."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        return read_yaml(path)
    from harness.core.safeyaml import check_size

    try:
        check_size(path)
        raw = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ConfigError(f"{path}: not a readable JSON file: {e}") from None
    except ValueError as e:  # too large, or a key given twice
        raise ConfigError(f"{path}: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict; ValueError for a key given twice (``json`` keeps the last silently).

    >>> json.loads('{"seed": 1, "seed": 2}', object_pairs_hook=_unique_keys)
    Traceback (most recent call last):
    ...
    ValueError: duplicate key 'seed' in a JSON object; each key may appear once
    """
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r} in a JSON object; each key may appear once")
        out[k] = v
    return out


def read_config_file(path: str | Path, section: str) -> dict[str, Any]:
    """Options from a YAML or JSON file: a flat mapping, or the ``section`` of a run record.

    A run record is what a run writes as ``config.json`` (``{"train": {...}, "resolved": ..., "task": ...}``
    for ``harness train``, ``{"run": {...}, "task": ...}`` for ``harness run``); its options are those of
    ``section``, less :data:`RECORD_ACTIONS`. Keys may use dashes or underscores. Raises ConfigError
    naming the file.
    """
    raw = read_mapping(path)
    if isinstance(raw.get(section), dict):
        values = dict(raw[section])
        dropped = [k for k in RECORD_ACTIONS if values.pop(k, None)]
        if dropped:
            log.info("%s is a run record: ignoring its %s (say it on the command line to mean it)",
                     path, ", ".join(dropped))
        return normalise_keys(values)
    for other, command in RECORD_SECTIONS.items():
        if other != section and isinstance(raw.get(other), dict):
            raise ConfigError(f"{path} is the record of a `{command}` run, not of a `{RECORD_SECTIONS[section]}` "
                              f"run; its options do not apply here")
    return normalise_keys(raw)


def brief(value: Any, width: int = 80) -> str:
    """``repr(value)`` cut to about ``width`` characters, built without formatting the whole value (a
    value read from a file may be megabytes long, or a structure of shared lists that would print as
    gigabytes).

    >>> brief("x" * 10_000, 20)
    "'xxxxxxx...xxxxxxxx'"
    >>> brief([[1, 2, 3]] * 1_000_000)
    '[[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3], ...]'
    """
    import reprlib

    r = reprlib.Repr()
    r.maxstring = r.maxother = width
    r.maxlong = width
    text = r.repr(value)
    return text if len(text) <= width * 2 else text[:width] + "..."


def _show(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={brief(v)}" for k, v in values.items()) or "nothing"


def layer(model: type[M], *, file_values: dict[str, Any] | None = None, source: str | Path | None = None,
          overrides: dict[str, Any] | None = None, what: str = "config") -> M:
    """Defaults < ``file_values`` (read from ``source``) < ``overrides`` (the command line), validated.

    With a file, logs what the file and the command line set; an unknown key of the file is an error
    naming the file.
    A bad value is named by its flag, and by file when the file set it.
    """
    file_values = dict(file_values or {})
    overrides = dict(overrides or {})
    bad = unknown_keys(model, file_values, f"{source}: " if source else "")
    if bad:
        raise ConfigError(f"invalid {what}: " + "; ".join(bad))
    if source is not None:   # with a file, say what each layer set (without one, the command line says it all)
        log.info("%s sets %s", source, _show(file_values))
        log.info("command line sets %s", _show(overrides))

    def name_of(name: str) -> str:
        if name in model.model_fields and name not in overrides and name in file_values and source is not None:
            return f"{name} (from {source})"
        return flag_of(model, name) if name in model.model_fields else name

    return build(model, {**file_values, **overrides}, what=what, name_of=name_of)


def load_config(model: type[M], section: str, path: str | Path | None = None,
                overrides: dict[str, Any] | None = None, what: str = "config") -> M:
    """A command's config: ``model``'s defaults < the file at ``path`` (if any) < ``overrides``."""
    file_values = read_config_file(path, section) if path is not None else None
    return layer(model, file_values=file_values, source=path, overrides=overrides, what=what)
