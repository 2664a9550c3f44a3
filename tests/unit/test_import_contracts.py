"""The import contracts of pyproject.toml ([tool.importlinter]): the layers (cli above
ops and decide, above adapters, state, runtimes and the ports, above core), no import
cycle inside any package, ops reaching the outside only through fleetctl.ports, a pure
core, and a front door server that stands alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_import_contract_is_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
