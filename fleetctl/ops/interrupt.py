"""Ctrl-C (SIGINT) or SIGTERM during a change: the first stops it cleanly, the second at once.

The first signal lets every step in flight finish (a container half-started would only
be finished or undone by the next run), starts no new step, records the truth and
returns; the command then exits 130. A second signal exits at once with 130, as a kill
would: that is safe too, because every step is recorded before it runs and a container
takes its final name only once it is ready (fleetctl.core.recovery).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

EXIT_INTERRUPTED = 130
_requested = threading.Event()


def requested() -> bool:
    """Whether a stop was asked for (no new step may start)."""
    return _requested.is_set()


@contextmanager
def graceful(on_first: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Handle SIGINT and SIGTERM as described above while the block runs (main thread only)."""
    _requested.clear()  # a new change starts unasked
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        if _requested.is_set():
            os._exit(EXIT_INTERRUPTED)
        _requested.set()
        on_first()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def stop(reason: str) -> None:
    """Ask the change to stop as a first signal would (e.g. the fleet lease was lost)."""
    global stop_reason
    stop_reason = reason
    _requested.set()


stop_reason = ""
