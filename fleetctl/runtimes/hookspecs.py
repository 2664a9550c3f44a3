"""The plugin API: a few coarse hooks, pluggy-based.

A plugin is a module (or object) with functions marked `@hookimpl`, registered through
the `fleetctl` entry-point group, that declares the hook API it is built for in
`FLEETCTL_API_VERSION` ("MAJOR.MINOR"). The built-in NIM and Triton runtimes use these
same hooks. A plugin built for another major version is refused (fleetctl.runtimes.registry).
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

# The hook API this fleetctl speaks. The major number changes when a hook or what it is
# given changes incompatibly; the minor number when something is added.
API_VERSION = "1.0"

hookspec = pluggy.HookspecMarker("fleetctl")
hookimpl = pluggy.HookimplMarker("fleetctl")


@hookspec
def register_runtimes(register: Callable[[object], None]) -> None:
    """Call `register(runtime)` for each runtime this plugin provides.

    A runtime has a `name` (the inventory's `runtime:` value) and a
    `render(ctx: RenderContext) -> ContainerSpec` method. It may give `config`, a
    pydantic model (`extra="forbid"`) that validates its inventory block, and
    `config_key`, the model's key holding that block (plugins: "options", the default).
    """


@hookspec
def register_health_checks(register: Callable[[object], None]) -> None:
    """Call `register(kind)` for each health-check kind this plugin provides.

    A kind is a `fleetctl.runtimes.spec.CheckKind`: a name (a `HealthCheck.kind`), a
    probe function and, optionally, a pydantic model for the check's `params`.
    """
