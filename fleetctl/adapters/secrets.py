"""The `SecretSource` port: secret references read from this process's environment and files."""

from __future__ import annotations

import os
from pathlib import Path


class EnvFileSecrets:
    """`env:NAME` from the environment, `file:PATH` from the file (its value stripped)."""

    def read(self, source: str) -> str:
        kind, _, ref = source.partition(":")
        if kind == "env":
            return os.environ.get(ref) or ""
        return Path(ref).read_text().strip()
