"""The composition root hands ops adapters that implement every method of their ports."""

from __future__ import annotations

from fleetctl import ports
from fleetctl.adapters.docker_host import DockerHost
from fleetctl.adapters.lease import HostLease, LeaseHeld
from fleetctl.cli import compose
from fleetctl.core.inventory import Host


def _host() -> Host:
    return Host.model_validate(
        {
            "name": "h1",
            "docker": "unix:///nonexistent.sock",
            "simulated": True,
            "gpus": {"count": 1, "memory_gb": 80},
        }
    )


def test_the_composition_root_builds_an_adapter_for_every_port() -> None:
    outside = compose.outside()
    assert isinstance(outside.probes, ports.Probes)
    assert isinstance(outside.clock, ports.Clock)
    assert isinstance(outside.triton, ports.TritonControl)
    assert outside.clock.monotonic() <= outside.clock.monotonic()


def test_a_docker_host_is_every_host_port_ops_uses() -> None:
    host = DockerHost(_host())  # no call is made: the client is created on first use
    assert isinstance(host, ports.HostAPI)
    assert isinstance(host, ports.LeasingHost)
    assert isinstance(host, ports.ContainerInspector)


def test_a_host_lease_is_a_lease_and_its_refusal_is_the_ports_one() -> None:
    lease = HostLease(api=None, host="h1", fleet="f", ttl_s=30)
    assert isinstance(lease, ports.Lease)
    assert issubclass(LeaseHeld, ports.LeaseHeld)


def test_the_state_store_records_steps_as_the_step_store_port_says(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fleetctl.state.store import StateStore

    with StateStore(tmp_path / "s.db") as store:
        assert isinstance(store, ports.StepStore)
