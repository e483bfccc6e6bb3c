"""Writing a command's output: whole or not at all, and a one-line error naming the path when it cannot be written.

Every file a command writes (a report, a CSV, a feature pickle, a run's JSON, a checkpoint) goes through
:func:`atomic_write`: a temporary file in the target's folder, flushed to disk, then renamed over the
target, so a failure leaves the old file as it was and no partial one. A folder that cannot be made, a
path that is a folder, a read-only folder or a full disk is a :class:`~spcl_search.errors.ConfigError`
naming the path and the reason (no traceback).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from spcl_search.errors import ConfigError

__all__ = ["OutputError", "atomic_write", "check_writable", "output_folder", "unwritable"]


class OutputError(ConfigError, OSError):
    """A file that could not be written: one line naming it for the user, and an OSError for code that carries on
    without the file (a cache)."""


def unwritable(path: str | os.PathLike[str], exc: OSError) -> OutputError:
    """The one-line error for ``path`` that could not be written because of ``exc``."""
    target = Path(path)
    blocker = next((p for p in [target, *target.parents] if p.exists() and not p.is_dir()), None)
    if blocker is not None and blocker != target:
        return OutputError(f"{target}: cannot write it: {blocker} is a file, not a folder")
    reason = exc.strerror or type(exc).__name__
    return OutputError(f"{target}: cannot write it ({reason}); choose a path in a folder you can write to (an existing file there is kept)")


def output_folder(path: str | os.PathLike[str]) -> Path:
    """``path`` as a folder that exists and can be written to (made if needed); a one-line ConfigError otherwise."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unwritable(folder, exc) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{folder}: cannot write in this folder (permission denied); choose a folder you can write to")
    return folder


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Refuse, before any work, an output ``path`` that is a folder or whose folder cannot be written."""
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{target}: is a folder; give the path of the file to write")
    output_folder(target.parent)
    if target.exists() and not os.access(target.parent, os.W_OK):
        raise ConfigError(f"{target}: cannot replace it (its folder is read-only)")
    return target


def atomic_write(
    path: str | os.PathLike[str], data: str | bytes | Callable[[IO[bytes]], Any], *, mode: int = 0o644, exclusive: bool = False
) -> Path:
    """Write ``data`` (text, bytes, or a function writing to a binary file) to ``path``, whole or not at all; return the path.

    The project's one writer, with one durability policy: a temporary file in the target's folder (created with
    ``mode``: 0o600 for the caches), fsync, then a rename over the target, so a crash or a full disk leaves the old
    file and no temporary one. A path that cannot be written raises :class:`OutputError`, one line naming it (an
    OSError too, so a cache that can do without the file catches it as such). ``exclusive``: never replace a file
    that exists (the first of concurrent writers wins; the others get FileExistsError), still whole or not at all.
    """
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{target}: is a folder; give the path of the file to write")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise unwritable(target, exc) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            os.link(tmp, target)  # fails if the target exists: no writer replaces another's file
            os.unlink(tmp)
        else:
            os.replace(tmp, target)
    except FileExistsError:
        Path(tmp).unlink(missing_ok=True)
        raise
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise unwritable(target, exc) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
