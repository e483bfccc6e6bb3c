"""User-facing errors.

Every error a user can cause (a bad file, a bad option, an unreachable database) is raised as a
subclass of :class:`SpclSearchError` whose message is one line that names the file, field or option
and says what to do. The CLI prints that line and exits non-zero, with no traceback.

The library names an option by its field, in backquotes (`` `epochs` ``, `` `method_options` ``), never by a
command-line flag: a library user sees the field, and the CLI shows each such name as its flag (``--epochs``;
:func:`render`), so one message serves both.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: a field named in a message: `name`
_FIELD = re.compile(r"`([a-z][a-z0-9_]*)`")


class SpclSearchError(Exception):
    """Base class of every error meant for the user (one line, no traceback).

    Control characters in the message (a newline in a dialogue id or a file name) are escaped, so the
    message stays one line whatever a file holds.
    """

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (_CONTROL.sub(lambda m: repr(m.group())[1:-1], args[0]),)
        super().__init__(*args)

    @property
    def fields(self) -> list[str]:
        """The fields (options) the message names, in order: what the CLI turns into flags."""
        return _FIELD.findall(str(self))


class DataError(SpclSearchError):
    """A feature file is unreadable, unsafe or inconsistent."""


class ConfigError(SpclSearchError):
    """An option, a study specification or a combination of them is invalid."""


class StorageError(SpclSearchError):
    """The study database is unreachable, malformed or incompatible."""


class NonFiniteLossError(SpclSearchError):
    """The training loss became NaN or inf; the run cannot continue (the trial fails, the worker goes on)."""


class StudyFailing(SpclSearchError):
    """A study's first trials all failed with the same error: its workers stop instead of spending the budget on it."""


def render(message: str, flag: Callable[[str], str]) -> str:
    """``message`` with each field named in it (`` `name` ``) shown as ``flag(name)`` (the CLI's flag for it)."""
    return _FIELD.sub(lambda m: flag(m.group(1)), message)
