"""Ablation definitions (``ablations/*.yaml``): what a sweep varies, validated before anything runs.

An ablation names a task and preset, a base training config (``harness train`` options), a search
space, the objective, the sampler and the pruner. Unknown keys and impossible ranges are errors that
name the file and the key.

Search-space entries (``search_space: {name: spec}``)::

    reward.retry:   {type: categorical, choices: [0.0, 1.0]}     # a reward weight (0 = ablated)
    train_noise:    {type: float, low: 0.0, high: 0.6}             # train noise level
    train_noise_mode: {type: categorical, choices: [drop_gold, "drop_gold,paraphrase"]}
    learning_rate:  {type: float, low: 1e-6, high: 1e-4, log: true}
    seed:           {type: categorical, choices: [0, 1, 2]}        # seeds as a dimension

Names other than ``reward.<name>`` are fields of :class:`~harness.train.config.TrainConfig` (the
``harness train`` options; dashes or underscores), except ``task`` (the ablation's own ``task:``)
and ``output_dir``, ``resume``, ``report`` (the sweep sets them per trial). ``reward.<name>`` names a
reward of the registry (:data:`harness.scoring.rewards.REWARDS`); these entries, in ``base:`` or
``search_space:``, are merged into one ``reward_weights`` override (:func:`trial_values`).

Values are checked as the trial's ``harness train`` would check them, before any trial runs
(:func:`check_values`): ``base:`` (and the sweep's command-line overrides) on their own, then every
choice of a categorical entry, and the ends (plus one inside point) of a numeric range, each on top
of ``base:``, through ``TrainConfig`` and :func:`~harness.train.config.resolve`. So ``max_steps:
sixty``, ``train_noise: 1.5`` in a choice list, a range or ``base:``, or a preset the task lacks are
refused naming the file and the key.

Arms that differ in more than one option (the collapse remedies: clip-higher sets ``epsilon_high``, rollback
sets ``on_collapse``, ...) are named under ``arms:`` and chosen by a categorical ``arm`` entry; a trial's
options are base < overrides < its arm's options < its other parameters, and its run directory records the
arm in ``trial_params.yaml``::

    arms: {none: {}, clip_higher: {epsilon_high: 0.28}, rollback: {on_collapse: rollback}}
    search_space:
      arm:  {type: categorical, choices: [none, clip_higher, rollback]}
      seed: {type: categorical, choices: [0, 1, 2, 3]}

Reward weights must be finite and >= 0. An ablation that means otherwise says so::

    allow_weights: [negative, non_finite]    # either or both; the run itself may still refuse them
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.core.config import TaskConfig, load_task, read_yaml, weight_mapping
from harness.core.errors import ConfigError
from harness.core.io import check_name
from harness.core.options import SEED_MAX, aliases, normalise_keys, validation_messages
from harness.train.config import TrainConfig, resolve

OBJECTIVES = ("peak", "auc", "final", "peak_and_collapse")
#: TrainConfig fields an ablation may not set: the sweep decides them (or the ablation's own ``task:``).
SWEEP_SETS = {"task": "set the ablation's top-level 'task:'", "output_dir": "each trial gets its own run directory",
              "resume": "a sweep resumes trials itself", "report": "the sweep writes one study report"}
REWARD_PREFIX = "reward."
#: The search-space entry that picks one of the ablation's named ``arms``.
ARM = "arm"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ParamSpec(_Strict):
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> "ParamSpec":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical needs a non-empty 'choices' list")
            if self.low is not None or self.high is not None:
                raise ValueError("categorical takes 'choices', not low/high")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"{self.type} needs 'low' and 'high'")
        if not all(math.isfinite(v) for v in (self.low, self.high, self.step or 0.0)):
            raise ValueError("range bounds and step must be finite numbers")
        if self.low > self.high:
            raise ValueError(f"impossible range: low {self.low} > high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError("log scale needs low > 0")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be > 0, got {self.step}")
        if self.type == "int" and not all(float(v).is_integer() for v in (self.low, self.high, self.step or 1)):
            raise ValueError("an int range needs whole-number low, high and step (or use type: float)")
        return self

    def values(self) -> list[Any] | None:
        """The values this entry can take, as Optuna samples them, or None when it is continuous: the
        choices; a stepped range's ``low + k * step`` up to ``high`` (a last step past ``high`` is dropped,
        as Optuna does); an int range without a step, every integer.

        >>> ParamSpec(type="float", low=0, high=1, step=0.35).values(), ParamSpec(type="int", low=2, high=4).values()
        ([0.0, 0.35, 0.7], [2, 3, 4])
        >>> ParamSpec(type="float", low=0, high=1).values() is None
        True
        """
        if self.type == "categorical":
            return list(self.choices)
        if self.step is None and self.type != "int":
            return None
        step = self.step or 1
        n = math.floor((self.high - self.low) / step + 1e-9) + 1
        vals = [self.low + i * step for i in range(n)]
        return [int(round(v)) for v in vals] if self.type == "int" else vals

    def grid_values(self) -> list[Any]:
        """:meth:`values`, for a grid: a numeric range needs an explicit step."""
        if self.type != "categorical" and self.step is None:
            raise ValueError("a grid over a numeric range needs 'step' (or use categorical choices)")
        return self.values()

    def contains(self, value: Any) -> bool:
        """True when ``value`` is one of :meth:`values` (floats to 1e-9), or the entry is continuous."""
        values = self.values()
        if values is None:
            return True
        return any(value == v or (isinstance(v, float) and isinstance(value, (int, float))
                                  and abs(float(value) - v) <= 1e-9) for v in values)

    def probes(self) -> list[tuple[str, Any]]:
        """Values that stand for the whole spec when checking it: every choice; a range's ends and one inside point.

        >>> ParamSpec(type="float", low=0.0, high=1.0).probes()
        [('low', 0.0), ('high', 1.0), ('inside', 0.381966)]
        >>> ParamSpec(type="categorical", choices=[0, "a"]).probes()
        [('choices[0]', 0), ('choices[1]', 'a')]
        """
        if self.type == "categorical":
            return [(f"choices[{i}]", c) for i, c in enumerate(self.choices)]
        if self.type == "int":
            return [("low", int(self.low)), ("high", int(self.high))]
        out: list[tuple[str, Any]] = [("low", self.low), ("high", self.high)]
        if self.low < self.high:   # a point no integer option accepts (unless the step keeps to whole numbers)
            inside = self.low + self.step if self.step else round(self.low + 0.381966 * (self.high - self.low), 6)
            if inside < self.high:
                out.append(("inside", inside))
        return out


class SamplerConfig(_Strict):
    name: Literal["tpe", "grid", "random"] = "tpe"
    seed: int = Field(0, ge=0, le=SEED_MAX)
    n_startup_trials: int = Field(5, ge=0)


class PrunerConfig(_Strict):
    name: Literal["median", "none", "hyperband"] = "median"
    n_startup_trials: int = Field(2, ge=0)
    n_warmup_steps: int = Field(0, ge=0)


class CollapseStop(_Strict):
    """Trial stopping rules: the online detector of ``harness train`` (:mod:`harness.stats.detect`).

    ``enabled`` stops a trial when the online collapse test fires (``--stop-on-collapse``: the trial ends
    with status ``stopped_collapse`` and keeps its peak model); ``patience`` stops it after that many
    evals without a statistically better one (``--patience``; None: off). Both are written into each
    trial's config unless ``base:`` or the search space sets them. ``delta`` and ``m`` parametrise the
    offline analysis that records each trial's collapse step (collapse below ``(1 - delta)`` x the
    peak, confirmed over ``m`` evals).
    """

    enabled: bool = True
    patience: int | None = Field(None, ge=1)
    delta: float = Field(0.5, gt=0, lt=1)
    m: int = Field(2, ge=1)


class Ablation(_Strict):
    name: str
    description: str = ""
    task: str = "apollo3"
    preset: str = "rezero"
    base: dict[str, Any] = {}
    search_space: dict[str, ParamSpec]
    objective: Literal["peak", "auc", "final", "peak_and_collapse"] = "peak"
    sampler: SamplerConfig = SamplerConfig()
    pruner: PrunerConfig = PrunerConfig()
    collapse_stop: CollapseStop = CollapseStop()
    n_trials: int | None = Field(None, ge=1)
    #: Named sets of options, chosen by a categorical ``arm`` entry of the search space (module docstring).
    arms: dict[str, dict[str, Any]] = {}
    #: Reward weights the ablation means even though they are unusual (see the module docstring).
    allow_weights: list[Literal["negative", "non_finite"]] = []
    source: str | None = None

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        return check_name(v, "ablation name")   # the study folder is runs/sweeps/<name>

    @model_validator(mode="after")
    def _arms(self) -> "Ablation":
        spec = self.search_space.get(ARM)
        if self.arms and (spec is None or spec.type != "categorical"):
            raise ValueError(f"arms: need a categorical '{ARM}' entry in search_space choosing among them")
        if spec is not None:
            if not self.arms:
                raise ValueError(f"search_space.{ARM}: name the arms' options under 'arms:'")
            unknown = [c for c in spec.choices if c not in self.arms]
            if unknown:
                raise ValueError(f"search_space.{ARM}: {unknown} not among arms: {', '.join(self.arms)}")
        return self

    @model_validator(mode="after")
    def _grid(self) -> "Ablation":
        if self.sampler.name == "grid":
            for name, spec in self.search_space.items():
                try:
                    spec.grid_values()
                except ValueError as e:
                    raise ValueError(f"search_space.{name}: {e}") from None
        return self

    @property
    def directions(self) -> list[str]:
        return ["maximize", "maximize"] if self.objective == "peak_and_collapse" else ["maximize"]

    def grid_size(self) -> int:
        n = 1
        for spec in self.search_space.values():
            n *= len(spec.grid_values())
        return n

    def space_size(self) -> int | None:
        """How many distinct parameter sets the search space holds, or None when a parameter is continuous.

        >>> Ablation(name="x", search_space={"reward.retry": {"type": "float", "low": 0, "high": 1, "step": 0.5},
        ...                                  "seed": {"type": "int", "low": 0, "high": 1}}).space_size()
        6
        """
        n = 1
        for spec in self.search_space.values():
            values = spec.values()
            if values is None:
                return None
            n *= len(values)
        return n

    def in_space(self, params: dict[str, Any]) -> bool:
        """True when every sampled parameter is one of its entry's values (an enqueued baseline off the
        step grid is not)."""
        return all(spec.contains(params[name]) for name, spec in self.search_space.items() if name in params)


# ----------------------------------------------------------------------------- trial values


def trial_values(ab: Ablation, params: dict[str, Any] | None = None,
                 overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``harness train`` options of one trial: task and preset < ``base`` < ``overrides`` < ``params``.

    ``reward.<name>`` entries and ``reward_weights`` (a mapping, or ``k=v,...`` text) of every layer are
    merged into one ``{name: weight}`` mapping, a later layer overriding an earlier one, so two trials
    with equal weightings have equal configs (and are recognised as duplicates).

    >>> ab = Ablation(name="x", base={"max-steps": 5, "reward_weights": "retry=0,format=1"},
    ...               search_space={"reward.retry": {"type": "categorical", "choices": [0, 1]}})
    >>> trial_values(ab, {"reward.retry": 1, "seed": 2}, {"max_steps": 3})
    {'task': 'apollo3', 'preset': 'rezero', 'max_steps': 3, 'seed': 2, 'reward_weights': {'format': 1.0, 'retry': 1.0}}
    """
    values: dict[str, Any] = {"task": ab.task, "preset": ab.preset}
    weights: dict[str, float] = {}
    params = dict(params or {})
    arm = ab.arms.get(params.pop(ARM)) if ARM in params else None
    for layer in (ab.base, overrides or {}, arm or {}, params):
        for k, v in normalise_keys(layer).items():
            if k.startswith(REWARD_PREFIX):
                weights.update(weight_mapping({k[len(REWARD_PREFIX):]: v}) or {})
            elif k == "reward_weights":
                weights.update(weight_mapping(v) or {})
            else:
                values[k] = v
    if weights:
        values["reward_weights"] = dict(sorted(weights.items()))
    return values


