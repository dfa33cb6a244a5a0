"""The Optuna side of a sweep: storage, sampler, pruner, the study itself, its baseline and its summary.

Storage is Optuna's RDB storage (the distributed engine; no scheduler of our own): a SQLite file in
the study directory by default, any SQLAlchemy URL (e.g. ``postgresql://...``) for workers on many
machines. Heartbeats mark a killed worker's trial failed and ``RetryHeartbeatStaleTrialCallback``
re-queues its parameters; ``load_if_exists`` makes a rerun resume the study without repeating
finished trials.

The harness knowingly uses Optuna features marked experimental (heartbeats, the stale-trial retry
callback, ``fail_stale_trials``); :func:`known_experimental` silences their ExperimentalWarning, and
only theirs, around the calls that use them.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from harness.sweep.ablation import Ablation

#: Heartbeat period and the silence after which a trial counts as dead (its worker was killed).
HEARTBEAT_S = int(os.environ.get("HARNESS_SWEEP_HEARTBEAT", "10"))
GRACE_S = int(os.environ.get("HARNESS_SWEEP_GRACE", "30"))
#: ``stopped`` attribute of a trial not run because an earlier one has its configuration.
DUPLICATE = "duplicate"
#: The experimental Optuna features the harness uses on purpose (matched against the warning text).
KNOWN_EXPERIMENTAL = (r".*(heartbeat_interval|grace_period|RetryHeartbeatStaleTrialCallback|fail_stale_trials"
                      r"|retried_trial_number|multivariate|constant_liar|set_metric_names)")
#: What each objective's values are called in the study (Optuna's metric names: the dashboard's axis labels,
#: the report's columns), by the ablation's ``objective``. Not the trial attributes' names (``peak``,
#: ``collapse_step``): the collapse objective is the last step + 1 when a trial did not collapse.
METRIC_NAMES = {"peak": ["peak accuracy"], "auc": ["auc accuracy"], "final": ["final accuracy"],
                "peak_and_collapse": ["peak accuracy", "collapse step or end"]}


@contextmanager
def known_experimental() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning for :data:`KNOWN_EXPERIMENTAL` inside the block (others still show)."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ExperimentalWarning, message=KNOWN_EXPERIMENTAL)
        yield


def default_storage(study_dir: Path) -> str:
    return f"sqlite:///{(study_dir / 'study.db').resolve()}"


def make_storage(url: str):
    """Optuna's RDB storage at ``url`` with heartbeats; a ConfigError in one line (password masked) when it
    cannot be opened (:func:`harness.core.storage.storage_error`)."""
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    from harness.core.errors import ConfigError
    from harness.core.storage import storage_error, storage_url

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    try:
        with known_experimental():
            return RDBStorage(storage_url(url), heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2), **kwargs)
    except Exception as e:
        msg = storage_error(url, e)
        if msg is None:
            raise
        raise ConfigError(msg) from None


def worker_seed(seed: int, worker: int = 0, finished: int = 0) -> int:
    """The sampler seed of worker ``worker`` (0, 1, ... within one ``harness sweep --workers K``) that opens
    a study holding ``finished`` finished trials.

    Worker 0 of a new study keeps the ablation's seed, so a one-worker sweep draws what it always drew.
    The others are offset, because K processes seeded alike propose the same configurations in the same
    order (measured: 2 workers with TPE seed 0 proposed 4 of the first 12 trials twice); so is a resumed
    study, because a random sampler (and TPE's random start) would replay the first run's proposals.

    >>> [worker_seed(0, w) for w in range(3)], worker_seed(7, 1), worker_seed(0, 0, finished=2)
    ([0, 1000003, 2000006], 1000010, 15838)
    """
    return seed + 1_000_003 * worker + 7919 * finished


def make_sampler(ab: Ablation, worker: int = 0, finished: int = 0):
    """The ablation's sampler, seeded for ``worker`` of a study with ``finished`` finished trials
    (:func:`worker_seed`)."""
    import optuna

    s = ab.sampler
    seed = worker_seed(s.seed, worker, finished)
    if s.name == "grid":
        return optuna.samplers.GridSampler({k: v.grid_values() for k, v in ab.search_space.items()}, seed=seed)
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with known_experimental():
        # constant_liar: a trial another worker is running counts as a poor result while it runs, so parallel
        # workers do not all propose the point TPE likes best (Optuna's advice for distributed TPE)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.n_startup_trials, multivariate=True,
                                          constant_liar=True)


def make_pruner(ab: Ablation):
    import optuna

    p = ab.pruner
    if p.name == "none" or len(ab.directions) > 1:   # Optuna prunes single-objective studies only
        return optuna.pruners.NopPruner()
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps)


def open_study(ab: Ablation, storage_url: str, study_name: str, worker: int = 0):
    import optuna

    study = optuna.create_study(study_name=study_name, storage=make_storage(storage_url),
                                sampler=make_sampler(ab, worker),
                                pruner=make_pruner(ab), directions=ab.directions, load_if_exists=True)
    finished = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    if finished:  # a resumed study: draw on from where the last run left off, not its proposals again
        study.sampler = make_sampler(ab, worker, finished)
    serialise_claims(study, storage_url)
    if "objectives" not in study.user_attrs:
        study.set_user_attr("objectives", ["peak", "collapse_step"] if ab.objective == "peak_and_collapse"
                            else [ab.objective])
    if not study.metric_names:   # optuna-dashboard shows these, not "Objective 0"
        with known_experimental():
            study.set_metric_names(METRIC_NAMES[ab.objective])
    return study


def sqlite_path(storage_url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for another storage or an in-memory database).

    >>> str(sqlite_path("sqlite:////srv/sweeps/study.db")), str(sqlite_path("sqlite:///runs/study.db"))
    ('/srv/sweeps/study.db', 'runs/study.db')
    >>> sqlite_path("postgresql://u@h/db") is None and sqlite_path("sqlite://") is None
    True
    """
    prefix = "sqlite:///"
    if not storage_url.startswith(prefix) or len(storage_url) == len(prefix):
        return None
    return Path(storage_url[len(prefix):].split("?", 1)[0])


def serialise_claims(study, storage_url: str) -> None:
    """Let one worker at a time claim a waiting trial of a SQLite study (a file lock beside the database).

    Optuna claims an enqueued or re-queued trial by reading it WAITING and writing it RUNNING, with
    ``SELECT ... FOR UPDATE`` to keep two workers from both taking it; SQLite ignores that clause, so two
    workers that ask at the same moment can both get the same trial and train it twice (seen: Study B's
    first enqueued trial ran in both workers of `harness sweep --workers 2`, in two run folders). PostgreSQL
    honours the row lock, so only SQLite studies get the file lock, which covers every worker on the machine
    that holds the database file (SQLite's own scope)."""
    import fcntl

    db = sqlite_path(storage_url)
    if db is None:
        return
    lock = db.with_name(db.name + ".claim.lock")
    pop = study._pop_waiting_trial_id   # Optuna's claim step (Study._ask calls it first)

    def claim_one_at_a_time() -> int | None:
        with open(lock, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                return pop()
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    study._pop_waiting_trial_id = claim_one_at_a_time


def enqueue_baseline(study, ab: Ablation) -> dict[str, Any] | None:
    """Enqueue the preset's own reward weights first (Optuna's enqueue_trial idiom) on a fresh study.

    Only ``reward.<name>`` entries whose preset value lies in the search space are fixed; the others
    are sampled. Nothing is enqueued on a study that has trials, or for a grid (which covers every
    cell anyway). Returns the enqueued parameters, or None.
    """
    if study.trials or ab.sampler.name == "grid":
        return None
    from harness.core.config import load_task

    weights = load_task(ab.task).presets[ab.preset].reward_weights.model_dump()
    params = {}
    for name, spec in ab.search_space.items():
        key = name.replace("-", "_")
        if not key.startswith("reward."):
            continue
        v = weights[key[len("reward."):]]
        inside = v in spec.choices if spec.type == "categorical" else spec.low <= v <= spec.high
        if inside:
            params[name] = v
    if not params:
        return None
    study.enqueue_trial(params, skip_if_exists=True)
    return params


def is_duplicate(trial) -> bool:
    """A trial that was not run because an earlier trial has its configuration (``stopped: duplicate``)."""
    return trial.user_attrs.get("stopped") == DUPLICATE


def claimed(study) -> int:
    """Trials finished, running or queued: what counts towards the study's trial budget.

    Duplicates (the configuration of an earlier trial, not run again) do not count, so ``n_trials``
    means that many distinct configurations.
    """
    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    return sum(t.state in live and not is_duplicate(t) for t in study.get_trials(deepcopy=False))


def silent_trials(study, seconds: float) -> list[int]:
    """Numbers of the study's RUNNING trials whose last heartbeat is more than ``seconds`` old: their worker
    has stopped beating (killed, or its machine gone) but the grace period has not yet failed them.

    A live worker beats every :data:`HEARTBEAT_S` seconds, so ``2 * HEARTBEAT_S`` tells the dead from the
    living; a trial without any heartbeat (created by hand, or by a storage without heartbeats) is not
    counted. Reads the storage's heartbeat table through Optuna's own stale-trial query.
    """
    from optuna.trial import TrialState

    rdb = getattr(study._storage, "_backend", study._storage)   # load_study wraps the RDB storage in a cache
    if not hasattr(rdb, "_get_stale_trial_ids") or getattr(rdb, "heartbeat_interval", None) is None:
        return []
    grace = rdb.grace_period
    rdb.grace_period = seconds
    try:
        ids = set(rdb._get_stale_trial_ids(study._study_id))
    finally:
        rdb.grace_period = grace
    return sorted(t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                  if t._trial_id in ids)


def first_failure(study) -> dict[str, Any] | None:
    """The earliest failed trial's number, reason and log (None if no trial failed)."""
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    if not failed:
        return None
    t = min(failed, key=lambda t: t.number)
    return {"number": t.number, "reason": t.user_attrs.get("fail_reason") or "(no reason recorded)",
            "log": t.user_attrs.get("log")}


def summarize(ab: Ablation, storage_url: str, study_name: str) -> dict[str, Any]:
    import optuna

    study = optuna.load_study(study_name=study_name, storage=make_storage(storage_url))
    counts: dict[str, int] = {}
    for t in study.trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    if len(ab.directions) == 1:
        done = [t for t in study.trials if t.state.name == "COMPLETE"]
        best = sorted(done, key=lambda t: -t.value)[:5]
    else:
        best = study.best_trials
    running = [t.number for t in study.trials if t.state.name == "RUNNING"]
    return {
        "study": study_name, "objective": ab.objective, "states": counts,
        "running": running, "running_without_heartbeat": silent_trials(study, 2 * HEARTBEAT_S) if running else [],
        "duplicates": sum(is_duplicate(t) for t in study.trials),
        "best": [{"number": t.number, "values": t.values, "params": t.params,
                  **{k: t.user_attrs.get(k) for k in ("peak", "peak_step", "collapse_step", "run_dir")}}
                 for t in best],
        "steps_run": steps_run(study),
        "first_failure": first_failure(study),
    }


def steps_run(study) -> int:
    """Training steps actually run over all trials (the last step in each trial's curve, train rows included)."""
    from harness.core.errors import DataError
    from harness.core.rundir import read_curve

    total = 0
    for t in study.trials:
        if not t.user_attrs.get("run_dir"):   # a duplicate, or a trial that never started its run
            continue
        try:
            curve = read_curve(Path(t.user_attrs["run_dir"]))
        except (OSError, DataError):
            continue
        total += int(curve["step"].max()) if len(curve) else 0
    return total
