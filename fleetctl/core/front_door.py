"""The front door: one URL per host for every model of the fleet (pure: no I/O here).

Two decisions live here. `routes_document` turns deployments and the replicas that should
receive traffic into the routes file the front door server loads (docs/front-door.md),
byte for byte deterministic so that its hash says whether a front door is up to date.
`front_door_actions` diffs the front doors each host should run against the observed
ones, like `make_plan` does for replicas.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from fleetctl.core.fleet import Deployment
from fleetctl.core.observed import ObservedFrontDoor

ROUTES_FORMAT = 1
ROUTES_DIR = "/etc/fleetctl/front-door"
ROUTES_PATH = f"{ROUTES_DIR}/routes.json"
LOADED_PATH = f"{ROUTES_DIR}/loaded"
STATUS_PATH = "/-/fleetctl/status"
FRONT_DOOR = "front-door"  # how front doors appear where deployments are listed


@dataclass(frozen=True)
class FrontDoorSettings:
    """The fleet-wide front door settings, secret-free (API keys only as digests)."""

    image: str
    customer_header: str = "X-Customer"
    api_key_digests: Mapping[str, str] = field(default_factory=dict)  # sha256 hex -> customer
    check_interval_s: float = 1.0
    check_timeout_s: float = 1.0
    check_fall: int = 2
    drain_timeout_s: float = 30.0


@dataclass(frozen=True)
class FrontDoorSite:
    """Where one host's front door listens, and what clients call."""

    host: str
    address: str  # what clients use to reach the host
    listen: str  # what the server binds
    port: int
    image: str

    @property
    def url(self) -> str:
        return f"http://{_url_host(self.address)}:{self.port}"

    def spec_hash(self) -> str:
        canonical = {
            "image": self.image,
            "listen": self.listen,
            "port": self.port,
            "routes": ROUTES_PATH,
        }
        blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True, order=True)
class Backend:
    """A replica that should receive traffic, at the URL the front door reaches it."""

    deployment: str  # name@version
    replica: int
    url: str


def backend_url(address: str, port: int) -> str:
    return f"http://{_url_host(address)}:{port}"


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def api_key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Routing:
    """How the front door reaches a deployment (see docs/front-door.md).

    `protocol` is "openai" (routed by the body's `model`) or "kserve" (routed by the
    `/v2/models/{name}` path); `names` are what clients use; `served_name`, when set, is
    the name the replica itself answers to; `health_path` is its readiness check.
    """

    protocol: Literal["openai", "kserve"]
    names: tuple[str, ...]
    health_path: str
    served_name: str | None = None


# -- the routes file --------------------------------------------------------------------


def routes_document(
    fleet: str,
    settings: FrontDoorSettings,
    deployments: Sequence[Deployment],
    routing: Mapping[str, Routing],
    backends: Iterable[Backend],
    current: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The routes file for a set of backends. `routing` maps a deployment name to how the
    front door reaches it; deployments without an entry are not routed. `current` names,
    per model, the version everyone without a pin gets (default: the unpinned one)."""
    by_deployment: dict[str, list[Backend]] = {}
    for b in sorted(set(backends)):
        by_deployment.setdefault(b.deployment, []).append(b)
    models: dict[str, dict[str, Any]] = {}
    for d in sorted(deployments, key=lambda d: (d.model, d.pinned, d.version)):
        r = routing.get(d.name)
        if r is None:
            continue
        entry = models.setdefault(
            d.model,
            {
                "name": d.model,
                "protocol": r.protocol,
                "names": [],
                "current": None,
                "customers": {},
                "versions": {},
            },
        )
        for n in r.names:
            if n not in entry["names"]:
                entry["names"].append(n)
        if d.pinned:
            for c in sorted(d.customers):
                entry["customers"][c] = d.version
        elif current is None or d.model not in current:
            entry["current"] = d.version
        entry["versions"][d.version] = {
            "deployment": d.name,
            "health_path": r.health_path,
            "served_name": r.served_name,
            "backends": [
                {"url": b.url, "replica": f"{b.deployment}#{b.replica}"}
                for b in by_deployment.get(d.name, [])
            ],
        }
    for model, version in (current or {}).items():
        if model in models:
            models[model]["current"] = version
    return {
        "format": ROUTES_FORMAT,
        "fleet": fleet,
        "customer_header": settings.customer_header,
        "api_keys": dict(sorted(settings.api_key_digests.items())),
        "check": {
            "interval_s": settings.check_interval_s,
            "timeout_s": settings.check_timeout_s,
            "fall": settings.check_fall,
            "rise": 1,
        },
        "models": [models[k] for k in sorted(models)],
    }


def routes_bytes(document: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a routes document: the same routes always hash the same."""
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def routes_hash(data: bytes) -> str:
    """What the server writes to its `loaded` file after loading these bytes."""
    return hashlib.sha256(data).hexdigest()[:16]


# -- the diff ---------------------------------------------------------------------------


class FrontDoorActionKind(str, Enum):
    CREATE = "create"
    RECREATE = "recreate"
    RELOAD = "reload"  # same container, new routes
    KEEP = "keep"
    REMOVE = "remove"


@dataclass(frozen=True)
class FrontDoorAction:
    kind: FrontDoorActionKind
    host: str
    url: str = ""
    port: int | None = None
    spec_hash: str = ""
    reason: str = ""
    container: str | None = None
    blocked: str | None = None

    @property
    def mutating(self) -> bool:
        return self.kind is not FrontDoorActionKind.KEEP

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "host": self.host,
            "url": self.url,
            "port": self.port,
            "spec_hash": self.spec_hash,
            "reason": self.reason,
            "container": self.container,
            "blocked": self.blocked,
        }