# ----------------------------------------------------------------------------- checks


def _name_problem(key: str) -> str | None:
    from harness.scoring.rewards import REWARDS

    k = normalise_keys({key: None}).popitem()[0]
    if k.startswith(REWARD_PREFIX):
        reward = k[len(REWARD_PREFIX):]
        if reward in REWARDS:
            return None
        close = difflib.get_close_matches(reward, list(REWARDS), n=1)
        return (f"unknown reward '{reward}'" + (f" (did you mean {REWARD_PREFIX}{close[0]}?)" if close else "")
                + f"; valid: {', '.join(sorted(REWARDS))}")
    if k in SWEEP_SETS:
        return f"an ablation does not set '{k}': {SWEEP_SETS[k]}"
    if k not in TrainConfig.model_fields and k not in aliases(TrainConfig):
        close = difflib.get_close_matches(k, list(TrainConfig.model_fields), n=1)
        return f"unknown training option '{key}'" + (f" (did you mean {close[0]}?)" if close else "")
    return None


def _weight_problem(value: Any, allow: list[str]) -> str | None:
    """Why a reward weight is refused at the ablation level, or None."""
    if isinstance(value, str):  # from the command line (--set reward.retry=0)
        try:
            value = float(value)
        except ValueError:
            return f"a reward weight must be a number, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"a reward weight must be a number, got {value!r}"
    if not math.isfinite(value) and "non_finite" not in allow:
        return "a reward weight must be finite (say 'allow_weights: [non_finite]' if you mean it)"
    if value < 0 and "negative" not in allow:
        return "a reward weight must be >= 0 (say 'allow_weights: [negative]' if you mean it)"
    return None


