"""Errors that users cause and can fix.

An ``AttnlabError`` is reported as one line with no traceback; anything else is a bug
and keeps its traceback. Messages say what was wrong and how to fix it.
"""

from __future__ import annotations

import sys
from typing import NoReturn

EXIT_USER_ERROR = 2
"""The exit status of a command that stopped on a user error."""


class AttnlabError(Exception):
    """A problem with the user's input: configuration, data or environment."""


class ConfigError(AttnlabError):
    """A configuration value that cannot work (e.g. ``dim`` not divisible by ``heads``)."""


class DataError(AttnlabError):
    """Data that is missing or malformed (e.g. a dataset root that does not exist)."""


class TrainingError(AttnlabError):
    """Training cannot go on (e.g. the loss became NaN)."""


def find_user_error(exc: BaseException | None) -> AttnlabError | None:
    """Return the ``AttnlabError`` behind ``exc``, looking through wrapped causes.

    Hydra's ``instantiate`` and Lightning wrap exceptions raised in user code; the
    user's error is somewhere in the ``__cause__``/``__context__`` chain.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, AttnlabError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def fail(message: str) -> NoReturn:
    """Ends the command with ``attnlab: error: <message>`` on stderr and :data:`EXIT_USER_ERROR`."""
    print(f"attnlab: error: {' '.join(message.split())}", file=sys.stderr)
    raise SystemExit(EXIT_USER_ERROR)
