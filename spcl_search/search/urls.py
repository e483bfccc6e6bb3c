"""Study database URLs: which one to use, parsed how, and shown without the password."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.engine.url import URL

from spcl_search.errors import StorageError
from spcl_search.search.settings import DEFAULT_SQLITE_FILE, ENV_VAR

PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)[^@\s]*(@)")


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (also for URLs SQLAlchemy cannot parse)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparseable URL is still masked below
        return PASSWORD_IN_URL.sub(r"\1***\2", url)


def resolve_url(url: str | None = None) -> str:
    """The storage URL to use: ``url``, else ``$SPCL_SEARCH_STORAGE``, else ``sqlite:///<cwd>/spcl_search.db``.

    ``postgres://`` is read as ``postgresql://``; a PostgreSQL URL without a driver uses psycopg2 when
    psycopg (3) is not installed. ``grpc://HOST:PORT`` (a storage proxy) is kept as it is.
    """
    raw = url or os.environ.get(ENV_VAR) or f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_FILE}"
    if raw.startswith("grpc://"):
        return raw
    parsed = _parse(raw)
    if parsed.drivername == "postgres":
        parsed = parsed.set(drivername="postgresql")
    if parsed.drivername == "postgresql":
        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except Exception:  # noqa: BLE001 - any parse failure is the same user error
        raise StorageError(
            f"storage URL {mask_url(url)!r} is not a database URL; use e.g. sqlite:///study.db or postgresql://USER:PASSWORD@HOST:5432/DB"
        ) from None


def dialect(url: str) -> str:
    """``"sqlite"``, ``"postgresql"``, ... for a resolved URL."""
    return _parse(url).get_backend_name()


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (``None`` for in-memory or other databases)."""
    parsed = _parse(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def short_error(exc: BaseException, url: str) -> str:
    """First line of a driver error, without the password."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    password = _parse(url).password
    if password:
        line = line.replace(str(password), "***")
    return PASSWORD_IN_URL.sub(r"\1***\2", line)
