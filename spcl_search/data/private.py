"""Cache files that only their user can read or plant: 0700 folders, 0600 files, entries signed with a user key.

A cache entry is read *as* the file or the work it names, so an entry someone else planted would change
what a study trains on. Cache folders are therefore made 0700 (an existing one this user owns is tightened;
one owned by another user is refused), files are written 0600, and each entry carries an HMAC-SHA256
under a key only this user can read: ``$XDG_CONFIG_HOME/spcl-search/cache.key`` (``~/.config/...``), 32
random bytes made on first use, 0600. An entry whose MAC does not verify, planted or damaged, reads as
missing and is made again.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from spcl_search.outputs import atomic_write

__all__ = ["KEY_BYTES", "MAC_BYTES", "key_path", "private_dir", "sign", "user_key", "verify"]

KEY_BYTES = 32
MAC_BYTES = hashlib.sha256().digest_size


def key_path() -> Path:
    """Where this user's cache key lives: ``$XDG_CONFIG_HOME/spcl-search/cache.key`` (``~/.config`` by default)."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config).expanduser() / "spcl-search" / "cache.key"


def private_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as a folder only this user can enter: made 0700, or tightened to 0700 if it exists.

    Raises :class:`PermissionError` naming the folder when another user owns it (its entries could be
    planted, and this user cannot make it private).
    """
    folder = Path(path).expanduser()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.stat()
    if st.st_uid != os.getuid():
        raise PermissionError(f"{folder} belongs to another user; use a folder of your own (e.g. set $SPCL_SEARCH_CACHE)")
    if st.st_mode & 0o077:
        folder.chmod(0o700)
    return folder


_KEYS: dict[Path, bytes] = {}


def user_key() -> bytes:
    """This user's cache key (made on first use). Raises OSError when it cannot be read or made."""
    path = key_path()
    if path not in _KEYS:
        _KEYS[path] = _load_or_make_key(path)
    return _KEYS[path]


def _load_or_make_key(path: Path) -> bytes:
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
        atomic_write(path, secrets.token_bytes(KEY_BYTES), mode=0o600, exclusive=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    st = path.stat()
    if st.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to another user; remove it (a new key is made)")
    if st.st_mode & 0o077:
        path.chmod(0o600)
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise PermissionError(f"{path} is not a cache key ({len(key)} bytes); remove it (a new key is made)")
    return key


def sign(*parts: bytes) -> bytes:
    """HMAC-SHA256 of ``parts`` (each length-prefixed, so no two splits of the same bytes collide) under the user key."""
    mac = hmac.new(user_key(), digestmod=hashlib.sha256)
    for part in parts:
        mac.update(len(part).to_bytes(8, "big"))
        mac.update(part)
    return mac.digest()


def verify(mac: bytes, *parts: bytes) -> bool:
    """Whether ``mac`` is :func:`sign` of ``parts`` (False, never an error, when the key is unavailable)."""
    try:
        expected = sign(*parts)
    except OSError:
        return False
    return hmac.compare_digest(mac, expected)