def refusal(values: dict[str, Any], task: TaskConfig, allow: list[str] = (), name_of=str) -> str | None:
    """Why ``harness train`` would refuse these options (or None): TrainConfig, then resolve against the task.

    ``name_of`` turns a field name into the key the user wrote (e.g. ``base.max_steps``).
    """
    try:
        cfg = TrainConfig(**values)
    except ValidationError as e:
        return "; ".join(validation_messages(e, name_of))
    try:
        resolved = resolve(cfg, task)
        from harness.policies import check_model_name

        check_model_name(cfg.model, "hf")  # a misspelt model name or micro build parameter fails here, not per trial
    except ConfigError as e:
        return str(e)
    for name, w in resolved.weights.model_dump().items():
        why = _weight_problem(w, list(allow))
        if why:
            return f"reward weight {name}={w}: {why}"
    return None


def check_values(ab: Ablation, task: TaskConfig, overrides: dict[str, Any] | None = None) -> list[str]:
    """Every problem a trial of ``ab`` would meet with its options, as ``key: message`` lines (empty: fine).

    Names first (against TrainConfig and the reward registry); then ``base`` + ``overrides`` on their
    own; then each probe of each search-space entry (:meth:`ParamSpec.probes`) on top of them.
    """
    overrides = overrides or {}
    layers = (("base.", ab.base), ("search_space.", {k: v for k, v in ab.search_space.items() if k != ARM}),
              ("override ", overrides), *((f"arms.{a}.", opts) for a, opts in ab.arms.items()))
    problems = [f"{where}{key}: {why}" for where, keys in layers for key in keys if (why := _name_problem(key))]
    if problems:
        return problems
    for where, layer in (("base", ab.base), ("override", overrides)):
        for key, value in layer.items():
            if key.replace("-", "_").startswith(REWARD_PREFIX) and (why := _weight_problem(value, ab.allow_weights)):
                problems.append(f"{where}.{key} = {value!r}: {why}")
    given = {**{k.replace("-", "_"): f"base.{k}" for k in ab.base},
             **{k.replace("-", "_"): f"override {k}" for k in overrides}}
    why = refusal(trial_values(ab, {}, overrides), task, ab.allow_weights, name_of=lambda f: given.get(f, f))
    if why:
        return problems + [why if why.split(":", 1)[0] in given.values() else f"base: {why}"]
    for name, spec in ab.search_space.items():
        for label, value in spec.probes():
            where = f"search_space.{name}.{label} = {value!r}"
            if name.replace("-", "_").startswith(REWARD_PREFIX) and (why := _weight_problem(value, ab.allow_weights)):
                problems.append(f"{where}: {why}")
                continue
            why = refusal(trial_values(ab, {name: value}, overrides), task, ab.allow_weights)
            if why:
                hint = "; use type: int for an integer option" if label == "inside" and spec.type == "float" else ""
                problems.append(f"{where}: {why}{hint}")
    return problems


