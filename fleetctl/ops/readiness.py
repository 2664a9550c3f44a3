"""Waiting for a container to become ready: polled through the probe and clock it is given."""

from __future__ import annotations

from collections.abc import Callable

from fleetctl.ports import Check, CheckResult, Clock
from fleetctl.runtimes.spec import ContainerSpec


def wait_ready(
    spec: ContainerSpec,
    container_state: Callable[[], str],
    *,
    timeout_s: float,
    clock: Clock,
    check: Check,
    interval_s: float = 0.5,
) -> CheckResult:
    """Poll until ready, the container dies, or the budget runs out."""
    if not spec.health:
        # A runtime that declares no checks trusts a successful start.
        return CheckResult(True, "started (no health checks declared)")
    deadline = clock.monotonic() + timeout_s
    last = CheckResult(False, "not probed yet")
    while True:
        state = container_state()
        if state in ("exited", "dead", "restarted"):
            return CheckResult(False, f"container {state} before it was ready ({last.detail})")
        last = check(spec)
        if last.ok:
            return last
        if clock.monotonic() >= deadline:
            return CheckResult(False, f"not ready within {timeout_s:g} s ({last.detail})")
        clock.sleep(interval_s)
