"""The front door's container spec (pure), rendered like a runtime renders a replica.

The front door always uses host networking: it binds the host's address at its port and
reaches every replica of the fleet, on this host or another, at that host's address.
"""

from __future__ import annotations

from fleetctl.core.front_door import ROUTES_PATH, STATUS_PATH, FrontDoorSite
from fleetctl.runtimes.spec import ContainerSpec, http_health

STARTUP_TIMEOUT_S = 30.0


def render_front_door(site: FrontDoorSite) -> ContainerSpec:
    return ContainerSpec(
        image=site.image,
        endpoint=site.url,
        health=(http_health(STATUS_PATH),),
        startup_timeout_s=STARTUP_TIMEOUT_S,
        command=("--listen", site.listen, "--port", str(site.port), "--routes", ROUTES_PATH),
        network_mode="host",
    )
