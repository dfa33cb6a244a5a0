"""Shared fixtures: the real Apollo 3 data when present (skip with a reason otherwise), a per-session cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "apollo3"


def data_dir() -> Path | None:
    env = os.environ.get("HARNESS_DATA_DIR")
    if env and Path(env).is_dir():
        return Path(env)
    return SHARED if SHARED.is_dir() else None


NO_DATA = "Apollo 3 data not found: set HARNESS_DATA_DIR or place it at ../shared/apollo3"


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """Keep built models and indexes out of the user's cache unless HARNESS_CACHE_DIR is set."""
    if "HARNESS_CACHE_DIR" not in os.environ:
        os.environ["HARNESS_CACHE_DIR"] = str(tmp_path_factory.mktemp("harness-cache"))
    d = data_dir()
    if d is not None:
        os.environ["HARNESS_DATA_DIR"] = str(d)
    yield


@pytest.fixture(scope="session")
def task():
    from harness.config import load_task

    return load_task("apollo3")


@pytest.fixture(scope="session")
def data(task):
    if data_dir() is None:
        pytest.skip(NO_DATA)
    from harness.data import load_task_data

    return load_task_data(task)


@pytest.fixture(scope="session")
def bm25(data):
    from harness.retrieval import build_retriever

    return build_retriever("bm25", data.corpus)
