"""Failures of the medium under the state, as one line each (`StateError`, exit 1).

A read-only or full disk, a file that cannot be opened: the person running fleetctl can
fix these, so they end in a message naming the state and the reason, never a traceback.
Kept free of SQLAlchemy, for the lock and the SQL-only readers.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fleetctl.errors import StateError
from fleetctl.state.paths import STATE_ENV

_HINT = f"free space or fix permissions, or set --state or ${STATE_ENV}"
_SQLITE_MEDIUM_ERRORS = (
    "readonly",
    "read-only",
    "disk is full",
    "unable to open",
    "disk i/o error",
    "out of memory",
)


def os_state_error(path: Path, exc: OSError) -> StateError:
    """`state PATH: cannot be written (Read-only file system)`, and the like."""
    reason = exc.strerror or type(exc).__name__
    return StateError(f"state {path}: cannot be written ({reason}); {_HINT}")


def sqlite_state_error(path: Path, exc: BaseException) -> StateError | None:
    """The one-line error for a SQLite failure of the medium, else None (bugs keep theirs)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return None
    text = str(exc)
    if not any(marker in text.lower() for marker in _SQLITE_MEDIUM_ERRORS):
        return None
    return StateError(f"state {path}: {text}; {_HINT}")
