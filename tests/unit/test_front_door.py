"""The front door's pure parts: the routes file (golden), the diff, port reservation;
and the Router's order of operations during a rollout (against a fake HostAPI)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from fleetctl.core.fleet import Assignment
from fleetctl.core.front_door import (
    LOADED_PATH,
    ROUTES_PATH,
    FrontDoorActionKind,
    FrontDoorSite,
    api_key_digest,
    front_door_actions,
    routes_bytes,
    routes_document,
    routes_hash,
)
from fleetctl.core.observed import ObservedContainer, ObservedFleet, ObservedFrontDoor, ObservedHost
from fleetctl.core.plan import ActionKind, assign_ports
from fleetctl.ops.front_door import planned_backends, routes_for, routing_map, sites
from fleetctl.ops.planning import build_plan
from fleetctl.ports import CheckResult
from fleetctl.runtimes.inventory import load

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("FLEETCTL_UPDATE_GOLDEN") == "1"


def golden(name: str, data: bytes) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_bytes(data)
    assert data == path.read_bytes(), (
        f"{name} differs; rerun with FLEETCTL_UPDATE_GOLDEN=1 to accept"
    )


def demo_plan(observed: ObservedFleet | None = None):  # type: ignore[no-untyped-def]
    loaded = load(REPO / "inventory" / "demo.yaml")
    inv = loaded.inventory
    obs = observed or ObservedFleet.empty([h.name for h in inv.hosts])
    return loaded, inv, build_plan(loaded, obs)


def test_demo_routes_match_the_golden_file() -> None:
    _, inv, plan = demo_plan()
    data = routes_for(plan, inv, planned_backends(plan, {h.name: h.address for h in inv.hosts}))
    golden("routes_demo.json", data)
    doc = json.loads(data)
    chat = next(m for m in doc["models"] if m["name"] == "chat-llm")
    assert chat["protocol"] == "openai" and chat["current"] == "v4"
    assert chat["customers"] == {"acme-corp": "v3"}
    assert chat["versions"]["v3"]["backends"][0]["url"].startswith("http://127.0.0.1:200")
    kserve = {m["name"]: m for m in doc["models"] if m["protocol"] == "kserve"}
    # One shared Triton server serves the three Triton models, each by its name.
    (server,) = kserve.values()
    assert server["names"] == ["embeddings", "reranker", "safety-guard"]
    assert [v["health_path"] for v in server["versions"].values()] == ["/v2/health/ready"]
    assert plan.routes_hash == routes_hash(data)


def test_routes_bytes_do_not_depend_on_input_order() -> None:
    _, inv, plan = demo_plan()
    backends = planned_backends(plan, {h.name: h.address for h in inv.hosts})
    settings = plan.front_door_settings
    a = routes_document(
        inv.fleet, settings, plan.deployments, routing_map(plan.deployments), backends
    )
    b = routes_document(
        inv.fleet,
        settings,
        tuple(reversed(plan.deployments)),
        routing_map(plan.deployments),
        reversed(backends),
    )
    assert routes_bytes(a) == routes_bytes(b)


def test_api_keys_appear_only_as_digests(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text = (
        (REPO / "inventory" / "demo.yaml")
        .read_text()
        .replace("front_door:\n", "front_door:\n  api_keys:\n    acme-corp: {env: ACME_KEY}\n", 1)
    )
    path = tmp_path / "demo.yaml"
    path.write_text(
        text.replace("../tests/testbed/models", str(REPO / "tests" / "testbed" / "models"))
    )
    monkeypatch.setenv("ACME_KEY", "sk-acme-secret-123")
    loaded = load(path)
    plan = build_plan(loaded, ObservedFleet.empty([h.name for h in loaded.inventory.hosts]))
    data = routes_for(plan, loaded.inventory, [])
    assert b"sk-acme-secret-123" not in data
    assert json.loads(data)["api_keys"] == {api_key_digest("sk-acme-secret-123"): "acme-corp"}
    monkeypatch.delenv("ACME_KEY")
    from fleetctl.errors import FleetctlError

    with pytest.raises(FleetctlError, match="ACME_KEY"):
        build_plan(loaded, ObservedFleet.empty([h.name for h in loaded.inventory.hosts]))


def test_demo_front_door_port_is_kept_free_of_replicas() -> None:
    _, inv, plan = demo_plan()
    (site,) = sites(inv)
    assert site.port == 20080 and site.url == "http://127.0.0.1:20080"
    blocks = {a.port for a in plan.actions}
    assert all(not (p <= 20080 <= p + 3) for p in blocks if p is not None)
    assert [f.kind for f in plan.front_doors] == [FrontDoorActionKind.CREATE]


def test_a_replica_on_a_port_the_front_door_now_claims_moves() -> None:
    observed = [
        ObservedContainer("h", "id", "c", "m@1", 0, (0,), "x", "running", "img", port=20080),
    ]
    ports = assign_ports(
        [Assignment("m@1", 0, "h", (0,))], {"h": (20000, 20999)}, observed, {"h": [20081]}
    )
    assert ports[("m@1", 0)] != 20080
    kept = assign_ports(
        [Assignment("m@1", 0, "h", (0,))], {"h": (20000, 20999)}, observed, {"h": [20999]}
    )
    assert kept[("m@1", 0)] == 20080


SITE = FrontDoorSite("h", "127.0.0.1", "127.0.0.1", 20080, "fd:1")


def door(**kw) -> ObservedFrontDoor:  # type: ignore[no-untyped-def]
    base = dict(
        host="h",
        id="id",
        name="fleetctl-x-front-door",
        state="running",
        image="fd:1",
        spec_hash=SITE.spec_hash(),
        port=20080,
        routes_hash="r1",
    )
    return ObservedFrontDoor(**{**base, **kw})


@pytest.mark.parametrize(
    "observed, kind",
    [
        ([], FrontDoorActionKind.CREATE),
        ([door()], FrontDoorActionKind.KEEP),
        ([door(routes_hash="old")], FrontDoorActionKind.RELOAD),
        ([door(routes_hash=None)], FrontDoorActionKind.RELOAD),
        ([door(state="exited")], FrontDoorActionKind.RECREATE),
        ([door(spec_hash="other", port=20090)], FrontDoorActionKind.RECREATE),
    ],
)
def test_front_door_diff(observed, kind) -> None:  # type: ignore[no-untyped-def]
    (a,) = front_door_actions([SITE], {"h": observed} if observed else {}, "r1", {})
    assert a.kind is kind


def test_front_door_diff_removes_duplicates_and_disabled_ones() -> None:
    acts = front_door_actions(
        [SITE], {"h": [door(), door(id="2", name="dup", state="exited")]}, "r1", {}
    )
    assert [(a.kind, a.container) for a in acts] == [
        (FrontDoorActionKind.KEEP, "fleetctl-x-front-door"),
        (FrontDoorActionKind.REMOVE, "dup"),
    ]
    (gone,) = front_door_actions([], {"h": [door()]}, "", {"h": "down"})
    assert gone.kind is FrontDoorActionKind.REMOVE and gone.blocked == "down"


# -- the Router, against a fake host --------------------------------------------------------


class FakeHost:
    """The HostAPI calls the Router makes; a front door 'loads' routes on SIGHUP."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.calls: list[str] = []

    def put_file(self, container: str, path: str, data: bytes) -> None:
        self.files[path] = data
        self.calls.append("put")

    def signal(self, container: str, signal: str) -> None:
        self.calls.append(signal)
        self.files[LOADED_PATH] = routes_hash(self.files[ROUTES_PATH]).encode()

    def read_file(self, container: str, path: str) -> bytes | None:
        return self.files.get(path)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def served(host: FakeHost) -> dict[str, list[str]]:
    doc = json.loads(host.files[ROUTES_PATH])
    return {
        v["deployment"]: [b["url"] for b in v["backends"]]
        for m in doc["models"]
        for v in m["versions"].values()
    }


