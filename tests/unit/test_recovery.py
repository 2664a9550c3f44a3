"""What an interrupted rollout left, by container names alone (fleetctl.core.recovery)."""

from __future__ import annotations

from fleetctl.core.fleet import Deployment, GpuSpec, HostSpec
from fleetctl.core.observed import ObservedContainer, ObservedFleet, ObservedHost
from fleetctl.core.plan import ActionKind, make_plan
from fleetctl.core.recovery import RecoveryKind, assume_recovered, final_name, recoveries


def c(
    name: str, *, host: str = "a", state: str = "running", port: int = 20000, spec: str = "h"
) -> ObservedContainer:
    return ObservedContainer(
        host=host,
        id=name,
        name=name,
        deployment="m@1",
        replica=0,
        gpus=(0,),
        spec_hash=spec,
        state=state,
        image="img",
        labeled_image="img",
        port=port,
        endpoint=f"http://127.0.0.1:{port}",
        temporary=name.endswith("-next"),
        parked=name.endswith("-old"),
    )


def fleet(*containers: ObservedContainer) -> ObservedFleet:
    hosts: dict[str, list[ObservedContainer]] = {}
    for x in containers:
        hosts.setdefault(x.host, []).append(x)
    return ObservedFleet(
        {h: ObservedHost(h, containers=tuple(cs)) for h, cs in hosts.items()}, offline=False
    )


def test_final_names_drop_either_suffix() -> None:
    assert final_name("fleetctl-m-1-0-next") == "fleetctl-m-1-0"
    assert final_name("fleetctl-m-1-0-old") == "fleetctl-m-1-0"
    assert final_name("fleetctl-m-1-0") == "fleetctl-m-1-0"


def test_a_final_named_container_needs_no_recovery_whatever_lies_beside_it() -> None:
    assert recoveries(fleet(c("x"), c("x-next", port=20004), c("x-old", state="exited"))) == []


def test_a_successor_without_a_final_name_is_finished_with_its_parked_predecessor_as_fallback() -> (
    None
):
    (r,) = recoveries(fleet(c("x-next", port=20004), c("x-old", state="exited")))
    assert (r.kind, r.container, r.final_name, r.fallback, r.port) == (
        RecoveryKind.FINISH,
        "x-next",
        "x",
        "x-old",
        20004,
    )


def test_a_successor_on_another_host_is_finished_there() -> None:
    (r,) = recoveries(fleet(c("x-next", host="b"), c("x-old", host="a", state="exited")))
    assert (r.host, r.fallback_host) == ("b", "a")


def test_a_lone_parked_predecessor_is_restored() -> None:
    (r,) = recoveries(fleet(c("x-old", state="exited")))
    assert (r.kind, r.container, r.final_name) == (RecoveryKind.RESTORE, "x-old", "x")


def test_the_plan_assumes_recovery_and_is_not_up_to_date_while_it_is_pending() -> None:
    d = Deployment("m", "1", "nim", "img", 10.0)
    host = HostSpec("a", (GpuSpec(0, 80.0), GpuSpec(1, 80.0)))
    observed = fleet(c("x-next", port=20004), c("x-old", state="exited"))
    plan = make_plan([d], [host], observed, {"a": (20000, 20099)})
    assert [r.kind for r in plan.recovery] == [RecoveryKind.FINISH]
    assert plan.has_changes
    view = assume_recovered(observed, list(plan.recovery))
    names = sorted(x.name for x in view.containers())
    assert names == ["x", "x-old"]
    # The parked leftover is removed; its port is never handed to another replica.
    removals = [a for a in plan.actions if a.kind is ActionKind.REMOVE]
    assert [a.container for a in removals] == ["x-old"]


def test_ports_of_leftovers_are_not_handed_out() -> None:
    d = Deployment("m", "1", "nim", "img", 10.0, replicas=2)
    host = HostSpec("a", (GpuSpec(0, 80.0), GpuSpec(1, 80.0)))
    observed = fleet(c("x", port=20000), c("x-next", port=20004))
    plan = make_plan([d], [host], observed, {"a": (20000, 20099)})
    new = [a for a in plan.actions if a.kind is ActionKind.CREATE]
    assert new and all(a.port not in (20000, 20004) for a in new)


def test_the_port_of_a_version_being_retired_is_not_handed_to_its_successor() -> None:
    d = Deployment("m", "2", "nim", "img", 10.0)
    host = HostSpec("a", (GpuSpec(0, 80.0), GpuSpec(1, 80.0)))
    plan = make_plan([d], [host], fleet(c("x", port=20000)), {"a": (20000, 20099)})
    (new,) = [a for a in plan.actions if a.kind is ActionKind.CREATE]
    assert new.port != 20000


def test_a_crash_looping_container_is_not_up_to_date() -> None:
    d = Deployment("m", "1", "nim", "img", 10.0)
    host = HostSpec("a", (GpuSpec(0, 80.0),))
    from dataclasses import replace

    from fleetctl.core.plan import spec_hash

    looping = c("x", spec=spec_hash(d, "a", (0,), 20000))

    plan = make_plan([d], [host], fleet(replace(looping, restarts=4)), {"a": (20000, 20099)})
    (a,) = plan.actions
    assert a.kind is ActionKind.RECREATE and "crash-looping (4 restarts)" in a.reason


def test_plan_text_names_the_recovery_before_the_actions() -> None:
    import io

    from rich.console import Console

    from fleetctl.cli.render import render_recovery

    d = Deployment("m", "1", "nim", "img", 10.0)
    host = HostSpec("a", (GpuSpec(0, 80.0),))
    plan = make_plan(
        [d],
        [host],
        fleet(c("x-next", port=20004), c("x-old", state="exited")),
        {"a": (20000, 20099)},
    )
    out = io.StringIO()
    render_recovery(Console(file=out, width=200), plan)
    assert (
        "finish   m@1#0 on a: gate x-next again and rename it x (else restore x-old)"
        in out.getvalue()
    )
