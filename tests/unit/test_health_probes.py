"""`fleetctl health`'s probes against loopback servers: the sweep's HTTP client, the
generic, NIM and Triton probes (budgets, what each failure is called, the timed request
against the SLA), and the repository index against the declared models.

No Docker: small `http.server` servers on 127.0.0.1 stand in for replicas; the Triton
index is read from a fake client object (the real one is in tests/integration).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from fleetctl.ops.health import ProbeResult, ProbeSpec, probing
from fleetctl.ops.health.probing import Prober
from fleetctl.runtimes.spec import ContainerSpec, HealthCheck, http_health


# -- the real probe, against loopback servers ----------------------------------------------
def serve(routes: dict[tuple[str, str], tuple[int, Any, float]]) -> tuple[ThreadingHTTPServer, str]:
    """A loopback HTTP server answering (method, path) -> (status, JSON body or None, delay s)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            status, body, delay = routes.get((self.command, self.path), (404, None, 0.0))
            time.sleep(delay)
            data = json.dumps(body).encode() if body is not None else b""
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        do_GET = do_POST = answer  # noqa: N815 - http.server API

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


@pytest.fixture
def server() -> Iterator[str]:
    """Answers like a Triton whose model `b` is not ready; /slow takes a second."""
    routes = {
        ("GET", "/ok"): (200, None, 0.0),
        ("GET", "/slow"): (200, None, 1.0),
        ("GET", "/v2/health/ready"): (400, None, 0.0),
        ("GET", "/v2/models/a/ready"): (200, None, 0.0),
        ("GET", "/v2/models/b/ready"): (400, None, 0.0),
    }
    httpd, url = serve(routes)
    yield url
    httpd.shutdown()
    httpd.server_close()


def nim_routes(
    model: str = "chat", delay: float = 0.0, chat: int = 200
) -> dict[tuple[str, str], tuple[int, Any, float]]:
    return {
        ("GET", "/v1/health/live"): (200, {}, 0.0),
        ("GET", "/v1/health/ready"): (200, {}, 0.0),
        ("GET", "/v1/models"): (
            200,
            {"object": "list", "data": [{"id": model, "object": "model"}]},
            0.0,
        ),
        ("POST", "/v1/chat/completions"): (chat, {"choices": []}, delay),
    }


@pytest.fixture
def nim() -> Iterator[Callable[..., str]]:
    servers = []

    def start(**kw: Any) -> str:
        httpd, url = serve(nim_routes(**kw))
        servers.append(httpd)
        return url

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def spec_with(url: str, *checks: str) -> ContainerSpec:
    """Checks as "/path" (HTTP) or "model:NAME" (Triton model readiness)."""
    hc = tuple(
        HealthCheck("triton_model", c[6:], f"model {c[6:]} is READY")
        if c.startswith("model:")
        else http_health(c)
        for c in checks
    )
    return ContainerSpec(image="img", endpoint=url, health=hc, startup_timeout_s=1)


def test_prober_runs_every_check_and_names_each_failure(server: str) -> None:
    with Prober() as probe:
        r = probe(ProbeSpec(spec_with(server, "/v2/health/ready", "model:a", "model:b")), 5.0)
        assert (r.ok, r.detail, r.check) == (
            False,
            "GET /v2/health/ready: 400; model b: not ready",
            "GET /v2/health/ready answers 200",
        )
        assert r.problems == ("GET /v2/health/ready: 400", "model b: not ready")
        assert probe(ProbeSpec(spec_with(server, "/ok", "model:a")), 5.0) == ProbeResult(
            True, "ready"
        )


