"""The rollout recipes against a fake `HostAPI` (the project's own adapter interface)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetctl.core.plan import START_FIRST, STOP_FIRST, Action, ActionKind
from fleetctl.ops.rendering import Rendered
from fleetctl.ops.rollout import Executor, SilentReporter, scrub
from fleetctl.ports import CheckResult
from fleetctl.runtimes.spec import ContainerSpec, http_health


@dataclass
class FakeContainer:
    name: str
    image: str
    state: str = "running"
    env: Mapping[str, str] = field(default_factory=dict)
    restart: bool = False


class FakeHost:
    """Remembers containers and every call; images named 'bad*' never become ready."""

    def __init__(self, name: str = "h1") -> None:
        self.name = name
        self.containers: dict[str, FakeContainer] = {}
        self.calls: list[tuple[str, str]] = []
        self._ids = itertools.count(1)

    def _find(self, ref: str) -> str:
        if ref in self.containers:
            return ref
        return next(cid for cid, c in self.containers.items() if c.name == ref)

    def add(self, name: str, image: str, state: str = "running") -> str:
        cid = f"c{next(self._ids)}"
        self.containers[cid] = FakeContainer(name, image, state)
        return cid

    def observe(self):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def ensure_image(self, image: str) -> None:
        self.calls.append(("ensure_image", image))
        if image.startswith("missing"):
            raise LookupError(f"no such image {image}")

    def run(
        self,
        name: str,
        spec: ContainerSpec,
        labels: Mapping[str, str],
        secrets: Mapping[str, str],
        files=None,
    ) -> str:  # type: ignore[no-untyped-def]
        assert all(c.name != name for c in self.containers.values()), f"name clash {name}"
        self.calls.append(("run", name))
        cid = self.add(name, spec.image)
        self.containers[cid].env = {**spec.env, **secrets}
        return cid

    def state(self, container: str) -> str:
        return self.containers[self._find(container)].state

    def logs_tail(self, container: str, lines: int = 40) -> str:
        c = self.containers[self._find(container)]
        return f"starting {c.image}\nkey={c.env.get('NGC_API_KEY', '')}\nnot ready"

    def stop(self, container: str, timeout_s: int = 30) -> None:
        self.calls.append(("stop", container))
        self.containers[self._find(container)].state = "exited"

    def start(self, container: str) -> None:
        self.calls.append(("start", container))
        self.containers[self._find(container)].state = "running"

    def remove(self, container: str, timeout_s: int = 30) -> None:
        """Like the Docker adapter: removing what is not there is not an error."""
        try:
            cid = self._find(container)
        except StopIteration:
            return
        self.calls.append(("remove", container))
        del self.containers[cid]

    def rename(self, container: str, new_name: str) -> None:
        self.calls.append(("rename", f"{container}->{new_name}"))
        self.containers[self._find(container)].name = new_name

    def image_digest(self, image: str) -> str | None:
        return None

    def names(self) -> dict[str, str]:
        return {c.name: f"{c.image}:{c.state}" for c in self.containers.values()}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def rendered(image: str, timeout: float = 5) -> Rendered:
    spec = ContainerSpec(
        image=image,
        endpoint="http://127.0.0.1:1",
        health=(http_health("/ready"),),
        startup_timeout_s=timeout,
    )
    return Rendered("fleetctl-m-1-0", spec, {"io.fleetctl.owner": "fleetctl"})


def executor(host: FakeHost, r: Rendered, secrets: Mapping[str, str] | None = None) -> Executor:
    def check(spec: ContainerSpec) -> CheckResult:
        return CheckResult(
            not spec.image.startswith("bad"),
            "GET /ready: " + ("200" if not spec.image.startswith("bad") else "503"),
        )

    return Executor(
        hosts={"h1": host},
        rendered={("m@1", 0): r},
        secrets={("m@1", 0): dict(secrets or {})},
        reporter=SilentReporter(),
        max_parallel={"h1": 4},
        clock=FakeClock(),
        interval_s=1,
        check=check,
        port_taken=lambda endpoint: False,
    )


def action(kind: ActionKind, strategy: str = "", container: str | None = None) -> Action:
    return Action(
        kind, "m@1", 0, "h1", (0,), 20000, "hash", "test", container=container, strategy=strategy
    )


def test_create_waits_until_ready() -> None:
    host = FakeHost()
    (out,) = executor(host, rendered("good:1")).run([action(ActionKind.CREATE)])
    assert out.ok
    (c,) = host.containers.values()
    assert c.name == "fleetctl-m-1-0" and c.state == "running"


def test_create_not_ready_is_removed_with_its_last_log_lines_and_no_secret() -> None:
    host = FakeHost()
    (out,) = executor(host, rendered("bad:1"), {"NGC_API_KEY": "nvapi-canary"}).run(
        [action(ActionKind.CREATE)]
    )
    assert not out.ok
    assert "not ready within 5 s" in out.detail
    assert (
        "not ready" in out.log_tail and "nvapi-canary" not in out.log_tail and "***" in out.log_tail
    )
    assert host.containers == {}


def test_start_first_keeps_the_old_one_serving_until_the_new_one_is_ready() -> None:
    host = FakeHost()
    host.add("fleetctl-m-1-0", "good:1")
    (out,) = executor(host, rendered("good:2")).run(
        [action(ActionKind.RECREATE, START_FIRST, container="fleetctl-m-1-0")]
    )
    assert out.ok
    assert host.names() == {"fleetctl-m-1-0": "good:2:running"}
    # New one started (temporary name) before the old one was parked, then removed.
    calls = [c for c in host.calls if c[0] != "ensure_image"]
    assert calls == [
        ("run", "fleetctl-m-1-0-next"),
        ("rename", "fleetctl-m-1-0->fleetctl-m-1-0-old"),
        ("stop", "fleetctl-m-1-0-old"),
        ("rename", "c2->fleetctl-m-1-0"),
        ("remove", "fleetctl-m-1-0-old"),
    ]


def test_start_first_failure_leaves_the_old_one_untouched() -> None:
    host = FakeHost()
    host.add("fleetctl-m-1-0", "good:1")
    (out,) = executor(host, rendered("bad:2")).run(
        [action(ActionKind.RECREATE, START_FIRST, container="fleetctl-m-1-0")]
    )
    assert not out.ok
    assert host.names() == {"fleetctl-m-1-0": "good:1:running"}
    assert ("stop", "fleetctl-m-1-0") not in host.calls


def test_stop_first_failure_restarts_the_old_one() -> None:
    host = FakeHost()
    host.add("fleetctl-m-1-0", "good:1")
    (out,) = executor(host, rendered("bad:2")).run(
        [action(ActionKind.RECREATE, STOP_FIRST, container="fleetctl-m-1-0")]
    )
    assert not out.ok and "old container restored" in out.detail
    assert host.names() == {"fleetctl-m-1-0": "good:1:running"}


def test_stop_first_success_replaces_the_old_one() -> None:
    host = FakeHost()
    host.add("fleetctl-m-1-0", "good:1")
    (out,) = executor(host, rendered("good:2")).run(
        [action(ActionKind.RECREATE, STOP_FIRST, container="fleetctl-m-1-0")]
    )
    assert out.ok
    assert host.names() == {"fleetctl-m-1-0": "good:2:running"}


def test_crash_during_start_fails_fast() -> None:
    host = FakeHost()
    ex = executor(host, rendered("bad:crash", timeout=1000))
    original_run = host.run

    def run_and_crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        cid = original_run(*args, **kwargs)
        host.containers[cid].state = "exited"
        return cid

    host.run = run_and_crash  # type: ignore[method-assign]
    (out,) = ex.run([action(ActionKind.CREATE)])
    assert not out.ok and "exited before it was ready" in out.detail
    assert ex.clock.monotonic() < 10  # did not wait for the 1000 s budget


def test_blocked_actions_are_skipped() -> None:
    host = FakeHost()
    a = Action(ActionKind.CREATE, "m@1", 0, "h1", (0,), 20000, "hash", "new", blocked="unreachable")
    (out,) = executor(host, rendered("good:1")).run([a])
    assert not out.ok and "skipped" in out.detail
    assert [c for c in host.calls if c[0] != "ensure_image"] == []


def test_a_port_taken_by_something_else_fails_before_starting_anything() -> None:
    host = FakeHost()
    ex = executor(host, rendered("good:1"))
    ex.port_taken = lambda endpoint: True
    (out,) = ex.run([action(ActionKind.CREATE)])
    assert not out.ok and "already answers before the container started" in out.detail
    assert [c for c in host.calls if c[0] != "ensure_image"] == []


def test_scrub_hides_every_secret_value() -> None:
    assert scrub("token=abc123 and abc123", ["abc123"]) == "token=*** and ***"


# -- whole deployments: rolling, revert, version switch, images first ---------------------


def fleet_executor(
    host: FakeHost, specs: dict[tuple[str, int], tuple[str, str]], failing: set[str]
) -> Executor:
    """`specs`: (deployment, replica) -> (image, endpoint); endpoints in `failing` never get ready."""

    def check(spec: ContainerSpec) -> CheckResult:
        ok = spec.endpoint not in failing
        return CheckResult(ok, "GET /ready: " + ("200" if ok else "503"))

    rendered_ = {
        key: Rendered(
            f"fleetctl-{key[0].replace('@', '-')}-{key[1]}",
            ContainerSpec(image, endpoint, (http_health("/ready"),), 5),
            {},
        )
        for key, (image, endpoint) in specs.items()
    }
    return Executor(
        hosts={"h1": host},
        rendered=rendered_,
        secrets={},
        reporter=SilentReporter(),
        max_parallel={"h1": 4},
        clock=FakeClock(),
        interval_s=1,
        check=check,
        port_taken=lambda endpoint: False,
    )


def deployment(name: str, replicas: int):  # type: ignore[no-untyped-def]
    from fleetctl.core.fleet import Deployment

    model, _, version = name.partition("@")
    return Deployment(model, version, "nim", "img", 10, replicas=replicas)


def recreate(dep: str, replica: int) -> Action:
    name = f"fleetctl-{dep.replace('@', '-')}-{replica}"
    return Action(
        ActionKind.RECREATE,
        dep,
        replica,
        "h1",
        (replica,),
        20000 + 4 * replica,
        "h",
        "image",
        container=name,
        strategy=START_FIRST,
    )


def test_replicas_of_a_deployment_are_replaced_one_at_a_time() -> None:
    host = FakeHost()
    for i in range(3):
        host.add(f"fleetctl-m-1-{i}", "good:1")
    specs = {("m@1", i): ("good:2", f"http://127.0.0.1:{30000 + i}") for i in range(3)}
    outs = fleet_executor(host, specs, set()).run(
        [recreate("m@1", i) for i in range(3)], [deployment("m@1", 3)]
    )
    assert all(o.ok for o in outs)
    runs = [name for kind, name in host.calls if kind == "run"]
    parks = [c for c in host.calls if c[0] == "stop"]
    assert runs == ["fleetctl-m-1-0-next", "fleetctl-m-1-1-next", "fleetctl-m-1-2-next"]
    # Each successor starts only after its predecessor's old container was parked.
    order = [c for c in host.calls if c[0] in ("run", "stop")]
    assert order == [
        ("run", runs[0]),
        parks[0],
        ("run", runs[1]),
        parks[1],
        ("run", runs[2]),
        parks[2],
    ]
    assert host.names() == {f"fleetctl-m-1-{i}": "good:2:running" for i in range(3)}


def test_a_replica_failing_its_gate_reverts_the_ones_already_replaced() -> None:
    host = FakeHost()
    for i in range(3):
        host.add(f"fleetctl-m-1-{i}", "good:1")
    specs = {("m@1", i): ("good:2", f"http://127.0.0.1:{30000 + i}") for i in range(3)}
    outs = fleet_executor(host, specs, {"http://127.0.0.1:30001"}).run(
        [recreate("m@1", i) for i in range(3)], [deployment("m@1", 3)]
    )
    by_replica = {o.action.replica: o for o in outs}
    assert len(outs) == 3 and not any(o.ok for o in outs)
    assert "reverted" in by_replica[0].detail and "replica #1" in by_replica[0].detail
    assert "not ready" in by_replica[1].detail
    assert "not started" in by_replica[2].detail
    # Never mixed: every replica runs the old revision's very container again.
    assert host.names() == {f"fleetctl-m-1-{i}": "good:1:running" for i in range(3)}
    assert not any(name == "fleetctl-m-1-2-next" for kind, name in host.calls if kind == "run")


def test_a_version_switch_retires_the_old_version_only_once_the_new_one_serves() -> None:
    host = FakeHost()
    host.add("fleetctl-m-v4-0", "good:4")
    create = Action(ActionKind.CREATE, "m@v5", 0, "h1", (1,), 20004, "h", "new replica")
    retire = Action(
        ActionKind.REMOVE,
        "m@v4",
        0,
        "h1",
        (0,),
        20000,
        "h",
        "no longer in the inventory",
        container="fleetctl-m-v4-0",
    )
    specs = {("m@v5", 0): ("good:5", "http://127.0.0.1:30005")}
    outs = fleet_executor(host, specs, set()).run([retire, create], [deployment("m@v5", 1)])
    assert all(o.ok for o in outs)
    calls = [c for c in host.calls if c[0] in ("run", "remove")]
    assert calls == [("run", "fleetctl-m-v5-0-next"), ("remove", "fleetctl-m-v4-0")]


def test_a_new_version_that_fails_leaves_nothing_and_the_old_one_serves() -> None:
    host = FakeHost()
    host.add("fleetctl-m-v4-0", "good:4")
    host.add("fleetctl-m-v4-1", "good:4")
    creates = [
        Action(ActionKind.CREATE, "m@v5", i, "h1", (i,), 20008 + 4 * i, "h", "new replica")
        for i in range(2)
    ]
    retire = [
        Action(
            ActionKind.REMOVE,
            "m@v4",
            i,
            "h1",
            (i,),
            20000 + 4 * i,
            "h",
            "gone",
            container=f"fleetctl-m-v4-{i}",
        )
        for i in range(2)
    ]
    specs = {("m@v5", i): ("good:5", f"http://127.0.0.1:{30010 + i}") for i in range(2)}
    outs = fleet_executor(host, specs, {"http://127.0.0.1:30011"}).run(
        [*retire, *creates], [deployment("m@v5", 2)]
    )
    assert not any(o.ok for o in outs)
    assert host.names() == {
        "fleetctl-m-v4-0": "good:4:running",
        "fleetctl-m-v4-1": "good:4:running",
    }
    kept = [o for o in outs if o.action.kind is ActionKind.REMOVE]
    assert all("still serves" in o.detail for o in kept)


def test_every_image_is_checked_before_anything_stops() -> None:
    host = FakeHost()
    host.add("fleetctl-m-1-0", "good:1")
    host.add("fleetctl-n-1-0", "good:1")
    specs = {
        ("m@1", 0): ("missing:2", "http://127.0.0.1:30000"),
        ("n@1", 0): ("good:2", "http://127.0.0.1:30004"),
    }
    outs = fleet_executor(host, specs, set()).run(
        [recreate("m@1", 0), recreate("n@1", 0)], [deployment("m@1", 1), deployment("n@1", 1)]
    )
    by_dep = {o.action.deployment: o for o in outs}
    assert not by_dep["m@1"].ok and "missing:2 is not available on h1" in by_dep["m@1"].detail
    assert by_dep["n@1"].ok
    assert host.names()["fleetctl-m-1-0"] == "good:1:running"
    first_run = next(i for i, c in enumerate(host.calls) if c[0] == "run")
    assert all(c[0] == "ensure_image" for c in host.calls[:first_run])


def test_a_stopped_replica_replaced_leaves_no_parked_container() -> None:
    host = FakeHost()
    host.add("fleetctl-m-1-0", "good:1", state="exited")
    specs = {("m@1", 0): ("good:2", "http://127.0.0.1:30000")}
    (out,) = fleet_executor(host, specs, set()).run([recreate("m@1", 0)], [deployment("m@1", 1)])
    assert out.ok
    assert host.names() == {"fleetctl-m-1-0": "good:2:running"}
