"""Reading secret references (`env:NAME`, `file:PATH`) at apply time.

A missing or empty secret is named by its reference, never shown. Values only ever go to
the container (or digest) that needs them.
"""

from __future__ import annotations

import os
from pathlib import Path

from fleetctl.errors import FleetctlError
from fleetctl.runtimes.spec import SecretEnv


def read_secret(s: SecretEnv, owner: str) -> str:
    kind, _, ref = s.source.partition(":")
    if kind == "env":
        value = os.environ.get(ref)
        if not value:
            raise FleetctlError(f"{owner} needs {s.name} from environment variable {ref}, which is not set")
        return value
    try:
        value = Path(ref).read_text().strip()
    except OSError as exc:
        raise FleetctlError(f"{owner} needs {s.name} from file {ref}: {exc.strerror}") from None
    if not value:
        raise FleetctlError(f"{owner} needs {s.name} from file {ref}, which is empty")
    return value
