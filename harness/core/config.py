"""Typed task configuration, loaded from ``tasks/<name>/task.yaml``.

A task is data: this module validates it (unknown keys are errors that name the key and the file)
and exposes one pydantic model per concept. Nothing here imports torch or touches the network.

Example:
    >>> task = load_task("apollo3")
    >>> task.retrieval.k, task.protocol.max_turns
    (3, 20)
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, field_validator

from harness.core.errors import ConfigError

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
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataFile(_Strict):
    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int | None = None


class DataFiles(_Strict):
    chunks: DataFile
    questions: DataFile
    paraphrases: DataFile
    report: DataFile | None = None


class DataConfig(_Strict):
    url_pattern: str
    commit: str
    files: DataFiles


class PaperSplit(_Strict):
    test_size: float = Field(0.1, gt=0, lt=1)
    seed: int = 42
    expected_test_lines: list[int] | None = None


class SplitsConfig(_Strict):
    paper: PaperSplit = PaperSplit()
    default_eval: str = "test"


class RetrievalConfig(_Strict):
    retriever: str = "bm25"
    k: int = Field(3, ge=1, le=50)
    bm25_stopwords: str = "en"
    dense_model: str = "all-MiniLM-L6-v2"
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
    system: str
    user: str
    information: str
    result: str


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


class HooksConfig(_Strict):
    """Code a task reaches through small named hooks (``module:function``), lm-eval style.

    ``process_data``  called as ``fn(data: TaskData) -> TaskData`` right after the files are parsed
                      (e.g. to derive the task's own questions and split from the corpus);
    ``environment``   a subclass of :class:`harness.environment.env.Environment` that
                      :meth:`~harness.environment.env.Environment.from_task` builds instead of the base class.

    Hooks are imported only when data is loaded or an environment is built, never at config load.
    """

    process_data: str | None = None
    environment: str | None = None

    @field_validator("process_data", "environment")
    @classmethod
    def _dotted(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", v):
            raise ValueError(f"hook {v!r} must look like 'package.module:name'")
        return v


#: The module name that means "the hooks.py beside this task's task.yaml".
TASK_HOOKS_MODULE = "hooks"


def import_hook(spec: str, task_source: str | Path | None = None) -> Any:
    """Import a task hook ``module:name`` and return the object; ConfigError if refused or missing.

    Hooks run code, so only two places may provide it: the ``harness`` package (``harness.x.y:name``)
    and the task's own folder (``hooks:name`` = ``hooks.py`` beside ``task.yaml``, imported by path;
    ``task_source`` is the task.yaml). Any other module, installed or not, is refused.

    >>> import_hook("harness.core.config:load_task").__name__
    'load_task'
    >>> import_hook("os:system")
    Traceback (most recent call last):
    ...
    harness.core.errors.ConfigError: task hook 'os:system' is not allowed: ...
    """
    import importlib

    module, _, name = spec.partition(":")
    if module == TASK_HOOKS_MODULE:
        mod = _task_hooks_module(spec, task_source)
    elif module == "harness" or module.startswith("harness."):
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"task hook {spec!r} cannot be imported: {e}") from None
    else:
        raise ConfigError(f"task hook {spec!r} is not allowed: hooks must name a module of the harness package "
                          f"('harness.<module>:<name>') or the task's own hooks.py ('{TASK_HOOKS_MODULE}:<name>', "
                          "the file beside task.yaml)")
    try:
        return getattr(mod, name)
    except AttributeError as e:
        raise ConfigError(f"task hook {spec!r} cannot be imported: {e}") from None


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
    loader_spec = importlib.util.spec_from_file_location(mod_name, path)
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


class TaskConfig(_Strict):
    name: str
    version: int
    description: str = ""
    data: DataConfig
    splits: SplitsConfig = SplitsConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    noise: NoiseConfig = NoiseConfig()
    protocol: ProtocolConfig = ProtocolConfig()
    prompt: PromptConfig
    rewards: RewardsConfig
    judge: JudgeConfig = JudgeConfig()
    presets: dict[str, Preset] = {}
    hooks: HooksConfig = HooksConfig()
    #: Where the YAML came from (set by the loader, not by the file).
    source: str | None = None


def make_noise(level: float, modes: Any) -> NoiseConfig:
    """Build a NoiseConfig from command-line values, raising ConfigError (not a pydantic trace)."""
    try:
        return NoiseConfig(level=level, modes=modes)
    except ValidationError as e:
        raise ConfigError("; ".join(f"noise: {err['msg']}" for err in e.errors())) from None


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
        if e["type"] == "extra_forbidden":
            lines.append(f"  unknown key '{loc}'")
        else:
            lines.append(f"  {loc}: {e['msg']}")
    return "\n".join(lines)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, raising :class:`ConfigError` that names the file on any problem.

    Hostile input is a one-line error too: a directory, an unreadable or binary file, or nesting so
    deep (or a file so large) that the parser runs out of stack or memory.
    """
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a YAML file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); is it a YAML file?") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply to load; configs are a few levels deep") from None
    except MemoryError:
        raise ConfigError(f"{path}: YAML too large to load into memory") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def load_task(name_or_path: str | Path) -> TaskConfig:
    """Load and validate a task by name (``apollo3``) or by path to a folder or YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        path = p
    elif p.is_dir() and (p / "task.yaml").is_file():
        path = p / "task.yaml"
    else:
        path = tasks_root() / str(name_or_path) / "task.yaml"
        if not path.is_file():
            raise ConfigError(
                f"unknown task {str(name_or_path)!r}; available: {', '.join(available_tasks()) or 'none'}"
                f" (looked in {tasks_root()})"
            )
    raw = read_yaml(path)
    try:
        return TaskConfig(**raw, source=str(path))
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, str(path))) from None


def parse_weight_overrides(spec: str | None, base: RewardWeights) -> RewardWeights:
    """Apply ``"retry=0,format=1.5"`` overrides to reward weights (names are checked against the
    registry by :func:`harness.scoring.rewards.check_weights`, values here: numbers, finite).

    >>> w = parse_weight_overrides("retry=0", RewardWeights({"correctness": 4, "retry": 1}))
    >>> (w["correctness"], w["retry"])
    (4.0, 0.0)
    >>> parse_weight_overrides("retry=inf", w)
    Traceback (most recent call last):
    ...
    harness.core.errors.ConfigError: reward weight retry=inf is not a finite number
    """
    if not spec:
        return base
    values = dict(base.root)
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ConfigError(f"reward weight override {item!r} must look like name=value")
        k, v = (s.strip() for s in item.split("=", 1))
        try:
            values[k] = float(v)
        except ValueError:
            raise ConfigError(f"reward weight {k}={v!r} is not a number") from None
    return make_weights(values)


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
