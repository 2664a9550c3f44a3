"""Modules the commands use but `--help`, completion and most commands never need.

`fleetctl --help` and a command that stops early (`history` with no state) should cost
Python's start-up and typer, not the plan model and rich's tables. The command modules
declare their options at import, so what they use only while running is imported
lazily: `lazy_module(NAME)` returns the module object at once and runs the module on
first attribute access (`importlib.util.LazyLoader`). Where the module is already
imported it is returned as is.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:  # as an ordinary import does: `fleetctl.cli.render` is an attribute of fleetctl.cli
        setattr(sys.modules[parent], child, module)
    return module