def front_door_actions(
    sites: Sequence[FrontDoorSite],
    observed: Mapping[str, Sequence[ObservedFrontDoor]],
    desired_routes_hash: str,
    unreachable: Mapping[str, str],
) -> list[FrontDoorAction]:
    """Per host: create, recreate (spec or state drift), reload (routes differ), keep;
    remove front doors on hosts that should have none and any duplicates."""
    out: list[FrontDoorAction] = []
    wanted = {s.host: s for s in sites}
    for host in sorted(set(wanted) | set(observed)):
        seen = sorted(observed.get(host, ()), key=lambda c: (not c.running, c.name))
        site = wanted.get(host)
        blocked = unreachable.get(host)
        extras = seen if site is None else seen[1:]
        if site is not None:
            base: dict[str, Any] = dict(
                host=host, url=site.url, port=site.port, spec_hash=site.spec_hash(), blocked=blocked
            )
            current = seen[0] if seen else None
            if current is None:
                out.append(
                    FrontDoorAction(FrontDoorActionKind.CREATE, reason="new front door", **base)
                )
            elif current.spec_hash != site.spec_hash():
                why = (
                    f"port {current.port} -> {site.port}"
                    if current.port != site.port
                    else "spec changed"
                )
                out.append(
                    FrontDoorAction(
                        FrontDoorActionKind.RECREATE, reason=why, container=current.name, **base
                    )
                )
            elif not current.running:
                out.append(
                    FrontDoorAction(
                        FrontDoorActionKind.RECREATE,
                        reason=f"drift: container is {current.state}",
                        container=current.name,
                        **base,
                    )
                )
            elif current.routes_hash != desired_routes_hash:
                out.append(
                    FrontDoorAction(
                        FrontDoorActionKind.RELOAD,
                        reason="routes changed",
                        container=current.name,
                        **base,
                    )
                )
            else:
                out.append(
                    FrontDoorAction(
                        FrontDoorActionKind.KEEP,
                        reason="up to date",
                        container=current.name,
                        **base,
                    )
                )
        for c in extras:
            why = "front door disabled or host has none" if site is None else "duplicate front door"
            out.append(
                FrontDoorAction(
                    FrontDoorActionKind.REMOVE,
                    host=host,
                    port=c.port,
                    reason=why,
                    container=c.name,
                    blocked=blocked,
                )
            )
    return out


def loaded_routes(
    url: str | None,
    read_loaded: Callable[[], bytes | None],
    status: Callable[[str], dict[str, Any] | None],
) -> str | None:
    """The hash of the routes a front door last loaded (None: unknown): from its status
    endpoint when this machine reaches it (a few ms), else from its `loaded` file, read
    through the Docker API by `read_loaded` (tens of ms: the engine makes a tar)."""
    doc = status(url) if url else None
    if doc is not None and isinstance(doc.get("routes_hash"), str):
        return str(doc["routes_hash"]) or None
    data = read_loaded()
    return data.decode("ascii", errors="replace").strip() or None if data else None
