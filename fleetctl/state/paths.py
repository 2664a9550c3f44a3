"""Where the state lives. Kept free of SQLAlchemy so that commands that only lock or
read nothing (a no-op apply) start fast."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STATE_PATH = Path("state") / "fleetctl.db"
STATE_ENV = "FLEETCTL_STATE"


def resolve_state_path(option: str | None) -> Path:
    """The state file: the command-line option, else `$FLEETCTL_STATE`, else `state/fleetctl.db`.

    A relative result stays relative to the current directory. Nothing is created here;
    the store and the lock create the parent directory when they open the file.
    """
    if option:
        return Path(option).expanduser()
    env = os.environ.get(STATE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return DEFAULT_STATE_PATH