DEMO_DOOR = ObservedFrontDoor(
    "demo-host", "fd", "fleetctl-demo-front-door", "running", "fd:1", "h", 20080
)


def running(plan, inv, port: int) -> ObservedFleet:  # type: ignore[no-untyped-def]
    c = ObservedContainer(
        "demo-host",
        "id",
        "fleetctl-demo-chat-llm-v4-0",
        "chat-llm@v4",
        0,
        (0,),
        "x",
        "running",
        "img",
        port=port,
        endpoint=f"http://127.0.0.1:{port}",
    )
    return ObservedFleet(
        {"demo-host": ObservedHost("demo-host", containers=(c,), front_doors=(DEMO_DOOR,))},
        offline=False,
    )


def only_door() -> ObservedFleet:
    return ObservedFleet(
        {"demo-host": ObservedHost("demo-host", front_doors=(DEMO_DOOR,))}, offline=False
    )


def test_router_moves_traffic_then_drains_the_old_replica() -> None:
    from fleetctl.ops.routing import Router

    _, inv, plan = demo_plan()
    host = FakeHost()
    busy = {"n": 3}

    def status(url: str) -> dict:  # the old replica finishes one request per poll
        busy["n"] = max(0, busy["n"] - 1)
        return {"backends": [{"url": "http://127.0.0.1:20500", "outstanding": busy["n"]}]}

    clock = FakeClock()
    router = Router(
        plan,
        inv,
        {"demo-host": host},
        running(plan, inv, 20500),
        status=status,
        clock=clock,
        check=ready,
    )
    router.push()
    assert served(host)["chat-llm@v4"] == ["http://127.0.0.1:20500"]
    old = router.serve("chat-llm@v4", 0, "http://127.0.0.1:20600")
    assert old == "http://127.0.0.1:20500"
    assert served(host)["chat-llm@v4"] == ["http://127.0.0.1:20600"]  # pushed before anything stops
    router.drain(old)
    assert busy["n"] == 0 and clock.t < router.drain_timeout_s
    # A leftover container at another port does not take the live replica out.
    assert router.withdraw("chat-llm@v4", 0, "demo-host", 20500) is None
    assert router.withdraw("chat-llm@v4", 0, "demo-host", 20600) == "http://127.0.0.1:20600"
    assert served(host)["chat-llm@v4"] == []
    assert host.calls.count("SIGHUP") == 3 and not router.problems  # push, serve, withdraw