def shipped_ablations_dir() -> Path:
    """The ablation files that come with the harness: the checkout's top-level ``ablations/`` (editable
    install), or the copy a wheel ships as ``harness/_ablations`` (``pip install .``; see ``setup.py``)."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "_ablations"
    return packaged if packaged.is_dir() else package.parent / "ablations"


def available_ablations() -> list[str]:
    root = shipped_ablations_dir()
    return sorted(p.stem for p in root.glob("*.yaml")) if root.is_dir() else []


def ablation_path(name_or_path: str | Path) -> Path:
    """The ablation file a path or a shipped ablation's name (``micro_retry``) names; ConfigError when none.

    >>> ablation_path("micro_retry").name
    'micro_retry.yaml'
    """
    p = Path(name_or_path)
    if p.is_file():
        return p
    name = str(name_or_path)
    stem = name[:-5] if name.endswith(".yaml") else name
    try:
        check_name(stem)
    except ValueError:
        stem = ""
    shipped = shipped_ablations_dir() / f"{stem}.yaml"
    if stem and "/" not in name and shipped.is_file():
        return shipped
    raise ConfigError(f"no ablation file {name!r}; give a path or the name of a shipped ablation: "
                      f"{', '.join(available_ablations()) or 'none'} (in {shipped_ablations_dir()})")


def load_ablation(path: str | Path, overrides: dict[str, Any] | None = None) -> Ablation:
    """Read and check an ablation file (a path, or a shipped ablation's name) and the sweep's ``overrides``,
    raising ConfigError naming file and keys."""
    path = ablation_path(path)
    raw = read_yaml(path)
    try:
        ab = Ablation(**raw, source=str(path))
    except ValidationError as e:
        lines = [f"invalid ablation {path}:"]
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            lines.append(f"  {loc or '(top level)'}: {msg}" if loc else f"  {msg}")
        raise ConfigError("\n".join(lines)) from None
    task = load_task(ab.task)
    if ab.preset not in task.presets:
        raise ConfigError(f"{path}: preset {ab.preset!r} is not in task {ab.task}; valid: {', '.join(task.presets)}")
    problems = check_values(ab, task, overrides)
    if problems:
        raise ConfigError("\n".join([f"invalid ablation {path}:"] + [f"  {p}" for p in problems]))
    return ab
