"""Study storage URLs (SQLAlchemy URLs of Optuna's RDB storage): how they are written, opened and reported.

One rule for every place a URL is shown (``summary.json``, the JSON ``harness sweep`` prints, the study
report, log lines, error messages): :func:`mask_url` replaces the password with ``***``.

The README's ``postgresql://user@host/db`` names no driver; SQLAlchemy 2.1 picks psycopg (3) for it,
while the harness's ``[dev]`` extra installs ``psycopg2-binary``. :func:`storage_url` names the installed
driver when the URL names none, so the documented form works with either.

A storage that cannot be opened is one line (:func:`storage_error`) naming the masked URL and what
failed: not a URL, a SQLite folder that does not exist, a server that does not answer, a password
refused, a driver missing.

>>> mask_url("postgresql://me:s3cret@db:5432/optuna")
'postgresql://me:***@db:5432/optuna'
>>> mask_url("sqlite:///runs/study.db")
'sqlite:///runs/study.db'
"""

from __future__ import annotations

import importlib.util
import re


def mask_url(url: str) -> str:
    """The storage URL with any password replaced by ``***`` (also for text that is no valid URL)."""
    url = str(url)
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: mask anything between ':' and '@' after the scheme
        return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


def _password(url: str) -> str | None:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).password
    except Exception:
        m = re.search(r"//[^:/@]*:([^@]*)@", url)
        return m.group(1) if m else None


def storage_url(url: str) -> str:
    """``url`` with a PostgreSQL driver named when it names none and SQLAlchemy's default (psycopg 3) is
    not installed but psycopg2 is; any other URL unchanged.

    >>> storage_url("sqlite:///study.db")
    'sqlite:///study.db'
    >>> storage_url("postgresql+psycopg2://u@h/db")
    'postgresql+psycopg2://u@h/db'
    """
    scheme, sep, rest = str(url).partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            return f"postgresql+psycopg2://{rest}"
        if scheme == "postgres":      # SQLAlchemy dropped this alias; the user means postgresql
            return f"postgresql://{rest}"
    return url


def storage_error(url: str, error: BaseException) -> str | None:
    """One line for a storage that could not be opened, naming it with its password masked; None for an
    error that is not about opening the storage."""
    shown = mask_url(url)
    name = type(error).__name__
    if name == "ArgumentError":
        return (f"storage {shown!r} is not a database URL; give sqlite:///PATH/study.db or "
                "postgresql://USER[:PASSWORD]@HOST[:PORT]/DB")
    if isinstance(error, ImportError):
        cause = error.__cause__ or error
        return (f"cannot open storage {shown}: its database driver is not installed ({cause}); for PostgreSQL "
                "pip install psycopg2-binary")
    if name in ("OperationalError", "DatabaseError", "InterfaceError", "ProgrammingError", "NoSuchModuleError"):
        orig = getattr(error, "orig", None) or error
        detail = " ".join(str(orig).split()) or type(orig).__name__
        secret = _password(url)
        if secret:
            detail = detail.replace(secret, "***")
        if url.startswith("sqlite:") and "unable to open database file" in detail:
            detail += " (does its folder exist, and may this user write there?)"
        return f"cannot open storage {shown}: {detail[:300]}"
    return None
