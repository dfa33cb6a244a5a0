"""Typed task configuration, loaded from ``tasks/<name>/task.yaml``.

A task is data: this module validates it (unknown keys are errors that name the key and the file)
and exposes one pydantic model per concept. Nothing here imports torch or touches the network.

Example:
    >>> task = load_task("apollo3")
    >>> task.retrieval.k, task.protocol.max_turns
    (3, 20)
"""

from __future__ import annotations

import importlib.machinery
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    RootModel,
    ValidationError,
    computed_field,
    field_validator,
    model_validator,
)

from harness.core.errors import ConfigError
from harness.core.io import check_name, slug

#: Noise modes understood by :mod:`harness.data.search`.
NOISE_MODES = ("drop_gold", "paraphrase", "random", "shuffle")
#: How the rewards read an episode: ``rezero`` (ReZero's code, rule for rule) or ``strict`` (the
#: project's stricter rules); :mod:`harness.scoring.rewards` implements both (docs/rewards.md).
REWARD_SEMANTICS: tuple[str, ...] = ("rezero", "strict")
RewardSemantics = Literal["rezero", "strict"]
#: The two protocol/reward overrides ``harness run`` and ``harness train`` share (None: the task's or
#: preset's choice), declared once for both config models.
SemanticsOverride = Annotated[RewardSemantics | None, Field(
    description="reward semantics: 'rezero' (ReZero's reward code, rule for rule) or 'strict' (the project's "
    "stricter rules); see docs/rewards.md (default: the task's or preset's)")]
StopAfterActionOverride = Annotated[bool | None, Field(
    description="protocol: stop each turn at its first action (true, Search-R1) or keep the whole message as "
    "ReZero's agent does (false) (default: the task's or preset's)")]
#: Answer-judge rules implemented by :mod:`harness.scoring.judge`.
JUDGE_RULES: tuple[str, ...] = ("default", "exact_match", "f1", "contains", "number")
#: Retrievers understood by :mod:`harness.data.retrieval`.
RETRIEVERS = ("bm25", "dense")


def one_of(value: str, choices: tuple[str, ...], what: str) -> str:
    """Validate a name against its valid choices, naming them in the error.

    >>> one_of("bm25", RETRIEVERS, "retriever")
    'bm25'
    """
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(choices)}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataFile(_Strict):
    """One data file: its name in the data folder and, optionally, its pinned sha256 and size.

    A file with ``sha256`` is checked before use (and may be downloaded from ``data.url_pattern``);
    a file without one is read as found (never downloaded) and its hash is recorded in the run.
    """

    name: str
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    bytes: int | None = Field(None, ge=0)

    @field_validator("name")
    @classmethod
    def _plain(cls, v: str) -> str:
        return check_name(v, "data file name")


class DataFiles(_Strict):
    """The files a task reads (formats: docs/tasks.md). ``paraphrases`` is needed only by the
    ``paraphrase`` noise mode; ``report`` is kept with the data and not read."""

    chunks: DataFile
    questions: DataFile
    paraphrases: DataFile | None = None
    report: DataFile | None = None


class DatasetTable(_Strict):
    """Where one table sits in a Hugging Face ``datasets`` dataset: a split, and for a hub dataset
    with several configurations, the configuration's name."""

    split: str
    config: str | None = None


class DatasetSource(_Strict):
    """Questions and corpus from a ``datasets`` dataset instead of files (same columns as the files).

    ``path`` is a folder written by ``DatasetDict.save_to_disk`` (or any folder ``datasets.load_dataset``
    reads), relative to the task file, or a hub id (``org/name``, pinned with ``revision``).
    """

    path: str
    revision: str | None = None
    questions: DatasetTable
    chunks: DatasetTable
    paraphrases: DatasetTable | None = None


