"""Study database URLs: which one to use, parsed how, and shown without the password."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import make_url
from sqlalchemy.engine.url import URL

from spcl_search.errors import StorageError
from spcl_search.search.settings import DEFAULT_SQLITE_FILE, ENV_VAR

PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)[^@\s]*(@)")
#: query parameters that carry a secret (``password=``, ``sslpassword=``, ``token=``...)
SECRET_QUERY = re.compile(r"((?:^|[?&;])[^=&;#\s]*(?:pass|pwd|secret|token)[^=&;#\s]*=)[^&;#\s]*", re.IGNORECASE)
#: query keys that name a secret
SECRET_KEY = re.compile("pass|pwd|secret|token", re.IGNORECASE)
#: a URL inside a longer text (a driver's error message)
URL_IN_TEXT = re.compile(r"\b[A-Za-z][\w+.-]*://\S+")

#: URL prefixes of the storages that are not a SQLAlchemy database, and the opener of each as ``module:function``
#: (imported only when such a URL is opened; see :mod:`spcl_search.search.storage_api`). Any other URL is a database.
SCHEMES: dict[str, str] = {
    "grpc://": "spcl_search.search.proxy:open_proxy",
    "grpcs://": "spcl_search.search.proxy:open_proxy",
    "memory://": "spcl_search.search.memory:open_memory",
}
#: the opener of every other URL
DATABASE_OPENER = "spcl_search.search.rdb:open_database"


def mask_url(url: str) -> str:
    """``url`` with every secret replaced by ``***``: parsed with SQLAlchemy's ``make_url`` (a password holding an
    unescaped ``@`` made whole, ``?password=`` moved into the userinfo) and shown with the password hidden and the
    query values named like a secret (``sslpassword=``, ``token=``) masked. Text SQLAlchemy cannot parse is masked
    by its shape: the userinfo's password runs to the authority's last ``@``."""
    text = str(url)
    try:
        parsed = _normalised(make_url(text))
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: mask by shape
        return _mask_by_shape(text)
    secret_keys = {k: "***" for k in parsed.query if SECRET_KEY.search(k)}
    if secret_keys:
        parsed = parsed.update_query_dict(secret_keys)
    return parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


def _mask_by_shape(text: str) -> str:
    scheme_end = text.find("://")
    if scheme_end < 0:
        return SECRET_QUERY.sub(r"\1***", text)
    start = scheme_end + 3
    head, question, query = text[start:].partition("?")
    if "@" not in head and "@" in query and ":" in head:  # a '?' inside the password
        head, question, query = text[start:], "", ""
    at = head.rfind("@")
    if at >= 0:
        user, colon, _ = head[:at].partition(":")
        if colon:
            head = f"{user}:***{head[at:]}"
    return text[:start] + head + question + SECRET_QUERY.sub(r"\1***", query)


def mask_text(text: str, url: str | None = None) -> str:
    """``text`` (an error message) with every URL in it masked and ``url``'s own secrets removed wherever they appear."""
    text = URL_IN_TEXT.sub(lambda m: mask_url(m.group()), text)
    for secret in sorted(_secrets(url), key=len, reverse=True) if url else ():
        text = text.replace(secret, "***")
    return PASSWORD_IN_URL.sub(r"\1***\2", text)


def _secrets(url: str) -> set[str]:
    """The secrets of ``url`` as written and percent-decoded (at least 3 characters, so that masking stays readable)."""
    found: set[str] = set()
    try:
        parsed = _normalised(make_url(url))
    except Exception:  # noqa: BLE001 - an unparseable URL: mask_url's structure is all there is
        return found
    values = [parsed.password] + [v for k, v in parsed.query.items() if SECRET_KEY.search(k)]
    for value in values:
        for item in value if isinstance(value, tuple) else (value,):
            if item is not None and len(str(item)) >= 3:
                found |= {str(item), quote(str(item), safe="")}
    return found


def _normalised(parsed: URL) -> URL:
    """The URL meant: a password with an unescaped ``@`` (SQLAlchemy takes its tail for the host) made whole, and
    ``?password=`` moved into the userinfo, where SQLAlchemy and every log mask it."""
    host = parsed.host
    if parsed.password is not None and host and "@" in host:
        tail, _, host = host.rpartition("@")
        parsed = parsed.set(password=f"{parsed.password}@{tail}", host=host)
    if parsed.password is None and "password" in parsed.query:
        value = parsed.query["password"]
        parsed = parsed.set(password=value[-1] if isinstance(value, tuple) else value).difference_update_query(["password"])
    return parsed


def resolve_url(url: str | None = None) -> str:
    """The storage URL to use: ``url``, else ``$SPCL_SEARCH_STORAGE``, else ``sqlite:///<cwd>/spcl_search.db``.

    ``postgres://`` is read as ``postgresql://``; a PostgreSQL URL without a driver uses psycopg2 when
    psycopg (3) is not installed. A password written with an unescaped ``@`` is read whole, and ``?password=`` is
    moved into the userinfo (the same connection; masked wherever SQLAlchemy shows the URL).
    A URL of another storage's scheme (:data:`SCHEMES`: ``grpc://HOST:PORT``, a
    storage proxy) is kept as it is.
    """
    raw = url or os.environ.get(ENV_VAR) or f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_FILE}"
    if not is_database_url(raw):
        return raw
    parsed = _normalised(_parse(raw))
    if parsed.drivername == "postgres":
        parsed = parsed.set(drivername="postgresql")
    if parsed.drivername == "postgresql":
        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def is_database_url(url: str) -> bool:
    """Whether ``url`` names a SQLAlchemy database (no prefix of :data:`SCHEMES`)."""
    return not url.startswith(tuple(SCHEMES))


def opener_of(url: str) -> str:
    """``module:function`` that opens the resolved ``url``: its scheme's in :data:`SCHEMES`, else the database's."""
    return next((target for prefix, target in SCHEMES.items() if url.startswith(prefix)), DATABASE_OPENER)


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
    return mask_text(text[0] if text else type(exc).__name__, url)
