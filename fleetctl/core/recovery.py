"""Interrupted rollouts: what a killed apply left under temporary names, and how to end it.

A replica's container carries its final name (`fleetctl-…-chat-llm-v4-0`) only once it
has passed its readiness gate: a successor is created as `…-next`, gated, and renamed;
a predecessor is parked as `…-old` (stopped) until its deployment has rolled. So after a
kill at any moment, the names alone say where each replica stood:

- a final-named container exists: it is verified; any `-next` or `-old` beside it is a
  leftover, which the plan removes (after the routes have left it);
- no final name, a `-next` exists: the successor is **finished forward**: gated again,
  then renamed; if it fails its gate, the parked predecessor (if any) is restored;
- no final name, only a `-old`: the predecessor is **restored** (renamed back, started).

Pure: a function of the observed fleet. The executor is fleetctl.ops.recovery.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from fleetctl.core.observed import ObservedContainer, ObservedFleet, ObservedHost

TEMP_SUFFIX = "-next"
OLD_SUFFIX = "-old"


class RecoveryKind(str, Enum):
    FINISH = "finish"  # gate a -next container, rename it to its final name
    RESTORE = "restore"  # rename a -old container back and start it


@dataclass(frozen=True)
class Recovery:
    kind: RecoveryKind
    deployment: str
    replica: int
    host: str  # where `container` runs
    container: str  # the -next (finish) or -old (restore) container
    final_name: str
    # finish only: the parked predecessor to restore if the successor fails its gate.
    fallback_host: str | None = None
    fallback: str | None = None
    reason: str = ""
    # Where the container serves (for its readiness gate).
    endpoint: str = ""
    gpus: tuple[int, ...] = ()
    port: int | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "deployment": self.deployment,
            "replica": self.replica,
            "host": self.host,
            "container": self.container,
            "final_name": self.final_name,
            "fallback_host": self.fallback_host,
            "fallback": self.fallback,
            "reason": self.reason,
        }


def final_name(name: str) -> str:
    """The container's name without a rollout's temporary suffix."""
    for suffix in (TEMP_SUFFIX, OLD_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def recoveries(observed: ObservedFleet) -> list[Recovery]:
    """What to finish forward or restore, per replica left without its final name.
    Replicas on an unreachable host wait for it (nothing is known about them)."""
    groups: dict[tuple[str, int], list[ObservedContainer]] = {}
    for c in observed.containers():
        groups.setdefault((c.deployment, c.replica), []).append(c)
    out: list[Recovery] = []
    for (dep, replica), found in sorted(groups.items()):
        if any(not (c.temporary or c.parked) for c in found):
            continue  # verified and final: leftovers beside it are the plan's removals
        nexts = sorted(
            (c for c in found if c.temporary), key=lambda c: (not c.running, c.host, c.name)
        )
        olds = sorted((c for c in found if c.parked), key=lambda c: (not c.running, c.host, c.name))
        if nexts:
            n = nexts[0]
            o = olds[0] if olds else None
            out.append(
                Recovery(
                    RecoveryKind.FINISH,
                    dep,
                    replica,
                    n.host,
                    n.name,
                    final_name(n.name),
                    fallback_host=o.host if o else None,
                    fallback=o.name if o else None,
                    reason="an interrupted rollout left its successor under a temporary name",
                    endpoint=n.endpoint,
                    gpus=n.gpus,
                    port=n.port,
                )
            )
        elif olds:
            o = olds[0]
            out.append(
                Recovery(
                    RecoveryKind.RESTORE,
                    dep,
                    replica,
                    o.host,
                    o.name,
                    final_name(o.name),
                    reason="an interrupted rollout left only the parked predecessor",
                    endpoint=o.endpoint,
                    gpus=o.gpus,
                    port=o.port,
                )
            )
    return out


def assume_recovered(observed: ObservedFleet, recs: list[Recovery]) -> ObservedFleet:
    """The fleet as it will be once `recs` succeed: what `plan` shows beside them."""
    if not recs:
        return observed
    by_container = {(r.host, r.container): r for r in recs}
    hosts: dict[str, ObservedHost] = {}
    for name, h in observed.hosts.items():
        containers = []
        for c in h.containers:
            r = by_container.get((name, c.name))
            if r is not None:
                c = replace(c, name=r.final_name, temporary=False, parked=False, state="running")
            containers.append(c)
        hosts[name] = replace(h, containers=tuple(containers))
    return replace(observed, hosts=hosts)