def test_router_drain_is_bounded() -> None:
    from fleetctl.ops.routing import Router

    _, inv, plan = demo_plan()
    clock = FakeClock()
    stuck = lambda url: {"backends": [{"url": "http://x:1", "outstanding": 1}]}  # noqa: E731
    router = Router(
        plan, inv, {"demo-host": FakeHost()}, only_door(), status=stuck, clock=clock, check=ready
    )
    router.drain("http://x:1")
    assert router.drain_timeout_s <= clock.t < router.drain_timeout_s + 1


def test_router_reports_a_front_door_that_does_not_load_its_routes() -> None:
    from fleetctl.ops.routing import Router

    class Deaf(FakeHost):
        def signal(self, container: str, signal: str) -> None:
            self.calls.append(signal)

    _, inv, plan = demo_plan()
    router = Router(
        plan,
        inv,
        {"demo-host": Deaf()},
        only_door(),
        clock=FakeClock(),
        status=no_status,
        check=ready,
    )
    router.serve("chat-llm@v4", 0, "http://127.0.0.1:20600")
    assert router.problems and "not loaded" in router.problems[0]


def test_router_sends_nothing_to_a_front_door_that_is_not_running() -> None:
    from fleetctl.ops.routing import Router

    _, inv, plan = demo_plan()
    host = FakeHost()
    router = Router(
        plan,
        inv,
        {"demo-host": host},
        ObservedFleet.empty(["demo-host"], offline=False),
        clock=FakeClock(),
        status=no_status,
        check=ready,
    )
    router.serve("chat-llm@v4", 0, "http://127.0.0.1:20600")
    assert host.calls == [] and router.problems == []


