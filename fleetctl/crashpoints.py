"""Numbered mutation points: where a kill can land, for the crash-at-every-step tests.

Every call that changes a host (create, start, stop, remove, rename, a file written into
a container, a signal) and every commit of the state passes through `mutation()`, which
numbers it in the order this process makes them. Two environment variables, read once,
turn the points into something a test can use; unset (always, outside tests) they cost
one boolean test per call:

- ``FLEETCTL_CRASH_TRACE=FILE`` appends ``N KIND WHAT`` for each point to FILE;
- ``FLEETCTL_CRASH_AT=N:before`` (or ``N:after``) SIGKILLs this process just before (or
  just after) the Nth point's call, as a power cut or ``kill -9`` would.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_TRACE = os.environ.get("FLEETCTL_CRASH_TRACE") or None
_AT = os.environ.get("FLEETCTL_CRASH_AT") or None
ACTIVE = bool(_TRACE or _AT)

_lock = threading.Lock()
_count = 0


def _target() -> tuple[int, str] | None:
    if not _AT:
        return None
    n, _, phase = _AT.partition(":")
    return int(n), (phase or "before")


_TARGET = _target()


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def mutation(kind: str, what: str) -> Iterator[None]:
    """Wrap one mutating call; see the module doc."""
    if not ACTIVE:
        yield
        return
    global _count
    with _lock:
        _count += 1
        n = _count
        if _TRACE:
            with open(_TRACE, "a", encoding="utf-8") as f:
                f.write(f"{n} {kind} {what}\n")
    if _TARGET == (n, "before"):
        _die()
    yield
    if _TARGET == (n, "after"):
        _die()