class DataConfig(_Strict):
    """Where a task's questions and corpus come from: ``files`` (in ``dir``, ``--data-dir``,
    ``$HARNESS_DATA_DIR`` or the cache, downloaded from ``url_pattern`` when pinned) or ``dataset``."""

    files: DataFiles | None = None
    dataset: DatasetSource | None = None
    #: The folder holding ``files``, relative to the task file that sets it (``--data-dir`` overrides it).
    dir: str | None = None
    #: Where missing pinned files are downloaded from: ``{file}`` (and ``{commit}``) are filled in.
    url_pattern: str | None = None
    commit: str | None = None
    _loaded: dict[str, dict[str, Any]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> "DataConfig":
        if (self.files is None) == (self.dataset is None):
            raise ValueError("give exactly one of data.files (files in a folder) and data.dataset "
                             "(a Hugging Face datasets dataset); to replace an included one, set the other to null")
        if self.dataset is not None and (self.dir or self.url_pattern):
            raise ValueError("data.dir and data.url_pattern go with data.files, not data.dataset")
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def loaded(self) -> dict[str, dict[str, Any]]:
        """What :func:`harness.data.loading.load_task_data` read: per table, where from, its sha256 and size.
        Set by the loader (:meth:`record_loaded`), never by a task file; part of the task's dump, so a run's
        config.json records the data it used, checksums pinned or not."""
        return self._loaded

    def record_loaded(self, record: dict[str, dict[str, Any]]) -> None:
        self._loaded = dict(record)   # a new dict: copies of this config made before keep theirs

    @property
    def has_paraphrases(self) -> bool:
        """Whether the task has paraphrases for the ``paraphrase`` noise mode."""
        src = self.files if self.files is not None else self.dataset
        return src.paraphrases is not None


class PaperSplit(_Strict):
    test_size: float = Field(0.1, gt=0, lt=1)
    seed: int = 42
    expected_test_lines: list[int] | None = None


class DevSplit(_Strict):
    """The ``dev`` split: questions carved from the training questions to select checkpoints and stop on,
    so that the ``test`` questions are only reported on (drawn by :func:`harness.data.loading.dev_lines`
    unless the task's ``process_data`` hook sets ``dev_lines``).

    ``size``: questions in dev (None: as many as the test split), at most a quarter of the training
    questions (a task whose hook keeps ten questions gets a dev split of two); ``seed``: the permutation's
    seed; ``expected_lines``: the positions the draw must reproduce (checked at load, like
    ``paper.expected_test_lines``).
    """

    size: int | None = Field(None, ge=1)
    seed: int = 42
    expected_lines: list[int] | None = None


class SplitsConfig(_Strict):
    paper: PaperSplit = PaperSplit()
    dev: DevSplit = DevSplit()
    default_eval: str = "test"


class RetrievalConfig(_Strict):
    retriever: str = "bm25"
    k: int = Field(3, ge=1, le=50)
    bm25_stopwords: str = "en"
    dense_model: str = "all-MiniLM-L6-v2"
    #: Used (and recorded) when ``dense_model`` cannot be loaded here (no network, not in the hub cache).
    dense_fallback: str | None = None
    dense_batch_size: int = Field(64, ge=1)

    @field_validator("retriever")
    @classmethod
    def _known_retriever(cls, v: str) -> str:
        return one_of(v, RETRIEVERS, "retriever")


class NoiseConfig(_Strict):
    """Noise injected into search results: level p in [0, 1] and the modes it applies to."""

    level: float = Field(0.0, ge=0.0, le=1.0)
    modes: tuple[str, ...] = ("drop_gold",)

    @field_validator("modes", mode="before")
    @classmethod
    def _known_modes(cls, v: Any) -> tuple[str, ...]:
        if isinstance(v, str):
            v = [m for m in v.split(",") if m]
        bad = [m for m in v if m not in NOISE_MODES]
        if bad:
            raise ValueError(f"unknown noise mode(s) {bad}; valid: {', '.join(NOISE_MODES)}")
        if not v:  # a level with no mode would search clean under a "noise 0.5" heading
            raise ValueError(f"no noise mode given; valid: {', '.join(NOISE_MODES)}")
        return tuple(v)


class ProtocolConfig(_Strict):
    think_tag: str = "think"
    search_tag: str = "search"
    answer_tag: str = "answer"
    information_tag: str = "information"
    max_turns: int = Field(20, ge=1)
    max_new_tokens: int = Field(512, ge=1)
    max_episode_tokens: int = Field(8192, ge=1)
    #: True: generation stops at the first ``</search>``/``</answer>`` (Search-R1); False: the whole
    #: message is kept and acted on as ReZero's agent does (see harness.episode.protocol).
    stop_after_action: bool = True


class PromptConfig(_Strict):
    """What the model reads: the system and user messages (``{question}``), the ``<information>`` message that
    wraps a search's ``{results}``, each result (``{rank}`` from 1, ``{text}``), what joins results, and what
    a search that found nothing shows."""

    system: str
    user: str
    information: str
    result: str
    result_separator: str = "\n\n"
    no_results: str = "No results found."


_REWARD_NAME = re.compile(r"[a-z][a-z0-9_]*")


class RewardWeights(RootModel[dict[str, float]]):
    """Weight per reward name; 0 (or leaving a name out) disables a reward.

    Core checks the shape only (names are lower-case identifiers, weights finite numbers); whether
    each name is a registered reward is checked where the registry is visible:
    :func:`harness.scoring.rewards.check_weights`.

    >>> w = RewardWeights({"correctness": 4, "retry": 0})
    >>> w.active(), w["retry"], w["format"]
    ({'correctness': 4.0}, 0.0, 0.0)
    """

    model_config = ConfigDict(frozen=True)

    @field_validator("root", mode="after")
    @classmethod
    def _shape(cls, v: dict[str, float]) -> dict[str, float]:
        for name, w in v.items():
            if not _REWARD_NAME.fullmatch(name):
                raise ValueError(f"reward name {name!r} must be a lower-case identifier")
            if not math.isfinite(w):
                raise ValueError(f"reward weight {name}={w} is not a finite number")
        return v

    def __getitem__(self, name: str) -> float:
        return float(self.root.get(name, 0.0))

    def __iter__(self):
        return iter(self.root)

    def names(self) -> list[str]:
        return list(self.root)

    def active(self) -> dict[str, float]:
        """The nonzero weights, in declaration order."""
        return {k: float(v) for k, v in self.root.items() if v != 0.0}


class RewardsConfig(_Strict):
    weights: RewardWeights
    #: The semantics ``harness run`` scores with (presets may choose their own for training).
    semantics: RewardSemantics = "rezero"


class JudgeConfig(_Strict):
    rule: str = "default"
    f1_threshold: float = Field(0.6, ge=0.0, le=1.0)

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, v: str) -> str:
        return one_of(v, JUDGE_RULES, "judge rule")