def test_prober_keeps_to_its_budget_and_names_a_closed_port(server: str) -> None:
    with Prober() as probe:
        t0 = time.monotonic()
        r = probe(ProbeSpec(spec_with(server, "/slow", "/ok")), 0.3)
        assert time.monotonic() - t0 < 0.9
        assert (r.ok, r.detail, r.check) == (
            False,
            "GET /slow: ReadTimeout",
            "GET /slow answers 200",
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{s.getsockname()[1]}"
        assert (
            probe(ProbeSpec(spec_with(closed, "/v1/health/ready")), 2.0).detail
            == "GET /v1/health/ready: ConnectError"
        )


def test_the_sweep_client_keeps_one_connection_per_endpoint_and_names_failures() -> None:
    from fleetctl.ops.health.http import HTTPFailure, SweepHTTP

    peers: set[int] = set()
    routes = {
        ("GET", "/a"): (200, {"x": 1}, 0.0),
        ("POST", "/b"): (201, None, 0.0),
        ("GET", "/slow"): (200, None, 1.0),
    }
    httpd, url = serve(routes)
    original = httpd.RequestHandlerClass.answer  # type: ignore[attr-defined]

    def counting(self: Any) -> None:
        peers.add(self.client_address[1])
        original(self)

    httpd.RequestHandlerClass.answer = counting  # type: ignore[attr-defined]
    httpd.RequestHandlerClass.do_GET = httpd.RequestHandlerClass.do_POST = counting  # type: ignore[attr-defined]
    client = SweepHTTP()
    try:
        assert client.get(url + "/a", 2).json() == {"x": 1}
        assert client.post_json(url + "/b", {"model": "m"}, 2).status == 201
        assert client.get(url + "/a", 2).status == 200
        assert len(peers) == 1  # three requests, one kept-alive connection
        with pytest.raises(HTTPFailure) as slow:
            client.get(url + "/slow", 0.2)
        assert slow.value.kind == "ReadTimeout"
    finally:
        client.close()
        httpd.shutdown()
        httpd.server_close()
    with pytest.raises(HTTPFailure) as refused:
        SweepHTTP().get(url + "/a", 1)
    assert refused.value.kind == "ConnectError"


def nim_spec(url: str, served: str | None = "chat", sla_ms: float | None = None) -> ProbeSpec:
    return ProbeSpec(
        spec_with(url, "/v1/health/ready"), runtime="nim", served_model=served, sla_ms=sla_ms
    )


def test_nim_probe_checks_live_ready_the_served_model_and_times_one_completion(
    nim: Callable[..., str],
) -> None:
    with Prober() as probe:
        r = probe(nim_spec(nim(), sla_ms=500), 5.0)
        assert (r.ok, r.over_sla, r.degraded, r.request) == (
            True,
            False,
            (),
            "POST /v1/chat/completions (1 token)",
        )
        assert r.request_latency_s is not None and r.request_latency_s < 0.5
        slow = probe(nim_spec(nim(delay=0.25), sla_ms=100), 5.0)
        assert (
            slow.ok
            and slow.over_sla
            and slow.request_latency_s is not None
            and slow.request_latency_s >= 0.25
        )
        assert slow.degraded[0].startswith("latency ") and slow.degraded[0].endswith(
            " over the 100 ms SLA (POST /v1/chat/completions (1 token))"
        )
        wrong = probe(nim_spec(nim(model="other")), 5.0)
        assert (wrong.ok, wrong.detail) == (False, "GET /v1/models: chat not listed (lists: other)")
        broken = probe(nim_spec(nim(chat=500)), 5.0)
        assert (broken.ok, broken.detail, broken.check) == (
            False,
            "POST /v1/chat/completions: 500",
            "POST /v1/chat/completions (1 token) succeeds",
        )
        any_model = probe(nim_spec(nim(model="meta/llama"), served=None), 5.0)
        assert any_model.ok and any_model.request_latency_s is not None


def test_nim_probe_without_an_sla_measures_and_does_not_judge(nim: Callable[..., str]) -> None:
    with Prober() as probe:
        r = probe(nim_spec(nim(delay=0.1)), 5.0)
    assert r.ok and not r.over_sla and not r.degraded and r.request_latency_s is not None


class FakeTriton:
    def __init__(self, index: list[dict[str, str]] | Exception) -> None:
        self.index = index

    def get_model_repository_index(self) -> list[dict[str, str]]:
        if isinstance(self.index, Exception):
            raise self.index
        return self.index


def test_repository_drift_names_missing_unloaded_and_extra_models() -> None:
    index = [
        {"name": "a", "version": "1", "state": "READY"},
        {"name": "b", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"},
        {"name": "x", "version": "1", "state": "READY"},
        {"name": "y"},
    ]
    drift, problem = probing.repository_drift(FakeTriton(index), ("a", "b", "c"))
    assert problem is None and drift is not None
    assert (drift.missing, drift.not_ready, drift.extra) == (
        ("c",),
        (("b", "is UNAVAILABLE (unloaded)"),),
        ("x",),
    )
    assert drift.unloaded == ("b",) and drift.any
    clean, _ = probing.repository_drift(
        FakeTriton([{"name": "a", "state": "READY"}, {"name": "y"}]), ("a",)
    )
    assert (
        clean is not None and not clean.any
    )  # listed in the repository but never loaded: not drift
    none, problem = probing.repository_drift(FakeTriton(ConnectionError("x")), ("a",))
    assert none is None and problem == "POST /v2/repository/index: ConnectionError"
