"""Shared fixtures (the real Apollo 3 data when present, skipped with a reason otherwise; a per-session
cache) and the rule that puts every test in exactly one tier, ``unit`` or ``integration`` (tests/README.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "apollo3"

# ----------------------------------------------------------------------------- test tiers

TIERS = ("unit", "integration")
#: Fixtures that need the real task data or a server; a test that uses one, directly or through another
#: fixture (``bm25``, ``micro_data``, a model built from the data...), is an integration test.
INTEGRATION_FIXTURES = frozenset({"data", "postgres_url"})
#: Marks that only integration tests carry.
INTEGRATION_MARKS = ("slow", "browser", "postgres", "gpu", "vllm")
_TIER_ERROR = pytest.StashKey[str]()


def _explicit_tier(item: pytest.Item) -> tuple[str, str] | None:
    """The closest tier (the test's own ``unit``/``integration`` mark, then its class's or module's
    ``tier(...)`` mark) and where it sits."""
    for node, mark in item.iter_markers_with_node():
        if mark.name in TIERS and node is item:
            return mark.name, "the test"
        if mark.name == "tier":
            tier = mark.args[0] if mark.args else None
            if tier not in TIERS:
                raise pytest.UsageError(f"{node.nodeid}: pytest.mark.tier takes 'unit' or 'integration', got {tier!r}")
            return tier, f"{type(node).__name__.lower()} {node.name}"
    return None


def _misplaced_tier(item: pytest.Item) -> str | None:
    """A ``unit``/``integration`` mark on a module or class would make ``-m unit`` and ``-m integration``
    overlap (``-m`` matches the marks of every parent): those say ``tier(...)`` instead."""
    for node, mark in item.iter_markers_with_node():
        if mark.name in TIERS and node is not item:
            return (f"{type(node).__name__.lower()} {node.name} is marked {mark.name}: mark modules and classes "
                    f"with pytest.mark.tier({mark.name!r}) (tests/README.md)")
    return None


def _integration_reasons(item: pytest.Item) -> list[str]:
    uses = sorted(INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())))
    marks = [m for m in INTEGRATION_MARKS if item.get_closest_marker(m)]
    return [f"uses fixture {f!r}" for f in uses] + [f"is marked {m}" for m in marks]


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(config, items):
    """One tier per test, as a mark on the test itself: its own ``unit``/``integration`` mark, else its
    class's or module's ``tier(...)``, else ``integration`` when it needs the real data, a server, a
    browser or is slow and ``unit`` otherwise (doctests included). Only tests carry tier marks, so
    ``-m unit`` and ``-m integration`` select disjoint sets with pytest's own matching. A test whose
    tier is ``unit`` but that needs any of those fails with the reason instead of running."""
    for item in items:
        explicit = _explicit_tier(item)
        reasons = _integration_reasons(item)
        misplaced = _misplaced_tier(item)
        if explicit is None:
            tier = "integration" if reasons else "unit"
        else:
            tier, where = explicit
            if tier == "unit" and reasons:
                item.stash[_TIER_ERROR] = (f"marked unit (by {where}) but {', '.join(reasons)}: mark it "
                                           f"@pytest.mark.integration (tests/README.md)")
        if misplaced:
            item.stash[_TIER_ERROR] = misplaced
        if item.get_closest_marker(tier) is None:
            item.add_marker(tier)


def pytest_runtest_setup(item):
    if _TIER_ERROR in item.stash:
        pytest.fail(item.stash[_TIER_ERROR], pytrace=False)


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
    from harness.core.config import load_task

    return load_task("apollo3")


@pytest.fixture(scope="session")
def data(task):
    if data_dir() is None:
        if os.environ.get("CI"):  # CI has ../shared/apollo3: a missing copy must not turn into a green skip
            pytest.fail(NO_DATA)
        pytest.skip(NO_DATA)
    from harness.data.loading import load_task_data

    return load_task_data(task)


@pytest.fixture(scope="session")
def bm25(data):
    from harness.core.config import RetrievalConfig
    from harness.data.retrieval import build_retriever

    return build_retriever(RetrievalConfig(), data.corpus, "bm25")


def _pg_bin() -> "Path | None":
    import glob
    import shutil

    hits = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if hits:
        return Path(hits[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A throwaway PostgreSQL server on 127.0.0.1 (trust auth), stopped after the session.

    Needs the Debian ``postgresql`` package (``.ci/run`` installs it); as root the server runs as the
    ``postgres`` user, since PostgreSQL refuses to run as root.
    """
    import getpass
    import shutil
    import socket
    import subprocess

    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not found (apt-get install postgresql)")
    pytest.importorskip("psycopg2", reason="psycopg2-binary is in the [dev] extra")
    root = tmp_path_factory.mktemp("pg")
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_root = os.geteuid() == 0
    user = "postgres" if as_root else getpass.getuser()
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        os.chmod(root, 0o700)
        for parent in root.parents:  # postgres must be able to traverse to its data directory
            if parent == Path("/"):
                break
            os.chmod(parent, os.stat(parent).st_mode | 0o011)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=100"
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w",
                    "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg2://{user}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