#: The module name that means "the hooks.py beside this task's task.yaml".
TASK_HOOKS_MODULE = "hooks"

#: Each hook a task may declare, and what it must name (checked when it is imported).
HOOK_KINDS: dict[str, str] = {
    "process_data": "a function fn(data: TaskData) -> TaskData",
    "environment": "a subclass of harness.environment.env.Environment",
    "demonstrator": "a class Demonstrator(p_retry: float, seed: int) whose instances are policies",
    "added_tokens": "a function fn() -> list[str]",
}
#: The harness's own objects a task may name as a hook, per hook (everything else in the harness package
#: is refused: a hook names the task's own code, or one of these).
HARNESS_HOOKS: dict[str, tuple[str, ...]] = {
    "environment": ("harness.environment.env:Environment",),
}
_HOOK_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def check_hook_spec(spec: str, kind: str | None = None) -> str:
    """``spec`` unchanged when a task may name it for hook ``kind`` (any hook when None); else ConfigError.

    Allowed: ``hooks:<name>`` (the task's own hooks.py; what the name is, is checked on import) and the
    entries of :data:`HARNESS_HOOKS`. Checked when the task file is loaded, so ``harness validate`` and
    ``harness run`` refuse the same hooks.

    >>> check_hook_spec("hooks:first_ten", "process_data")
    'hooks:first_ten'
    >>> check_hook_spec("os:system", "process_data")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    harness.core.errors.ConfigError: task hook 'os:system' is not allowed: hooks must name a function or
        class of the task's own hooks.py ('hooks:<name>', the file beside task.yaml) or one the harness
        exports for this hook (harness.environment.env:Environment for environment)
    """
    if not isinstance(spec, str) or not _HOOK_SPEC.fullmatch(spec):
        raise ConfigError(f"task hook {spec!r} must look like '{TASK_HOOKS_MODULE}:<name>' (a function or class "
                          "of the hooks.py beside task.yaml)")
    module = spec.partition(":")[0]
    allowed = HARNESS_HOOKS.get(kind, ()) if kind else tuple(x for v in HARNESS_HOOKS.values() for x in v)
    if module != TASK_HOOKS_MODULE and spec not in allowed:
        exports = "; ".join(f"{', '.join(v)} for {k}" for k, v in HARNESS_HOOKS.items())
        raise ConfigError(f"task hook {spec!r} is not allowed: hooks must name a function or class of the task's own "
                          f"hooks.py ('{TASK_HOOKS_MODULE}:<name>', the file beside task.yaml) or one the harness "
                          f"exports for this hook ({exports})")
    return spec


