"""Loading an inventory with the runtimes installed.

`fleetctl.core.loader` parses and validates an inventory against a `RuntimeCatalog` it is
given (core imports no runtime); these two functions give it the installed one (built-ins
and plugins), which is what every command wants. `known_runtimes`: the runtime names a
model may use (None: any), or a catalog of one's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fleetctl.core import loader
from fleetctl.core.loader import LoadedInventory
from fleetctl.core.runtime_blocks import RuntimeCatalog
from fleetctl.runtimes.registry import runtime_catalog


def load(
    path: str | Path, known_runtimes: Iterable[str] | RuntimeCatalog | None = None
) -> LoadedInventory:
    return loader.load(path, known_runtimes, catalog=runtime_catalog())


def load_text(
    text: str,
    file: str = "<inventory>",
    base_dir: str | Path | None = None,
    known_runtimes: Iterable[str] | RuntimeCatalog | None = None,
) -> LoadedInventory:
    return loader.load_text(text, file, base_dir, known_runtimes, catalog=runtime_catalog())
