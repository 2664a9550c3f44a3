"""What Docker says about each container's run: restart count, start time, and for a NIM
the profile its start-up log names (through the `ContainerInspector` port, one per host)."""

from __future__ import annotations

from collections.abc import Mapping

from fleetctl.ops.health.model import ContainerFacts, Profile, Target
from fleetctl.ops.health.profiles import HEAD_LINES, parse_profile
from fleetctl.ports import ContainerInspector
from fleetctl.state.health_store import Memory


class DockerFacts:
    """Callable as `FactsReader`: one inspect per container, and one read of a NIM's log
    head per run (the profile of a run already read is taken from the memory)."""

    def __init__(self, hosts: Mapping[str, ContainerInspector]) -> None:
        self._hosts = hosts

    def __call__(self, t: Target, memory: Memory | None) -> ContainerFacts:
        c = t.container
        if c is None:
            return ContainerFacts()
        host = self._hosts[c.host]
        try:
            run = host.run_info(c.id)
        except Exception as exc:  # gone since it was listed, or the engine stopped answering
            return ContainerFacts(error=f"inspect {c.name}: {type(exc).__name__}")
        if t.runtime != "nim" or run.status != "running":
            return ContainerFacts(run=run)
        cached = _cached_profile(memory, c.id, run.started_at, t.expected_profile)
        if cached is not None:
            return ContainerFacts(run=run, profile=cached)
        head = host.logs_head(c.id, HEAD_LINES, since=run.started_at)
        return ContainerFacts(run=run, profile=parse_profile(head, t.expected_profile))


def _cached_profile(
    memory: Memory | None, container_id: str, started_at: float | None, expected: str | None
) -> Profile | None:
    if memory is None or memory.profile_id is None or memory.container_id != container_id:
        return None
    if (
        started_at is None
        or memory.started_at is None
        or abs(memory.started_at - started_at) > 1e-3
    ):
        return None  # restarted since: its log names this run's choice afresh
    return Profile(memory.profile_id, memory.profile_name, expected)