class HooksConfig(_Strict):
    """Code a task reaches through small named hooks, lm-eval style (docs/tasks.md).

    ``process_data``  called as ``fn(data: TaskData) -> TaskData`` right after the files are parsed
                      (e.g. to derive the task's own questions and split from the corpus);
    ``environment``   a subclass of :class:`harness.environment.env.Environment` that
                      :meth:`~harness.environment.env.Environment.from_task` builds instead of the base class;
    ``demonstrator``  a scripted policy class, ``cls(p_retry=..., seed=...)``, whose episodes warm-start a
                      policy the harness builds for the task (``harness micro build``);
    ``added_tokens``  ``fn() -> list[str]``: words the tokenizer of such a policy keeps as single tokens.

    Each names ``hooks:<name>`` (a function or class defined in the task's own ``hooks.py``) or one of
    :data:`HARNESS_HOOKS`; anything else is refused when the file is loaded. Hooks are imported only
    when they are used (data loaded, environment built, policy built) or by ``harness validate``.
    """

    process_data: str | None = None
    environment: str | None = None
    demonstrator: str | None = None
    added_tokens: str | None = None

    @field_validator("process_data", "environment", "demonstrator", "added_tokens")
    @classmethod
    def _allowed(cls, v: str | None, info) -> str | None:
        if v is None:
            return v
        try:
            return check_hook_spec(v, info.field_name)
        except ConfigError as e:
            raise ValueError(str(e)) from None


def import_hook(spec: str, task_source: str | Path | None = None, kind: str | None = None) -> Any:
    """Import a task hook and return the object; ConfigError if refused, missing or of the wrong kind.

    Hooks run code, so only two places may provide it (:func:`check_hook_spec`): the task's own folder
    (``hooks:name`` = a function or class *defined in* ``hooks.py`` beside ``task_source``, imported by
    path; names it imports from elsewhere are refused) and the objects the harness exports as hooks
    (:data:`HARNESS_HOOKS`). ``kind`` (a key of :data:`HOOK_KINDS`) also checks what the object is.

    >>> import_hook("harness.environment.env:Environment", kind="environment").__name__
    'Environment'
    >>> import_hook("harness.cli.app:main")
    Traceback (most recent call last):
    ...
    harness.core.errors.ConfigError: task hook 'harness.cli.app:main' is not allowed: ...
    """
    import importlib
    import inspect

    check_hook_spec(spec, kind)
    module, _, name = spec.partition(":")
    if module == TASK_HOOKS_MODULE:
        mod = _task_hooks_module(spec, task_source)
    else:
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"task hook {spec!r} cannot be imported: {e}") from None
    try:
        obj = getattr(mod, name)
    except AttributeError as e:
        raise ConfigError(f"task hook {spec!r} cannot be imported: {e}") from None
    if module == TASK_HOOKS_MODULE and (not (inspect.isfunction(obj) or inspect.isclass(obj))
                                        or obj.__module__ != mod.__name__):
        raise ConfigError(f"task hook {spec!r} is not allowed: {name!r} is not a function or class defined in "
                          f"{mod.__file__} (a hook names the task's own code, not what its hooks.py imports)")
    if kind is not None:
        _check_kind(spec, kind, obj)
    return obj


def _check_kind(spec: str, kind: str, obj: Any) -> None:
    import inspect

    if kind == "environment":  # a subclass of harness.environment.env.Environment (named: core imports no layer above)
        ok = inspect.isclass(obj) and any((c.__module__, c.__qualname__) == ("harness.environment.env", "Environment")
                                          for c in obj.__mro__)
    elif kind == "demonstrator":
        ok = inspect.isclass(obj)
    else:
        ok = inspect.isfunction(obj)
    if not ok:
        raise ConfigError(f"task hook {kind}: {spec!r} must name {HOOK_KINDS[kind]}, not {type(obj).__name__} {obj!r}")


class _NoBytecodeLoader(importlib.machinery.SourceFileLoader):
    """Imports a task's hooks.py without writing ``__pycache__`` into the task folder."""

    def set_data(self, *args: Any, **kwargs: Any) -> None:
        pass


