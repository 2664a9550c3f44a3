"""Readiness probes: HTTP endpoints and Triton model readiness through tritonclient."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlparse

from fleetctl.ports import CheckResult
from fleetctl.runtimes.spec import ContainerSpec, HealthCheck


class SystemClock:
    """The `Clock` port: this machine's monotonic clock."""

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


def front_door_status(url: str, timeout_s: float = 1.0) -> dict[str, Any] | None:
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


class HttpProbes:
    """The `Probes` port over HTTP (httpx) and tritonclient, from this machine."""

    def probe(self, spec: ContainerSpec) -> CheckResult:
        return probe(spec)

    def port_answers(self, endpoint: str) -> bool:
        return port_answers(endpoint)

    def front_door_status(self, url: str) -> dict[str, Any] | None:
        return front_door_status(url)
