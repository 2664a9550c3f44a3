"""Readiness probes: HTTP endpoints and Triton model readiness through tritonclient."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlparse

from fleetctl.runtimes.spec import CheckResult, ContainerSpec, HealthCheck


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def run_check(endpoint: str, check: HealthCheck, timeout_s: float = 2.0) -> CheckResult:
    if check.kind == "http":
        import httpx

        url = endpoint.rstrip("/") + check.target
        try:
            r = httpx.get(url, timeout=timeout_s)
        except httpx.HTTPError as exc:
            return CheckResult(False, f"GET {check.target}: {type(exc).__name__}")
        return CheckResult(r.status_code == 200, f"GET {check.target}: {r.status_code}")
    if check.kind == "triton_model":
        import tritonclient.http as tc

        netloc = urlparse(endpoint).netloc
        try:
            client = tc.InferenceServerClient(
                netloc, connection_timeout=timeout_s, network_timeout=timeout_s
            )
            ready = bool(client.is_model_ready(check.target))
        except Exception as exc:  # tritonclient raises several types; any means "not yet"
            return CheckResult(False, f"model {check.target}: {type(exc).__name__}")
        return CheckResult(ready, f"model {check.target}: {'READY' if ready else 'not ready'}")
    from fleetctl.runtimes.registry import run_plugin_check

    return run_plugin_check(endpoint, check, timeout_s)


def port_answers(endpoint: str, timeout_s: float = 0.5) -> bool:
    """Whether something already listens at the endpoint's host:port.

    With host networking a new server cannot bind a port that is taken, and a readiness
    probe would then be answered by whatever holds it: check before starting.
    """
    import socket

    parsed = urlparse(endpoint)
    if not parsed.hostname or not parsed.port:
        return False
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout_s):
            return True
    except OSError:
        return False


def probe(spec: ContainerSpec) -> CheckResult:
    """All checks once, in order; the first failure is the answer."""
    for check in spec.health:
        result = run_check(spec.endpoint, check)
        if not result.ok:
            return result
    return CheckResult(True, "ready")


def wait_ready(
    spec: ContainerSpec,
    container_state: Callable[[], str],
    *,
    timeout_s: float,
    interval_s: float = 0.5,
    clock: Clock | None = None,
    check: Callable[[ContainerSpec], CheckResult] = probe,
) -> CheckResult:
    """Poll until ready, the container dies, or the budget runs out."""
    if not spec.health:
        # A runtime that declares no checks trusts a successful start.
        return CheckResult(True, "started (no health checks declared)")
    clock = clock or SystemClock()
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


def front_door_status(url: str, timeout_s: float = 1.0) -> dict | None:  # type: ignore[type-arg]
    """A front door's own status document (routes hash, backends, requests in flight);
    None when it cannot be read."""
    import httpx

    from fleetctl.core.front_door import STATUS_PATH

    try:
        r = httpx.get(url.rstrip("/") + STATUS_PATH, timeout=timeout_s)
        return r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def triton_ready_models(endpoint: str, timeout_s: float = 1.0) -> tuple[str, ...] | None:
    """The models a Triton server reports READY in its repository index; None when it
    does not answer (a server still starting is not drift)."""
    import httpx

    try:
        r = httpx.post(endpoint.rstrip("/") + "/v2/repository/index", json={}, timeout=timeout_s)
        rows = r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    if not isinstance(rows, list):
        return None
    return tuple(
        sorted(
            {str(m.get("name")) for m in rows if isinstance(m, dict) and m.get("state") == "READY"}
        )
    )


MEMBER_PARAMETER = "fleetctl.member"


def triton_member_of(endpoint: str, model: str, timeout_s: float = 1.0) -> str | None:
    """The member a loaded model records in its config (`fleetctl.member`), if any."""
    import httpx

    try:
        r = httpx.get(f"{endpoint.rstrip('/')}/v2/models/{model}/config", timeout=timeout_s)
        doc = r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    params = (doc or {}).get("parameters") if isinstance(doc, dict) else None
    value = (params or {}).get(MEMBER_PARAMETER) if isinstance(params, dict) else None
    return (
        str(value.get("string_value"))
        if isinstance(value, dict) and value.get("string_value")
        else None
    )


def loaded_routes(
    url: str | None,
    read_loaded: Callable[[], bytes | None],
    status: Callable[[str], dict | None] = front_door_status,  # type: ignore[type-arg]
) -> str | None:
    """The hash of the routes a front door last loaded (None: unknown): from its status
    endpoint when this machine reaches it (a few ms), else from its `loaded` file, read
    through the Docker API by `read_loaded` (tens of ms: the engine makes a tar)."""
    doc = status(url) if url else None
    if doc is not None and isinstance(doc.get("routes_hash"), str):
        return str(doc["routes_hash"]) or None
    data = read_loaded()
    return data.decode("ascii", errors="replace").strip() or None if data else None