def _task_hooks_module(spec: str, task_source: str | Path | None) -> Any:
    """``hooks.py`` beside the task file, imported by path under a name unique to that file."""
    import hashlib
    import importlib.util
    import sys

    if task_source is None:
        raise ConfigError(f"task hook {spec!r} names the task's hooks.py, but the task was not loaded from a file")
    path = (Path(task_source).parent / f"{TASK_HOOKS_MODULE}.py").resolve()
    if not path.is_file():
        raise ConfigError(f"task hook {spec!r} cannot be imported: no {path.name} beside {task_source}")
    mod_name = f"harness_task_hooks_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    loader_spec = importlib.util.spec_from_file_location(mod_name, path, loader=_NoBytecodeLoader(mod_name, str(path)))
    mod = importlib.util.module_from_spec(loader_spec)
    sys.modules[mod_name] = mod
    try:
        loader_spec.loader.exec_module(mod)
    except Exception as e:
        del sys.modules[mod_name]
        raise ConfigError(f"task hook {spec!r}: {path} failed to import: {type(e).__name__}: {e}") from None
    return mod


class Preset(_Strict):
    reward_weights: RewardWeights
    train_noise: NoiseConfig = NoiseConfig()
    #: Reward semantics of training runs with this preset (None: the task's ``rewards.semantics``).
    reward_semantics: RewardSemantics | None = None
    #: The protocol of training runs with this preset (None: the task's ``protocol.stop_after_action``).
    stop_after_action: bool | None = None
    #: ``harness train`` options this preset trains with unless the run sets them (over the task's ``train``;
    #: checked against the training config when a run or ``harness validate`` reads the task).
    train: dict[str, Any] = {}


#: The policies ``harness run`` evaluates when no --model is given, unless the task lists its own
#: (``reference_policies``): the scripted reference policies.
DEFAULT_REFERENCE_POLICIES: tuple[str, ...] = ("closed-book", "one-search", "oracle-retry")
#: ``scale: paper`` is a task meant for instruct models of billions of parameters (GPU-scale training);
#: ``scale: micro`` one built for the harness's own CPU-scale models.
TASK_SCALES: tuple[str, ...] = ("paper", "micro")


