"""The front door's routing table: the routes file, its backends and how one is picked.

Pure (no I/O, no event loop): server.py owns the sockets and the clock of health checks.
Like server.py it runs in the front door's container, so it imports only the standard
library.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, str, str, str]  # url, replica, deployment, health path: one backend


@dataclass(frozen=True)
class Check:
    """Active health check settings, from the routes file's `check`."""

    interval_s: float = 1.0
    timeout_s: float = 1.0
    fall: int = 2
    rise: int = 1


@dataclass(eq=False)
class Backend:
    """One replica. The object outlives reloads that keep it, so its health and its count of
    requests in flight survive them; a changed url, replica, deployment or health path makes
    it another backend."""

    url: str
    replica: str
    deployment: str
    health_path: str
    in_routes: bool = True
    checked: bool = False
    ready: bool = False
    outstanding: int = 0
    oks: int = 0
    fails: int = 0

    @property
    def key(self) -> Key:
        return (self.url, self.replica, self.deployment, self.health_path)

    def record(self, ok: bool, check: Check) -> bool:
        """Count one check result; return True when readiness changed. The first result of
        a never-checked backend decides at once: it was in no rotation to fall or rise from."""
        self.oks, self.fails = (self.oks + 1, 0) if ok else (0, self.fails + 1)
        was, first = self.ready, not self.checked
        self.checked = True
        if first or (ok and self.oks >= check.rise) or (not ok and self.fails >= check.fall):
            self.ready = ok
        return self.ready != was

    def mark_down(self) -> None:
        """A refused or dropped connection: out of rotation now, until a check succeeds."""
        self.checked, self.ready, self.oks = True, False, 0

    def status(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "replica": self.replica,
            "deployment": self.deployment,
            "in_routes": self.in_routes,
            "ready": self.ready,
            "checked": self.checked,
            "outstanding": self.outstanding,
        }


@dataclass(eq=False)
class Version:
    """One version of a model and its replicas."""

    deployment: str
    served_name: str | None
    backends: list[Backend]
    turn: int = 0

    def pick(self, exclude: tuple[Backend, ...] = ()) -> Backend | None:
        """Least outstanding requests over the checked-ready backends (never-checked ones
        only when none is ready); the scan starts one further each time, so ties rotate."""
        pool = [b for b in self.backends if b.ready and b not in exclude]
        if not pool:
            pool = [b for b in self.backends if not b.checked and b not in exclude]
            if not pool:
                return None
        self.turn += 1
        n = len(pool)
        best = pool[self.turn % n]
        for i in range(1, n):
            b = pool[(self.turn + i) % n]
            if b.outstanding < best.outstanding:
                best = b
        return best


@dataclass(eq=False)
class Model:
    """A model as clients name it, and the versions its callers may get."""

    name: str
    protocol: str
    names: list[str]
    current: str | None  # None: only pinned versions are deployed
    customers: dict[str, str]
    versions: dict[str, Version]

    def version_for(self, customer: str | None) -> Version | None:
        """The customer's pin, or the current version for everyone else."""
        name = self.customers.get(customer, self.current) if customer else self.current
        return self.versions[name] if name is not None else None


@dataclass(eq=False)
class Routes:
    """A loaded routes file (format 1)."""

    hash: str | None = None
    loaded_at: float | None = None
    customer_header: str = "X-Customer"
    api_keys: dict[str, str] = field(default_factory=dict)
    check: Check = field(default_factory=Check)
    models: list[Model] = field(default_factory=list)
    openai: dict[str, Model] = field(default_factory=dict)
    kserve: dict[str, Model] = field(default_factory=dict)

    def backends(self) -> dict[Key, Backend]:
        return {b.key: b for m in self.models for v in m.versions.values() for b in v.backends}


def parse_routes(raw: bytes, known: Callable[[Key], Backend | None]) -> Routes:
    """Parse and check a routes file without touching live state: a backend that `known`
    returns is reused as is, any other is new. Raises ValueError on any problem."""
    try:
        doc = json.loads(raw)
        if doc.get("format") != 1:
            raise ValueError(f"unsupported format {doc.get('format')!r}")
        c = doc.get("check") or {}
        routes = Routes(
            hash=hashlib.sha256(raw).hexdigest()[:16],
            loaded_at=time.time(),
            customer_header=str(doc.get("customer_header") or "X-Customer"),
            api_keys={str(k).lower(): str(v) for k, v in (doc.get("api_keys") or {}).items()},
            check=Check(
                float(c.get("interval_s", 1.0)),
                float(c.get("timeout_s", 1.0)),
                int(c.get("fall", 2)),
                int(c.get("rise", 1)),
            ),
        )
        seen: dict[Key, Backend] = {}
        for m in doc["models"]:
            model = _parse_model(m, known, seen)
            table = routes.openai if model.protocol == "openai" else routes.kserve
            for name in model.names:
                if table.setdefault(name, model) is not model:
                    raise ValueError(f"{model.protocol} name {name!r} is routed to two models")
            routes.models.append(model)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed routes: {type(exc).__name__}: {exc}") from None
    if (
        min(routes.check.interval_s, routes.check.timeout_s) <= 0
        or min(routes.check.fall, routes.check.rise) < 1
    ):
        raise ValueError(f"bad check settings {routes.check}")
    return routes


def _parse_model(
    m: dict[str, Any], known: Callable[[Key], Backend | None], seen: dict[Key, Backend]
) -> Model:
    if m["protocol"] not in ("openai", "kserve"):
        raise ValueError(f"model {m['name']!r}: unknown protocol {m['protocol']!r}")
    versions = {}
    for vname, v in m["versions"].items():
        backends = []
        for b in v["backends"]:
            new = Backend(
                str(b["url"]).rstrip("/"),
                str(b["replica"]),
                str(v["deployment"]),
                str(v["health_path"]),
            )
            backends.append(seen.setdefault(new.key, known(new.key) or new))
        versions[str(vname)] = Version(str(v["deployment"]), v.get("served_name") or None, backends)
    model = Model(
        str(m["name"]),
        m["protocol"],
        [str(n) for n in m["names"]],
        None if m["current"] is None else str(m["current"]),
        {str(k): str(v) for k, v in (m.get("customers") or {}).items()},
        versions,
    )
    for version in [model.current, *model.customers.values()]:
        if version is not None and version not in versions:
            raise ValueError(f"model {model.name!r}: version {version!r} is not in its versions")
    return model
