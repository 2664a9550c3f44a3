"""The plugin manager, built by a factory (never at import time)."""

from __future__ import annotations

from functools import lru_cache

import pluggy

from fleetctl.errors import FleetctlError
from fleetctl.runtimes import hookspecs
from fleetctl.runtimes.spec import Runtime

ENTRY_POINT_GROUP = "fleetctl"


def make_plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("fleetctl")
    pm.add_hookspecs(hookspecs)
    if load_entry_points:
        # Built-ins are declared in this package's own entry points; register them
        # directly too so that a source checkout without metadata still works.
        from fleetctl.runtimes import nim, triton

        for mod in (nim, triton):
            if not pm.is_registered(mod):
                pm.register(mod, name=mod.__name__.rsplit(".", 1)[-1])
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return pm


def collect_runtimes(pm: pluggy.PluginManager) -> dict[str, Runtime]:
    found: dict[str, Runtime] = {}

    def register(runtime: object) -> None:
        name = getattr(runtime, "name", None)
        if not isinstance(name, str) or not callable(getattr(runtime, "render", None)):
            raise FleetctlError(
                f"plugin runtime {runtime!r} needs a 'name' and a 'render(ctx)' method"
            )
        found.setdefault(name, runtime)  # type: ignore[arg-type]

    pm.hook.register_runtimes(register=register)
    return found


@lru_cache(maxsize=1)
def runtimes() -> dict[str, Runtime]:
    return collect_runtimes(make_plugin_manager())


def runtime_names() -> list[str]:
    return sorted(runtimes())


def get_runtime(name: str) -> Runtime:
    try:
        return runtimes()[name]
    except KeyError:
        raise FleetctlError(
            f"unknown runtime {name!r} (known: {', '.join(runtime_names())})"
        ) from None