class TaskConfig(_Strict):
    name: str
    version: int
    description: str = ""
    #: ``paper`` (GPU-scale models learn it) or ``micro`` (built for the CPU-scale local models); a sweep of a
    #: paper-scale task with only micro-scale models is warned about (harness.sweep.runner.warn_scale).
    scale: Literal["paper", "micro"] = "paper"
    #: What ``harness run`` evaluates without --model: scripted policies, local models, paths or hub ids.
    reference_policies: tuple[str, ...] = DEFAULT_REFERENCE_POLICIES
    data: DataConfig
    splits: SplitsConfig = SplitsConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    noise: NoiseConfig = NoiseConfig()
    protocol: ProtocolConfig = ProtocolConfig()
    prompt: PromptConfig
    rewards: RewardsConfig
    judge: JudgeConfig = JudgeConfig()
    presets: dict[str, Preset] = {}
    #: Named protocol profiles (``--protocol NAME``): partial task mappings laid over the task when chosen
    #: (prompts, result format, retrieval, protocol limits), e.g. ``rezero``: ReZero's own protocol.
    profiles: dict[str, dict[str, Any]] = {}
    #: The profile this config was loaded with (set by the loader; None: the task's own protocol).
    profile: str | None = None
    #: ``harness train`` options every training run of this task uses unless its preset or the run sets them:
    #: the recipe that works at this task's scale (e.g. the micro task's learning rate and group size).
    train: dict[str, Any] = {}
    hooks: HooksConfig = HooksConfig()
    #: Where the YAML came from (set by the loader, not by the file).
    source: str | None = None
    #: The file each hook was declared in (its ``hooks.py`` sits beside it), when a base file included
    #: from another folder declared it; set by the loader.
    _hook_sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        return check_name(v, "task name")

    @field_validator("presets")
    @classmethod
    def _plain_presets(cls, v: dict[str, Preset]) -> dict[str, Preset]:
        for name in v:
            check_name(name, "preset name")
        return v

    @field_validator("reference_policies")
    @classmethod
    def _some_policies(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v or any(not isinstance(m, str) or not m.strip() for m in v):
            raise ValueError("list at least one policy name")
        return v

    @model_validator(mode="after")
    def _paraphrases_for_paraphrase_noise(self) -> "TaskConfig":
        if not self.data.has_paraphrases:
            where = [("noise.modes", self.noise)] + [(f"presets.{k}.train_noise.modes", p.train_noise)
                                                    for k, p in self.presets.items()]
            for key, noise in where:
                if "paraphrase" in noise.modes:
                    raise ValueError(f"{key} uses the paraphrase noise mode, but the task has no paraphrases "
                                     "(data.files.paraphrases)")
        return self

    def hook(self, kind: str) -> Any:
        """The object hook ``kind`` names (imported now, allowlist and kind checked), or None if undeclared."""
        spec = getattr(self.hooks, kind)
        if spec is None:
            return None
        return import_hook(spec, self._hook_sources.get(kind, self.source), kind=kind)


def make_noise(level: float, modes: Any) -> NoiseConfig:
    """Build a NoiseConfig from command-line values, raising ConfigError (not a pydantic trace)."""
    try:
        return NoiseConfig(level=level, modes=modes)
    except ValidationError as e:
        raise ConfigError("; ".join(f"noise: {err['msg'].removeprefix('Value error, ')}"
                                    for err in e.errors())) from None


def shipped_tasks_dir() -> Path:
    """The task folders that come with the harness: the checkout's top-level ``tasks/`` (editable install),
    or the copy a wheel ships as ``harness/_tasks`` (``pip install .``; see ``setup.py``)."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "_tasks"
    return packaged if packaged.is_dir() else package.parent / "tasks"


def tasks_root() -> Path:
    """Directory holding task folders: ``$HARNESS_TASKS_DIR``, else :func:`shipped_tasks_dir`."""
    env = os.environ.get("HARNESS_TASKS_DIR")
    return Path(env) if env else shipped_tasks_dir()


def available_tasks() -> list[str]:
    root = tasks_root()
    return sorted(p.parent.name for p in root.glob("*/task.yaml")) if root.is_dir() else []


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid task config {source}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            lines.append(f"  unknown key '{loc}'")
        else:
            lines.append(f"  {loc}: {msg}" if loc else f"  {msg}")
    return "\n".join(lines)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, raising :class:`ConfigError` that names the file on any problem.

    Hostile input is a one-line error too: a directory, an unreadable or binary file, a key given
    twice, aliases that expand past a bound, a file over a MiB (:mod:`harness.core.safeyaml`), or
    nesting so deep that the parser runs out of stack.
    """
    from harness.core import safeyaml

    try:
        safeyaml.check_size(path)
        with open(path, encoding="utf-8") as f:
            raw = safeyaml.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a YAML file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); is it a YAML file?") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    except ValueError as e:  # larger than a config file may be
        raise ConfigError(str(e)) from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply to load; configs are a few levels deep") from None
    except MemoryError:
        raise ConfigError(f"{path}: YAML too large to load into memory") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


#: Keys only the loader sets; a task file that sets them is refused.
_LOADER_KEYS = (("source",), ("profile",), ("data", "loaded"))
#: What a protocol profile may change: how the model is prompted, what a search returns and how, the
#: turn and token limits, the judge; never the data, the splits or the rewards.
PROFILE_KEYS = ("prompt", "retrieval", "protocol", "judge", "noise")


