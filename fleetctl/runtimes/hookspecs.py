"""The plugin API: a few coarse hooks, pluggy-based.

A plugin is a module (or object) with functions marked `@hookimpl`, registered through
the `fleetctl` entry-point group. The built-in NIM and Triton runtimes use these same
hooks.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("fleetctl")
hookimpl = pluggy.HookimplMarker("fleetctl")


@hookspec
def register_runtimes(register: Callable[[object], None]) -> None:
    """Call `register(runtime)` for each runtime this plugin provides.

    A runtime has a `name` (the inventory's `runtime:` value) and a
    `render(ctx: RenderContext) -> ContainerSpec` method.
    """
