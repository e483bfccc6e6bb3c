"""User-facing errors.

Every error a user can cause (a bad file, a bad option, an unreachable database) is raised as a
subclass of :class:`SpclSearchError` whose message is one line that names the file, field or option
and says what to do. The CLI prints that line and exits non-zero, with no traceback.
"""

from __future__ import annotations


class SpclSearchError(Exception):
    """Base class of every error meant for the user (one line, no traceback)."""


class DataError(SpclSearchError):
    """A feature file is unreadable, unsafe or inconsistent."""


class ConfigError(SpclSearchError):
    """An option, a study specification or a combination of them is invalid."""


class StorageError(SpclSearchError):
    """The study database is unreachable, malformed or incompatible."""