def merge_mappings(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``: how ``include:`` merges a task file onto the files it includes.

    Keys of ``over`` win; where both values are mappings they merge the same way, key by key, at any
    depth; anything else (a list, a string, a number) replaces the base value whole; a key set to
    null (``~``) is removed, so the schema's default applies (and an inherited preset, hook or file
    can be dropped).

    >>> merge_mappings({"a": {"x": 1, "y": 2}, "l": [1, 2], "d": 1}, {"a": {"y": 3}, "l": [3], "d": None})
    {'a': {'x': 1, 'y': 3}, 'l': [3]}
    """
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_mappings(out[key], value)
        elif isinstance(value, dict):
            out[key] = merge_mappings({}, value)
        else:
            out[key] = value
    return out


def _include_target(entry: Any, including: Path) -> Path:
    """The file an ``include:`` entry names: a path (with a ``/`` or a .yaml/.yml suffix) relative to the
    including file's folder, or the bare name of a task (``apollo3``: that task's task.yaml)."""
    if not isinstance(entry, str) or not entry.strip():
        raise ConfigError(f"{including}: include entries must be file paths or task names, got {entry!r}")
    if "/" in entry or entry.endswith((".yaml", ".yml")):
        target = (including.parent / Path(entry).expanduser()).resolve()
    else:
        target = next((root / entry / "task.yaml" for root in (tasks_root(), shipped_tasks_dir())
                       if (root / entry / "task.yaml").is_file()), including.parent / entry)
    if not target.is_file():
        raise ConfigError(f"{including}: include {entry!r} names no file ({target}); give a path relative to "
                          f"this file or a task name ({', '.join(available_tasks()) or 'none available'})")
    return target.resolve()


def _localize(raw: dict[str, Any], path: Path) -> None:
    """Make the folder paths a task file gives relative to itself absolute, before it is merged anywhere."""
    data = raw.get("data")
    if not isinstance(data, dict):
        return
    if isinstance(data.get("dir"), str):
        data["dir"] = str((path.parent / Path(data["dir"]).expanduser()).resolve())
    ds = data.get("dataset")
    if isinstance(ds, dict) and isinstance(ds.get("path"), str):
        p = ds["path"]
        local = Path(p).expanduser()
        if p.startswith(("./", "../", "/", "~")) or (path.parent / local).exists():
            ds["path"] = str((path.parent / local).resolve())


def read_task_file(path: str | Path, _chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], dict[str, str]]:
    """A task file's mapping with its ``include:`` files merged under it (:func:`merge_mappings`),
    and for each hook the file that declared it.

    ``include`` is one entry or a list; entries merge in order (a later one wins), then the file
    itself on top. Included files may include others; a cycle is a ConfigError naming the files.
    """
    path = Path(path).resolve()
    if path in _chain:
        raise ConfigError("include cycle: " + " -> ".join(str(p) for p in (*_chain, path)))
    raw = read_yaml(path)
    for keys in _LOADER_KEYS:
        node: Any = raw
        for k in keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict) and keys[-1] in node:
            raise ConfigError(f"{path}: '{'.'.join(keys)}' is set by the loader, not by a task file")
    _localize(raw, path)
    entries = raw.pop("include", None)
    if isinstance(entries, str) or entries is None:
        entries = [entries] if entries else []
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: include must be a file path or task name, or a list of them")
    merged: dict[str, Any] = {}
    hook_sources: dict[str, str] = {}
    for entry in entries:
        base, base_hooks = read_task_file(_include_target(entry, path), (*_chain, path))
        merged = merge_mappings(merged, base)
        hook_sources.update(base_hooks)
    merged = merge_mappings(merged, raw)
    hooks = raw.get("hooks")
    if isinstance(hooks, dict):
        hook_sources.update({k: str(path) for k, v in hooks.items() if v is not None})
    return merged, hook_sources


def task_path(name_or_path: str | Path) -> Path:
    """The task.yaml a task name (``apollo3``), folder or YAML path names; ConfigError when none."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    if p.is_dir() and (p / "task.yaml").is_file():
        return p / "task.yaml"
    name = str(name_or_path)
    try:
        check_name(name, "task name")
    except ValueError:
        raise ConfigError(f"no task file at {name!r} (a task is a name, a folder holding task.yaml, or a .yaml file)"
                          ) from None
    path = tasks_root() / name / "task.yaml"
    if not path.is_file():
        raise ConfigError(
            f"unknown task {name!r}; available: {', '.join(available_tasks()) or 'none'} (looked in {tasks_root()})")
    return path


def task_label(task: str | Path) -> str:
    """What names a task given as a name or a path inside a folder or file name: the name, or the folder
    of a task.yaml (the file's stem for another .yaml), as a slug (never a path).

    >>> task_label("apollo3"), task_label("../x/mytask/task.yaml"), task_label("/a/custom.yaml"), task_label("/")
    ('apollo3', 'mytask', 'custom', 'task')
    """
    p = Path(task)
    name = (p.parent.name if p.stem == "task" else p.stem) if p.suffix in (".yaml", ".yml") else p.name
    return slug(name, 40) or "task"


