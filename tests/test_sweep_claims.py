"""Workers sharing a SQLite study never claim the same waiting trial (harness.sweep.study.serialise_claims).

Optuna claims an enqueued trial by reading it WAITING and writing it RUNNING under SELECT ... FOR UPDATE,
which SQLite ignores: two workers asking at once could both get it (Study B's first trial ran twice). The
test makes workers race for many enqueued trials and checks each was claimed once, and that without the
lock the race is real (so the test can fail)."""

from __future__ import annotations

import multiprocessing as mp

import pytest

pytestmark = pytest.mark.tier("unit")

TRIALS, WORKERS = 60, 4


def _claim_all(url: str, locked: bool, start, out) -> None:
    import optuna

    from harness.sweep.study import make_storage, serialise_claims

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="claims", storage=make_storage(url))
    if locked:
        serialise_claims(study, url)
    start.wait()
    mine = []
    while (trial_id := study._pop_waiting_trial_id()) is not None:
        mine.append(trial_id)
    out.put(mine)


def _race(tmp_path, locked: bool) -> list[int]:
    import optuna

    from harness.sweep.study import make_storage

    url = f"sqlite:///{tmp_path / ('locked' if locked else 'bare')}.db"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="claims", storage=make_storage(url))
    for i in range(TRIALS):
        study.enqueue_trial({"x": i})
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(url, locked, start, out)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    claimed = [i for _ in procs for i in out.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
    return claimed


def test_workers_never_claim_the_same_waiting_trial(tmp_path):
    claimed = _race(tmp_path, locked=True)
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == TRIALS


def test_without_the_lock_sqlite_lets_two_workers_claim_one_trial(tmp_path):
    """The failure the lock prevents, reproduced (a race: retried a few times before it is called absent)."""
    for attempt in range(5):
        (tmp_path / str(attempt)).mkdir()
        claimed = _race(tmp_path / str(attempt), locked=False)
        if len(claimed) > len(set(claimed)):
            return
    pytest.skip("the unlocked race did not show in 5 tries on this machine (the locked test still ran)")
