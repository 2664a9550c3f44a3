"""The fleet is locked where it lives: a lease on every host it changes.

The state lock (fleetctl.state.lock) serialises the commands that share one state; the
fleet lease serialises every command that changes the same fleet, whatever state it
uses and wherever it runs. Leases are taken one host at a time in one fixed order (by
Docker endpoint), so two applies that share hosts cannot each hold a part and wait for
the other: the second finds the first lease taken and stops at once with exit 8,
releasing what it took. A thread renews the heartbeats while the change runs; if a
lease cannot be renewed (taken over after this process stalled past its ttl, or its
host gone), no new step starts. See docs/architecture.md for why this is safe.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager

from fleetctl.core.inventory import Inventory
from fleetctl.errors import LockedError
from fleetctl.ops import interrupt
from fleetctl.ports import HostAPI, Lease, LeaseHeld

LEASE_TTL_S = 30.0


@contextmanager
def fleet_lease(
    inv: Inventory,
    hosts: Mapping[str, HostAPI],
    command: str,
    ttl_s: float = LEASE_TTL_S,
    unreachable: Collection[str] = (),
) -> Iterator[None]:
    """Hold the fleet's lease on each reachable host while the block runs; hosts the
    observation found `unreachable` are skipped (their steps are blocked anyway, and a
    call to them could only wait for its timeout)."""
    taken: list[Lease] = []
    try:
        for h in sorted(inv.hosts, key=lambda h: (h.docker, h.name)):
            if h.name in unreachable:
                continue
            make = getattr(hosts.get(h.name), "lease", None)
            lease = make(inv.fleet, ttl_s) if make else None
            if lease is None:
                continue  # unreachable (its steps are blocked anyway) or not a Docker host
            try:
                lease.take(command)
            except LeaseHeld as held:
                raise LockedError(
                    f"fleet {inv.fleet} is being changed by another fleetctl: {held}; "
                    "wait for it to finish (a dead holder's lease expires after "
                    f"{ttl_s:g} s without a heartbeat)"
                ) from None
            except Exception:
                continue  # the host went away between observing and now: blocked like one
            taken.append(lease)
        renewer = _Renewer(taken, ttl_s / 3)
        renewer.start()
        try:
            yield
        finally:
            renewer.stop()
    finally:
        for lease in reversed(taken):
            lease.release()


class _Renewer(threading.Thread):
    def __init__(self, leases: list[Lease], every_s: float) -> None:
        super().__init__(name="fleetctl-lease", daemon=True)
        self.leases, self.every_s = leases, every_s
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.every_s):
            for lease in self.leases:
                if not lease.renew():
                    interrupt.stop(f"the fleet lease on {lease.host} was lost")

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)