def test_disabled_front_door_plans_nothing(tmp_path: Path) -> None:
    text = (
        (REPO / "inventory" / "demo.yaml")
        .read_text()
        .replace("front_door:\n", "front_door:\n  enabled: false\n", 1)
    )
    path = tmp_path / "demo.yaml"
    path.write_text(text)
    loaded = load(path)
    plan = build_plan(loaded, ObservedFleet.empty([h.name for h in loaded.inventory.hosts]))
    assert plan.front_doors == () and plan.routes_hash == ""
    assert all(a.kind is ActionKind.CREATE for a in plan.actions)
    assert replace(plan, actions=()).has_changes is False


def no_status(url: str) -> None:
    """No front door answers over HTTP in these tests: the Docker API path is used."""
    return None


def ready(spec: object) -> CheckResult:
    """The front door's readiness probe (these tests bring up none)."""
    return CheckResult(True, "ready")


def current_of(host: FakeHost, model: str) -> str:
    doc = json.loads(host.files[ROUTES_PATH])
    return next(m["current"] for m in doc["models"] if m["name"] == model)


def test_a_version_switch_moves_clients_only_once_the_new_version_is_complete(
    tmp_path: Path,
) -> None:
    from fleetctl.ops.routing import Router

    text = (
        (REPO / "inventory" / "demo.yaml")
        .read_text()
        .replace("version: v4", "version: v5\n    replicas: 2", 1)
    )
    path = tmp_path / "demo.yaml"
    path.write_text(
        text.replace("../tests/testbed/models", str(REPO / "tests" / "testbed" / "models"))
    )
    loaded = load(path)
    plan = build_plan(loaded, ObservedFleet.empty(["demo-host"], offline=False))
    host = FakeHost()
    router = Router(
        plan,
        loaded.inventory,
        {"demo-host": host},
        running(plan, loaded.inventory, 20500),
        clock=FakeClock(),
        status=no_status,
        check=ready,
    )
    router.push()
    assert current_of(host, "chat-llm") == "v4"  # v5 has no replica yet: v4 keeps everyone
    router.serve("chat-llm@v5", 0, "http://127.0.0.1:20600")
    assert current_of(host, "chat-llm") == "v4"  # one of two
    router.serve("chat-llm@v5", 1, "http://127.0.0.1:20604")
    assert current_of(host, "chat-llm") == "v5"
    assert served(host)["chat-llm@v4"] == ["http://127.0.0.1:20500"]  # still routed: it drains
    router.withdraw("chat-llm@v4", 0, "demo-host", 20500)
    assert "chat-llm@v4" not in served(host)
    assert routes_hash(host.files[ROUTES_PATH]) != plan.routes_hash  # v3 is not up in this test


def test_a_rollback_to_a_running_pin_moves_clients_at_once() -> None:
    from fleetctl.ops.routing import Router

    _, inv, plan = demo_plan()
    v3 = replace(plan.deployment("chat-llm@v3"), customers=(), replicas=2)
    plan = replace(
        plan,
        deployments=tuple(
            v3 if d.name == "chat-llm@v3" else d
            for d in plan.deployments
            if d.name != "chat-llm@v4"
        ),
        switch_at_once=frozenset({"chat-llm"}),
    )
    host = FakeHost()
    observed = running(plan, inv, 20500)  # v4 runs
    v3c = ObservedContainer(
        "demo-host",
        "id3",
        "fleetctl-demo-chat-llm-v3-0",
        "chat-llm@v3",
        0,
        (0,),
        "x",
        "running",
        "img",
        port=20400,
        endpoint="http://127.0.0.1:20400",
    )
    observed = ObservedFleet(
        {
            "demo-host": replace(
                observed.hosts["demo-host"],
                containers=observed.hosts["demo-host"].containers + (v3c,),
            )
        },
        offline=False,
    )
    router = Router(
        plan, inv, {"demo-host": host}, observed, clock=FakeClock(), status=no_status, check=ready
    )
    router.push()
    assert current_of(host, "chat-llm") == "v3"  # one of two replicas, but a rollback flips at once
