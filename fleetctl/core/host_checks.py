"""Checks of the hosts as a whole: endpoints, addresses, port ranges, GPU reserves.

Values that cannot work are refused by `validate` (and so by every command that loads the
inventory), not found out halfway through an apply. Pure: no host is contacted.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fleetctl.core.inventory import Host, Inventory
from fleetctl.core.plan import PORTS_PER_REPLICA

if TYPE_CHECKING:
    from fleetctl.core.yaml_input import Positions

_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_USER_RE = re.compile(r"^[A-Za-z0-9._-]+$")

Report = Callable[[tuple[str | int, ...], str], None]


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_host_name(text: str) -> bool:
    """An IP address (IPv6 in brackets or not) or a DNS name."""
    return is_ip(text.strip("[]") if text.startswith("[") else text) or bool(
        _HOSTNAME_RE.match(text)
    )


def endpoint_problem(url: str) -> str | None:
    """What is wrong with a Docker endpoint URL, or None."""
    scheme, _, rest = url.partition("://")
    if scheme == "unix":
        if not rest.startswith("/") or rest.endswith("/") or "\x00" in rest:
            return "a unix:// endpoint needs the absolute path of a socket (unix:///var/run/docker.sock)"
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"malformed endpoint: {exc}"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return f"a {scheme}:// endpoint is {scheme}://{'user@' if scheme == 'ssh' else ''}HOST[:PORT], with nothing after it"
    if not parts.hostname or not is_host_name(parts.hostname):
        return f"{parts.hostname or '(empty)'} is not a host name or IP address"
    if parts.password is not None:
        return "an endpoint must not carry a password: use ssh keys or TLS certificates"
    if parts.username is not None and (scheme != "ssh" or not _USER_RE.match(parts.username)):
        return "only ssh:// endpoints take a user (ssh://user@host)"
    if scheme == "tcp" and port is None:
        return "a tcp:// endpoint needs a port (tcp://HOST:2376)"
    return None


def endpoint_identity(url: str) -> str:
    """A canonical form of an endpoint, so that two spellings of one daemon compare equal."""
    scheme, _, rest = url.partition("://")
    if scheme == "unix":
        return "unix://" + re.sub(r"/+", "/", rest)
    parts = urlsplit(url)
    default = {"ssh": 22, "tcp": 2376}.get(scheme)
    host = (parts.hostname or "").lower().rstrip(".")
    return f"{scheme}://{host}:{parts.port or default}"


def _machine(host: Host) -> str:
    """Where a host's ports live: its address, or for a loopback address the machine of its
    Docker daemon (every host on one machine shares loopback)."""
    try:
        loopback = ipaddress.ip_address(host.address).is_loopback
    except ValueError:
        loopback = host.address == "localhost"
    if not loopback:
        return host.address.lower()
    if host.docker.startswith("unix://"):
        return f"{host.address} on this machine"
    return f"{host.address} on {urlsplit(host.docker).hostname}"


def front_door_port(inv: Inventory, host: Host) -> int | None:
    if not inv.front_door.enabled:
        return None
    return host.front_door.port or inv.front_door.port or host.port_range[1]


def replica_blocks(inv: Inventory, host: Host) -> int:
    """How many replica port blocks the host's range holds beside its front door."""
    lo, hi = host.port_range
    door = front_door_port(inv, host)
    starts = range(lo, hi - PORTS_PER_REPLICA + 2, PORTS_PER_REPLICA)
    return sum(1 for p in starts if door is None or not (p <= door < p + PORTS_PER_REPLICA))


def host_problems(inv: Inventory, pos: Positions) -> list[str]:
    problems: list[str] = []

    def report(path: tuple[str | int, ...], message: str) -> None:
        problems.append(pos.problem(path, message))

    endpoints: dict[str, int] = {}
    for i, h in enumerate(inv.hosts):
        _one_host(inv, i, h, report)
        if endpoint_problem(h.docker) is None:
            ident = endpoint_identity(h.docker)
            if ident in endpoints:
                first = inv.hosts[endpoints[ident]].name
                report(
                    ("hosts", i, "docker"),
                    f"host {first} already uses this Docker endpoint: two hosts on one daemon would "
                    "remove each other's containers; declare the daemon once",
                )
            else:
                endpoints[ident] = i
    _overlapping_ranges(inv, report)
    return problems


def _one_host(inv: Inventory, i: int, h: Host, report: Report) -> None:
    why = endpoint_problem(h.docker)
    if why is not None:
        report(("hosts", i, "docker"), why)
    if not is_host_name(h.address):
        report(("hosts", i, "address"), f"{h.address!r} is not an IP address or host name")
    if not is_ip(h.publish_address):
        report(("hosts", i, "publish_address"), f"{h.publish_address!r} is not an IP address")
    if h.front_door.listen is not None and not is_ip(h.front_door.listen):
        report(
            ("hosts", i, "front_door", "listen"), f"{h.front_door.listen!r} is not an IP address"
        )
    smallest = min((g.memory_gb for g in h.gpu_groups), default=None)
    if smallest is not None and h.reserve_gb >= smallest:
        report(
            ("hosts", i, "reserve_gb"),
            f"keeps {h.reserve_gb:g} GB free on GPUs of {smallest:g} GB: nothing would be left to place on",
        )
    if replica_blocks(inv, h) < 1:
        lo, hi = h.port_range
        report(
            ("hosts", i, "ports"),
            f"{lo}-{hi} holds no block of {PORTS_PER_REPLICA} ports for a replica beside the front door port; "
            f"give at least {PORTS_PER_REPLICA + 1} ports",
        )


def _overlapping_ranges(inv: Inventory, report: Report) -> None:
    seen: dict[str, list[tuple[int, int, str]]] = {}
    for i, h in enumerate(inv.hosts):
        lo, hi = h.port_range
        where = _machine(h)
        for olo, ohi, other in seen.get(where, []):
            if lo <= ohi and olo <= hi:
                report(
                    ("hosts", i, "ports"),
                    f"{lo}-{hi} overlaps {olo}-{ohi} of host {other} on the same address ({where}): "
                    "their replicas would take each other's ports",
                )
                break
        seen.setdefault(where, []).append((lo, hi, h.name))
