"""The rollout recipes against a fake `HostAPI` (the project's own adapter interface)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Mapping

from fleetctl.adapters.probes import CheckResult
from fleetctl.core.plan import START_FIRST, STOP_FIRST, Action, ActionKind
from fleetctl.ops.rendering import Rendered
from fleetctl.ops.rollout import Executor, SilentReporter, scrub
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

    def run(self, name: str, spec: ContainerSpec, labels: Mapping[str, str], secrets: Mapping[str, str]) -> str:
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
        self.calls.append(("remove", container))
        del self.containers[self._find(container)]

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
    spec = ContainerSpec(image=image, endpoint="http://127.0.0.1:1", health=(http_health("/ready"),), startup_timeout_s=timeout)
    return Rendered("fleetctl-m-1-0", spec, {"io.fleetctl.owner": "fleetctl"})


def executor(host: FakeHost, r: Rendered, secrets: Mapping[str, str] | None = None) -> Executor:
    def check(spec: ContainerSpec) -> CheckResult:
        return CheckResult(not spec.image.startswith("bad"), "GET /ready: " + ("200" if not spec.image.startswith("bad") else "503"))

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
    return Action(kind, "m@1", 0, "h1", (0,), 20000, "hash", "test", container=container, strategy=strategy)


def test_create_waits_until_ready() -> None:
    host = FakeHost()
    (out,) = executor(host, rendered("good:1")).run([action(ActionKind.CREATE)])
    assert out.ok
    (c,) = host.containers.values()
    assert c.name == "fleetctl-m-1-0" and c.state == "running"


def test_create_not_ready_is_removed_with_its_last_log_lines_and_no_secret() -> None:
    host = FakeHost()
    (out,) = executor(host, rendered("bad:1"), {"NGC_API_KEY": "nvapi-canary"}).run([action(ActionKind.CREATE)])
    assert not out.ok
    assert "not ready within 5 s" in out.detail
    assert "not ready" in out.log_tail and "nvapi-canary" not in out.log_tail and "***" in out.log_tail
    assert host.containers == {}


def test_start_first_keeps_the_old_one_serving_until_the_new_one_is_ready() -> None:
    host = FakeHost()
    host.add("fleetctl-m-1-0", "good:1")
    (out,) = executor(host, rendered("good:2")).run(
        [action(ActionKind.RECREATE, START_FIRST, container="fleetctl-m-1-0")]
    )
    assert out.ok
    assert host.names() == {"fleetctl-m-1-0": "good:2:running"}
    # New one started (temporary name) before the old one was removed.
    assert host.calls[0] == ("run", "fleetctl-m-1-0-next")
    assert host.calls[1] == ("remove", "fleetctl-m-1-0")


def test_start_first_failure_leaves_the_old_one_untouched() -> None:
    host = FakeHost()
    host.add("fleetctl-m-1-0", "good:1")
    (out,) = executor(host, rendered("bad:2")).run([action(ActionKind.RECREATE, START_FIRST, container="fleetctl-m-1-0")])
    assert not out.ok
    assert host.names() == {"fleetctl-m-1-0": "good:1:running"}
    assert ("stop", "fleetctl-m-1-0") not in host.calls


def test_stop_first_failure_restarts_the_old_one() -> None:
    host = FakeHost()
    host.add("fleetctl-m-1-0", "good:1")
    (out,) = executor(host, rendered("bad:2")).run([action(ActionKind.RECREATE, STOP_FIRST, container="fleetctl-m-1-0")])
    assert not out.ok and "old container restored" in out.detail
    assert host.names() == {"fleetctl-m-1-0": "good:1:running"}


def test_stop_first_success_replaces_the_old_one() -> None:
    host = FakeHost()
    host.add("fleetctl-m-1-0", "good:1")
    (out,) = executor(host, rendered("good:2")).run([action(ActionKind.RECREATE, STOP_FIRST, container="fleetctl-m-1-0")])
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
    assert host.calls == []


def test_a_port_taken_by_something_else_fails_before_starting_anything() -> None:
    host = FakeHost()
    ex = executor(host, rendered("good:1"))
    ex.port_taken = lambda endpoint: True
    (out,) = ex.run([action(ActionKind.CREATE)])
    assert not out.ok and "already answers before the container started" in out.detail
    assert host.calls == []


def test_scrub_hides_every_secret_value() -> None:
    assert scrub("token=abc123 and abc123", ["abc123"]) == "token=*** and ***"