def load_task(name_or_path: str | Path, profile: str | None = None) -> TaskConfig:
    """Load and validate a task by name (``apollo3``) or by path to a folder or YAML file, with its
    ``include:`` files merged (:func:`read_task_file`) and, with ``profile``, that protocol profile laid
    over it (:func:`merge_mappings`; its ``about`` line is documentation)."""
    path = task_path(name_or_path)
    raw, hook_sources = read_task_file(path)
    if profile is not None:
        profiles = raw.get("profiles") or {}
        if profile not in profiles:
            raise ConfigError(f"task {raw.get('name', path)} has no protocol profile {profile!r}; "
                              f"available: {', '.join(sorted(profiles)) or 'none'}")
        over = {k: v for k, v in (profiles[profile] or {}).items() if k != "about"}
        bad = sorted(k for k in over if k not in PROFILE_KEYS)
        if bad:
            raise ConfigError(f"{path}: profiles.{profile} may set {', '.join(PROFILE_KEYS)}, not {', '.join(bad)}")
        raw = merge_mappings(raw, over)
    try:
        task = TaskConfig(**raw, source=str(path), profile=profile)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, str(path))) from None
    task._hook_sources = {k: v for k, v in hook_sources.items() if Path(v) != path.resolve()}
    return task


def other_task_policies(task: TaskConfig) -> dict[str, tuple[str, ...]]:
    """The reference policies other shipped tasks list that ``task`` does not (a policy trained for them).

    >>> other_task_policies(load_task("apollo3"))
    {'apollo3_micro': ('micro',)}
    """
    out = {}
    for name in available_tasks():
        if name == task.name:
            continue
        try:
            other = load_task(name)
        except ConfigError:
            continue
        extra = tuple(m for m in other.reference_policies if m not in task.reference_policies)
        if extra:
            out[other.name] = extra
    return out


def weight_mapping(spec: str | Mapping[str, Any] | None) -> dict[str, float] | None:
    """Reward-weight overrides as a ``{name: weight}`` mapping, from a mapping or the command line's
    ``"retry=0,format=1.5"`` (a name given twice in one string is refused: which one was meant?).

    >>> weight_mapping("retry=0, format=1.5"), weight_mapping({"retry": 1}), weight_mapping("")
    ({'retry': 0.0, 'format': 1.5}, {'retry': 1.0}, None)
    >>> weight_mapping("retry=0,retry=1")
    Traceback (most recent call last):
    ...
    harness.core.errors.ConfigError: reward weight 'retry' is given twice in 'retry=0,retry=1'
    """
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    if isinstance(spec, Mapping):
        items = [(str(k), v) for k, v in spec.items()]
    else:
        items = []
        for item in str(spec).split(","):
            item = item.strip()
            if not item:
                continue
            if "=" not in item:
                raise ConfigError(f"reward weight override {item!r} must look like name=value")
            k, v = (s.strip() for s in item.split("=", 1))
            if k in dict(items):
                raise ConfigError(f"reward weight {k!r} is given twice in {spec!r}")
            items.append((k, v))
    out: dict[str, float] = {}
    for k, v in items:
        try:
            if isinstance(v, bool):
                raise ValueError
            out[k] = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"reward weight {k}={v!r} is not a number") from None
    return out or None


def weights_field(value: Any) -> dict[str, float] | None:
    """Pydantic ``before`` validator of a config's ``reward_weights``: a mapping, or ``k=v,...`` text."""
    try:
        return weight_mapping(value)
    except ConfigError as e:
        raise ValueError(str(e)) from None


def parse_weight_overrides(spec: str | Mapping[str, Any] | None, base: RewardWeights) -> RewardWeights:
    """``base`` with the overrides of :func:`weight_mapping` applied (names are checked against the
    registry by :func:`harness.scoring.rewards.check_weights`, values here: numbers, finite).

    >>> w = parse_weight_overrides("retry=0", RewardWeights({"correctness": 4, "retry": 1}))
    >>> (w["correctness"], w["retry"])
    (4.0, 0.0)
    >>> parse_weight_overrides({"retry": float("inf")}, w)
    Traceback (most recent call last):
    ...
    harness.core.errors.ConfigError: reward weight retry=inf is not a finite number
    """
    overrides = weight_mapping(spec)
    if not overrides:
        return base
    return make_weights({**base.root, **overrides})


def make_weights(values: dict[str, Any]) -> RewardWeights:
    """RewardWeights from plain values, raising ConfigError with one line (not a pydantic trace).

    >>> make_weights({"Retry": 1})
    Traceback (most recent call last):
    ...
    harness.core.errors.ConfigError: reward name 'Retry' must be a lower-case identifier
    """
    try:
        return RewardWeights(values)
    except ValidationError as e:
        raise ConfigError("; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors())) from None
