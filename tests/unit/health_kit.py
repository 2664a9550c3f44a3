"""Fakes for the `fleetctl health` unit tests, at the project's own seams: the observer
(an `ObservedFleet` value), the probe (a function of probe spec and budget) and the
facts reader (a function of target and memory). Imported by test_health*.py (this
folder is put on sys.path by conftest.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from fleetctl.core import labels as L
from fleetctl.core.observed import ObservedContainer, ObservedFleet, ObservedFrontDoor, ObservedHost
from fleetctl.ops.health import (
    ContainerFacts,
    DeploymentHealth,
    HealthReport,
    ProbeResult,
    ProbeSpec,
    ReplicaHealth,
    Target,
    sweep,
)
from fleetctl.ops.planning import plan_inventory
from fleetctl.runtimes.spec import ContainerSpec

CANARY = "nvapi-HEALTH-CANARY-0b1c2d"
NOT_READY = ProbeResult(False, "GET /v1/health/ready: 503", "GET /v1/health/ready answers 200")
INVENTORY = """
fleet: hx
# One container per deployment: these tests are about the sweep, not shared servers.
triton_servers: dedicated
hosts:
{hosts}
models:
  - {{name: chat, version: "1", runtime: nim, image: "nim-standin:1", gpu_memory_gb: 70, replicas: 2,
     nim: {{served_model_name: chat}}}}
  - {{name: embed, version: "1", runtime: triton, image: "triton:2.51", gpu_memory_gb: 2, hosts: {{name: h1}},
     triton: {{model_repository: /models, models: [embed]}}}}
"""
HOST = """  - {{name: {name}, docker: "unix:///run/{name}.sock", simulated: true, gpus: {gpus}, network: host,
     address: 127.0.0.1, ports: {ports}, labels: {{name: {name}}}}}"""
DECLARED = "{count: 2, memory_gb: 80}"


def write_inventory(tmp: Path, h2_gpus: str = DECLARED) -> Path:
    hosts = "\n".join(
        HOST.format(name=n, gpus=g, ports=p)
        for n, g, p in (("h1", DECLARED, "26000-26099"), ("h2", h2_gpus, "26100-26199"))
    )
    path = tmp / "fleet.yaml"
    path.write_text(INVENTORY.format(hosts=hosts))
    return path


def applied(path: Path, unreachable: dict[str, str] | None = None) -> ObservedFleet:
    """The fleet as observed right after a successful apply of the offline plan."""
    result = plan_inventory(path, None)
    unreachable = unreachable or {}
    by_host: dict[str, list[ObservedContainer]] = {
        h.name: [] for h in result.loaded.inventory.hosts
    }
    for a in result.plan.actions:
        image = result.plan.deployment(a.deployment).image
        name = L.container_name(a.deployment, a.replica, "hx")
        by_host[a.host].append(
            ObservedContainer(
                a.host,
                f"id-{name}",
                name,
                a.deployment,
                a.replica,
                a.gpus,
                a.spec_hash,
                "running",
                image,
                labeled_image=image,
                port=a.port,
                endpoint=f"http://127.0.0.1:{a.port}",
            )
        )
    doors = {
        s.host: (
            ObservedFrontDoor(
                s.host,
                f"fd-{s.host}",
                L.front_door_name("hx"),
                "running",
                s.image,
                s.spec_hash(),
                s.port,
                s.url,
                result.plan.routes_hash,
            ),
        )
        for s in result.plan.front_door_sites
    }
    return ObservedFleet(
        {
            h: ObservedHost(h, False, unreachable[h])
            if h in unreachable
            else ObservedHost(h, containers=tuple(cs), front_doors=doors.get(h, ()))
            for h, cs in by_host.items()
        },
        offline=False,
    )


def edit(
    observed: ObservedFleet,
    key: str,
    change: Callable[[ObservedContainer], ObservedContainer | None],
) -> ObservedFleet:
    """`change` the container of replica `key` ("dep@v#n"); None removes it."""

    def one(c: ObservedContainer) -> ObservedContainer | None:
        return change(c) if f"{c.deployment}#{c.replica}" == key else c

    hosts = {
        n: replace(h, containers=tuple(x for c in h.containers if (x := one(c)) is not None))
        for n, h in observed.hosts.items()
    }
    return ObservedFleet(hosts, offline=False)


class FakeProbe:
    """Answers by endpoint; records every probe spec it was asked about."""

    def __init__(self, failing: dict[str, ProbeResult] | None = None) -> None:
        self.failing = failing or {}
        self.seen: list[tuple[ContainerSpec, float]] = []
        self.specs: list[ProbeSpec] = []
        self.lock = threading.Lock()

    def __call__(self, ps: ProbeSpec, timeout_s: float) -> ProbeResult:
        with self.lock:
            self.seen.append((ps.spec, timeout_s))
            self.specs.append(ps)
        return self.failing.get(ps.endpoint, ProbeResult(True, "ready"))

    def close(self) -> None:
        pass


def no_facts(t: Target, memory: Any) -> ContainerFacts:
    return ContainerFacts()


def run(
    path: Path,
    observed: ObservedFleet,
    probe: Callable[[ProbeSpec, float], ProbeResult] | None = None,
    timeout_s: float = 5.0,
    **options: Any,
) -> HealthReport:
    options.setdefault("facts", no_facts)
    return sweep(path, lambda inv: observed, probe or FakeProbe(), timeout_s=timeout_s, **options)


def replica(report: HealthReport, key: str) -> ReplicaHealth:
    return next(r for r in report.replicas if f"{r.deployment}#{r.replica}" == key)


def dep(report: HealthReport, name: str) -> DeploymentHealth:
    return next(d for d in report.deployments if d.deployment == name)


def endpoint(observed: ObservedFleet, key: str) -> str:
    return next(c.endpoint for c in observed.containers() if f"{c.deployment}#{c.replica}" == key)


def unhealthy_report(tmp_path: Path) -> HealthReport:
    path = write_inventory(tmp_path)
    observed = edit(applied(path), "embed@1#0", lambda c: replace(c, state="exited"))
    slow = ProbeResult(
        True,
        "ready",
        degraded=("latency 300 ms over the 200 ms SLA (POST /v1/chat/completions (1 token))",),
        request="POST /v1/chat/completions (1 token)",
        request_latency_s=0.3,
        over_sla=True,
    )
    probe = FakeProbe(
        {endpoint(observed, "chat@1#1"): NOT_READY, endpoint(observed, "chat@1#0"): slow}
    )
    return run(path, observed, probe)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def sample(m: Samples, name: str, **labels: str) -> float:
    return m[(name, tuple(sorted(labels.items())))]
