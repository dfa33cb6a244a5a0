"""The run record: ``RUN_DIR/results.json`` as one typed, versioned model, read and written only here.

Every run (``harness run``: kind ``eval``; ``harness train``: kind ``train``) ends by writing one
:class:`RunRecord`; every reader (reports, sweeps, benches, the resume checks) goes through
:func:`read_record`, so no reader guards a key with ``.get`` or falls back between spellings.
Modelled on inspect_ai's ``EvalLog``: the record says what was run (task, models, config, seed,
versions, commit, machine), what came out (metrics per policy and noise level, and for training the
peak, the stopping decision, the last eval and the faults) and how it ended (status, timing).

Versions
========  ===================================================================================
version   change
========  ===================================================================================
1         the lm-eval-like dict (``results``, ``n-samples``, ``config``, ...); the accuracy
          interval (``accuracy_ci_low/high``) was a percentile bootstrap over questions
2         the same keys, typed; ``interval`` names the family of every accuracy interval the
          record holds (``wilson``: the 95% Wilson score interval, the one the reports print)
========  ===================================================================================

A version-1 file reads as a version-2 record with ``interval = "bootstrap"`` (what its numbers are);
a newer version than this code knows is refused with one line.

>>> rec = RunRecord(kind="eval", task=TaskRef(name="apollo3", version=1), status="complete")
>>> rec.schema_version, rec.interval, rec.is_train
(2, 'wilson', False)
>>> RunRecord.from_dict({"schema_version": 1, "kind": "eval", "task": {"name": "t", "version": 1},
...                      "status": "complete", "n-samples": {"p": {"noise=0": 4}}}).interval
'bootstrap'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.core.errors import DataError

SCHEMA_VERSION = 2

#: How a run ended. Training runs may also end ``stopped_collapse`` / ``stopped_patience``
#: (``--stop-on-collapse``, ``--patience``) or ``diverged`` (NaN/inf weights, logits or loss).
Status = Literal["running", "complete", "partial", "diverged", "failed", "stopped_collapse", "stopped_patience"]
#: Families of accuracy interval a record may hold (``cluster_bootstrap``: a K-sample run's, resampling
#: questions with all their samples: :func:`harness.stats.intervals.cluster_interval`).
Interval = Literal["wilson", "bootstrap", "cluster_bootstrap"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskRef(_Part):
    name: str
    version: int | str = 1


class ModelRef(_Part):
    backend: str
    model: str


class SplitEval(_Part):
    """One split evaluated at one step: its accuracy (avg@k with K samples) and 95% interval, n questions."""

    split: str
    step: int | None = None
    accuracy: float | None = None
    interval: tuple[float, float] | None = None
    n: int | None = None


#: How a selection on the reported questions is labelled wherever it appears.
OPTIMISTIC = "optimistic (selected on the reported questions)"


class Peak(_Part):
    """The best eval of the selection split so far (the earliest on ties) with its Wilson interval, the
    evals tied with it and their pooled level; ``checkpoint`` is ``"peak"`` when ``RUN_DIR/peak/`` holds its
    model. ``split`` is the selection split (None: a record from before selection had its own split, which
    selected on the reported questions); ``reported`` the reported split (test) at the selected step: the
    headline number; ``optimistic`` is True when the two splits are one (the paper's protocol)."""

    step: int
    accuracy: float
    interval: tuple[float, float] | None = None
    n: int | None = None
    tied_steps: list[int] = Field(default_factory=list)
    level: float | None = None
    level_interval: tuple[float, float] | None = None
    checkpoint: str | None = None
    split: str | None = None
    reported: SplitEval | None = None
    optimistic: bool | None = None


class Stopping(_Part):
    """The stopping rules a training run had and what the online detector decided."""

    stop_on_collapse: bool = False
    patience: int | None = None
    #: What a collapse does: ``stop``, ``rollback`` or None (nothing).
    on_collapse: str | None = None
    decision: str | None = None
    stop_step: int | None = None
    reason: str | None = None
    evals_since_better: int | None = None
    #: Rollbacks done (``--on-collapse rollback``): ``{step, action, to_step, lr_scale}`` each.
    interventions: list[dict] = []


class Final(_Part):
    """The last eval: the selection split's accuracy and, when evaluated there, the reported split's."""

    step: int
    accuracy: float | None = None
    reported: SplitEval | None = None


class Comparability(_Part):
    """The protocol that decides whether two runs' numbers may be compared: every field that differs
    between two runs is printed before any comparison of them (``harness report A B``, the study report).

    ``task_sha256`` hashes the task's whole config (presets, prompts, everything a task file says);
    ``data`` is each table's sha256 as loaded; ``split_lines`` the positions of the questions evaluated
    (after ``--eval-limit``); ``prompt_sha256`` hashes the system, user, information and result
    templates; ``seed_scheme`` names how noise and samples are seeded; ``reward_weights`` are the
    weights rewards were computed with."""

    task: str
    task_version: int | str = 1
    task_sha256: str | None = None
    data: dict[str, str] = Field(default_factory=dict)
    split: str
    split_lines: list[int] = Field(default_factory=list)
    selection_split: str | None = None
    selection_lines: list[int] | None = None
    retriever: str
    embedding_model: str | None = None
    k: int
    result_format: str
    prompt_profile: str | None = None
    prompt_sha256: str
    noise_levels: list[float] = Field(default_factory=list)
    noise_modes: list[str] = Field(default_factory=list)
    seed: int = 0
    seed_scheme: str
    max_turns: int
    max_new_tokens: int
    max_episode_tokens: int
    stop_after_action: bool
    judge: str
    llm_judge: str | None = None
    reward_semantics: str
    reward_weights: dict[str, float] = Field(default_factory=dict)
    samples: int = 1
    temperature: float = 0.0

    def differences(self, other: Comparability) -> list[tuple[str, Any, Any]]:
        """``(field, this value, other value)`` for every field that differs, in field order.

        >>> a = Comparability(task="t", split="test", retriever="bm25", k=3, result_format="[{rank}] {text}",
        ...                   prompt_sha256="p", seed_scheme="v1", max_turns=20, max_new_tokens=512,
        ...                   max_episode_tokens=8192, stop_after_action=True, judge="default",
        ...                   reward_semantics="rezero")
        >>> a.differences(a.model_copy(update={"k": 5, "samples": 4}))
        [('k', 3, 5), ('samples', 1, 4)]
        """
        mine, theirs = self.model_dump(), other.model_dump()
        return [(f, mine[f], theirs[f]) for f in type(self).model_fields if mine[f] != theirs[f]]


class Fault(_Part):
    """A training fault: ``non_finite``, ``kl_explosion``, ``zero_reward_variance`` or ``error``."""

    step: int
    kind: str
    detail: str = ""


class LearningVerdict(_Part):
    """Did a training run learn (:mod:`harness.stats.learning`): ``learned``, ``flat`` (it did not; ``cause``
    names the likely reason), ``declined`` or ``too_short``, with the sentence the command line prints."""

    verdict: Literal["learned", "flat", "declined", "too_short"]
    cause: str | None = None
    message: str = ""
    start_accuracy: float | None = None
    start_interval: tuple[float, float] | None = None
    best_step: int | None = None
    best_accuracy: float | None = None
    #: ``||w - w_0|| / ||w_0||`` of the trainable weights at the last eval (a fixed sample of them).
    weight_change: float | None = None
    #: Share of the steps on which every group's rewards were equal.
    zero_std_share: float | None = None


class RunRecord(_Part):
    """``results.json``. Metric names inside ``results`` are :mod:`harness.scoring.metrics`'s."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_version: int = SCHEMA_VERSION
    kind: Literal["eval", "train"]
    task: TaskRef
    #: One entry per evaluated policy (a training run: the model it trains).
    model: list[ModelRef] = Field(default_factory=list)
    #: True when a micro-scale model was evaluated (not comparable to the paper's 3B model).
    micro_scale: bool = False
    #: ``{policy: {"noise=<level>": {metric: value}}}``.
    results: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    #: Episodes per policy and noise level.
    n_samples: dict[str, dict[str, int]] = Field(default_factory=dict, alias="n-samples")
    #: The full resolved config of the run (every option and task default used).
    config: dict[str, Any] = Field(default_factory=dict)
    reward_weights: dict[str, float] = Field(default_factory=dict)
    #: ``rezero`` or ``strict``: how the rewards read an episode (docs/rewards.md).
    reward_semantics: str = "rezero"
    #: ``{"stop_after_action": bool}``: whether each turn stopped at its first action.
    protocol: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    versions: dict[str, str] = Field(default_factory=dict)
    #: Commit of the harness checkout (suffix ``-dirty`` when it had uncommitted changes).
    git_hash: str | None = None
    machine: dict[str, Any] = Field(default_factory=dict)
    #: Wall seconds and the generate / environment split.
    timing: dict[str, Any] = Field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    status: Status
    #: Token usage of served backends (``--backend openai``), per policy and ``llm_judge``: prompt and
    #: completion tokens over the episodes, requests and cached responses, and what this process sent.
    usage: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: The family of every accuracy interval in the record (``accuracy_ci_low/high``, the peak's).
    interval: Interval = "wilson"
    #: What decides whether this run's numbers may be compared with another's (None: a record from before
    #: it was kept).
    comparability: Comparability | None = None
    # ------------------------------------------------------------------ training runs only
    peak: Peak | None = None
    stopping: Stopping | None = None
    final: Final | None = None
    faults: list[Fault] = Field(default_factory=list)
    #: Whether the run learned, and the likely cause when it did not (absent in records made before it existed).
    learning: LearningVerdict | None = None

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        """Read older versions as this one (see the module docstring)."""
        if not isinstance(data, dict):
            return data
        version = data.get("schema_version", SCHEMA_VERSION)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError(f"schema_version must be an integer, got {version!r}")
        if version > SCHEMA_VERSION:
            raise ValueError(f"schema_version {version} is newer than this harness reads ({SCHEMA_VERSION}); "
                             "upgrade the harness")
        if version == 1:
            data = {**data, "schema_version": SCHEMA_VERSION, "interval": "bootstrap"}
        return data

    # ------------------------------------------------------------------ reading and writing
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        return cls.model_validate(data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to ``results.json`` (``n-samples`` spelt as lm-eval spells it)."""
        return self.model_dump(mode="json", by_alias=True)

    @property
    def is_train(self) -> bool:
        return self.kind == "train"

    @property
    def policies(self) -> list[str]:
        return [m.model for m in self.model]

    def metrics(self, policy: str | None = None, noise: float | None = None) -> dict[str, Any]:
        """The metrics of one policy at one noise level (the only ones when the run holds one)."""
        pol = policy if policy is not None else next(iter(self.results), None)
        by_noise = self.results.get(pol or "", {})
        key = noise_key(noise) if noise is not None else next(iter(by_noise), None)
        return by_noise.get(key or "", {})

    def train_options(self) -> dict[str, Any]:
        """The run's own options (``config['train']`` or ``config['run']`` of a record, else the config)."""
        for section in ("train", "run"):
            if isinstance(self.config.get(section), dict):
                return self.config[section]
        return self.config


def noise_key(level: float) -> str:
    """The key of a noise level in :attr:`RunRecord.results`.

    >>> noise_key(0.5), noise_key(0.0)
    ('noise=0.5', 'noise=0')
    """
    return f"noise={float(level):g}"


def read_record(path: str | Path) -> RunRecord:
    """``results.json`` (or a run directory holding one) as a :class:`RunRecord`; a DataError naming the
    file and the first problem when it is missing, not JSON or not a record."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not readable JSON ({_first_line(e)})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    try:
        return RunRecord.from_dict(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ())) or "the record"
        raise DataError(f"{path} is not a run record: {where}: {err.get('msg')}") from None


def write_record(path: str | Path, record: RunRecord) -> None:
    """Write ``record`` atomically (NaN and infinities become null)."""
    from harness.core.results import clean_nans, write_json

    path = Path(path)
    write_json(path / "results.json" if path.is_dir() else path, clean_nans(record.to_dict()))


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
