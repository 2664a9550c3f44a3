"""The front door server (fleetctl/frontdoor/server.py) against real HTTP replicas.

Each test starts the real server as a subprocess of this interpreter (as the container
runs it: `server.py --listen --port --routes`, here with port 0 and the bound port read
from its log) and real small aiohttp replicas on 127.0.0.1, in one event loop thread of
this process. httpx is the client. Waits poll with a deadline; nothing sleeps blindly.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

SERVER = Path(__file__).resolve().parents[2] / "fleetctl" / "frontdoor" / "server.py"
FAST_CHECK = {"interval_s": 0.2, "timeout_s": 0.5, "fall": 2, "rise": 1}


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


# ------------------------------------------------------------------ replicas
class Loop:
    """One asyncio loop in a thread, where every replica of the module lives."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def call(self, fn: Callable[[], Any]) -> None:
        async def go() -> None:
            fn()

        self.run(go())


class Replica:
    """A replica that says who it is, records what it got, and can be made unhealthy, slow
    (`hold`), mid-stream (`hold_streams`), rude (`drop`: closes before answering) or gone."""

    def __init__(self, loop: Loop, name: str) -> None:
        self.loop, self.name = loop, name
        self.healthy = True
        self.drop = False
        self.seen: list[dict[str, Any]] = []
        self.active = 0
        self.streams_held = 0
        self.health_waiting = 0
        self.checks = 0
        self.fail_checks = 0  # this many next checks fail, then health is `healthy` again
        loop.run(self._start())

    async def _start(self) -> None:
        self.gate, self.stream_gate, self.health_gate = (
            asyncio.Event(),
            asyncio.Event(),
            asyncio.Event(),
        )
        for gate in (self.gate, self.stream_gate, self.health_gate):
            gate.set()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/health/ready", self._health)
        app.router.add_get("/v2/health/ready", self._health)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}"

    async def _health(self, _request: web.Request) -> web.Response:
        self.health_waiting += 1
        try:
            await self.health_gate.wait()
        finally:
            self.health_waiting -= 1
        self.checks += 1
        if self.fail_checks > 0:
            self.fail_checks -= 1
            return web.Response(status=503)
        return web.Response(status=200 if self.healthy else 503)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.drop:
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        doc = json.loads(body) if body and request.path.startswith("/v1/") else {}
        self.seen.append(
            {
                "path": request.raw_path,
                "cookie": request.headers.get("Cookie"),
                "model": doc.get("model"),
                "len": len(body),
                "sha": hashlib.sha256(body).hexdigest(),
                "auth": request.headers.get("Authorization"),
                "customer": request.headers.get("X-Customer"),
                "connection": request.headers.get("Connection"),
                "x_hop": request.headers.get("X-Hop"),
            }
        )
        self.active += 1
        try:
            await self.gate.wait()
            if doc.get("stream"):
                return await self._stream(request)
            return web.json_response(
                {"replica": self.name, "model": doc.get("model"), "len": len(body)},
                headers={"Keep-Alive": "timeout=5", "Set-Cookie": f"sid={self.name}"},
            )
        finally:
            self.active -= 1

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"n": 0, "replica": "%s"}\n\n' % self.name.encode())
        self.streams_held += 1
        try:
            await self.stream_gate.wait()
        finally:
            self.streams_held -= 1
        await response.write(b'data: {"n": 1}\n\n')
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def hold(self) -> None:
        self.loop.call(self.gate.clear)

    def release(self) -> None:
        self.loop.call(self.gate.set)

    def hold_streams(self) -> None:
        self.loop.call(self.stream_gate.clear)

    def release_streams(self) -> None:
        self.loop.call(self.stream_gate.set)

    def hold_health(self) -> None:
        self.loop.call(self.health_gate.clear)

    def stop(self) -> None:
        """Close the listener and every connection: from now on, connection refused."""
        self.loop.run(self.runner.cleanup())

    def hits(self) -> int:
        return len(self.seen)


@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    lp = Loop()
    yield lp
    lp.loop.call_soon_threadsafe(lp.loop.stop)
    lp.thread.join(5)


@pytest.fixture
def replicas(loop: Loop) -> Iterator[Callable[[str], Replica]]:
    made: list[Replica] = []

    def make(name: str) -> Replica:
        made.append(Replica(loop, name))
        return made[-1]

    yield make
    for r in made:
        r.release()
        r.release_streams()
        r.loop.call(r.health_gate.set)
        loop.run(r.runner.cleanup())


# ------------------------------------------------------------------ routes
def version(
    deployment: str,
    replicas: list[Replica],
    *,
    served_name: str | None = None,
    health_path: str = "/v1/health/ready",
) -> dict[str, Any]:
    return {
        "deployment": deployment,
        "health_path": health_path,
        "served_name": served_name,
        "backends": [
            {"url": r.url, "replica": f"{deployment}#{i}"} for i, r in enumerate(replicas)
        ],
    }


def model(
    name: str,
    versions: dict[str, dict[str, Any]],
    *,
    current: str | None = None,
    protocol: str = "openai",
    customers: dict[str, str] | None = None,
    names: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "protocol": protocol,
        "names": names or [name],
        "current": current or next(iter(versions)),
        "customers": customers or {},
        "versions": versions,
    }


def routes(
    *models: dict[str, Any], check: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "format": 1,
        "fleet": "t",
        "customer_header": "X-Customer",
        "api_keys": {},
        "check": check or FAST_CHECK,
        "models": list(models),
        **extra,
    }


# ------------------------------------------------------------------ the server
class Door:
    """The real server in a subprocess, its log kept line by line."""

    def __init__(self, directory: Path, doc: dict[str, Any]) -> None:
        self.dir = directory
        self.routes_path = directory / "routes.json"
        self.raw = self.write(doc)
        self.log: list[str] = []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(SERVER),
                "--listen",
                "127.0.0.1",
                "--port",
                "0",
                "--routes",
                str(self.routes_path),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read_log, daemon=True).start()
        line = wait_until(
            lambda: next((x for x in self.log if "listening on" in x), None),
            15,
            "the server to listen",
        )
        self.url = line.split("listening on ")[1].split()[0]
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line.rstrip("\n"))

    def write(self, doc: dict[str, Any] | bytes) -> bytes:
        raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        tmp = self.routes_path.with_suffix(".tmp")
        tmp.write_bytes(raw)
        os.replace(tmp, self.routes_path)
        return raw

    def loaded(self) -> str | None:
        path = self.dir / "loaded"
        return path.read_text() if path.exists() else None

    def reload(self, doc: dict[str, Any]) -> None:
        """Ship new routes and SIGHUP, as fleetctl does; return once they are loaded."""
        self.raw = self.write(doc)
        want = hashlib.sha256(self.raw).hexdigest()[:16]
        self.proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: self.loaded() == want and self.status()["routes_hash"] == want,
            5,
            "the new routes",
        )

    def status(self) -> dict[str, Any]:
        return self.http.get("/-/fleetctl/status").json()

    def backend(self, url: str) -> dict[str, Any] | None:
        return next((b for b in self.status()["backends"] if b["url"] == url), None)

    def wait_checked(self) -> None:
        wait_until(
            lambda: all(b["checked"] for b in self.status()["backends"]), 5, "every backend checked"
        )

    def chat(self, name: str, **kw: Any) -> httpx.Response:
        return self.http.post("/v1/chat/completions", json={"model": name, "messages": []}, **kw)

    def close(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def door(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], Door]]:
    made: list[Door] = []

    def start(doc: dict[str, Any]) -> Door:
        made.append(Door(tmp_path, doc))
        return made[-1]

    yield start
    for d in made:
        d.close()


class Steady:
    """A client sending one request after another until stopped, counting failures."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self.ok: list[str] = []
        self.failed: list[str] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while not self.done.is_set():
                try:
                    r = http.post("/v1/chat/completions", json={"model": self.name, "messages": []})
                    (self.ok if r.status_code == 200 else self.failed).append(
                        r.json().get("replica")
                        if r.status_code == 200
                        else f"{r.status_code} {r.text}"
                    )
                except httpx.HTTPError as exc:
                    self.failed.append(repr(exc))

    def stop(self) -> None:
        self.done.set()
        self.thread.join(10)


# ------------------------------------------------------------------ routing
def test_routes_by_the_body_model_and_names_the_deployment(replicas, door) -> None:
    a, b = replicas("a"), replicas("b")
    d = door(
        routes(
            model("chat", {"1": version("chat@1", [a])}),
            model("embed", {"7": version("embed@7", [b])}),
        )
    )
    d.wait_checked()
    r = d.chat("chat")
    assert r.status_code == 200 and r.json()["replica"] == "a"
    assert r.headers["x-fleetctl-deployment"] == "chat@1"
    r = d.http.post("/v1/embeddings", json={"model": "embed", "input": ["x"]})
    assert r.json()["replica"] == "b" and r.headers["x-fleetctl-deployment"] == "embed@7"
    r = d.http.post("/v1/completions?trace=1", json={"model": "chat", "prompt": "x"})
    assert r.json()["replica"] == "a" and a.seen[-1]["path"] == "/v1/completions?trace=1"


def test_headers_end_to_end_only_and_no_shared_cookies(replicas, door) -> None:
    a = replicas("a")
    d = door(routes(model("chat", {"1": version("chat@1", [a])})))
    d.wait_checked()
    r = d.chat("chat", headers={"Connection": "keep-alive, X-Hop", "X-Hop": "1", "X-Customer": "c"})
    assert r.status_code == 200
    assert a.seen[-1]["x_hop"] is None and a.seen[-1]["customer"] == "c"
    assert "keep-alive" not in r.headers  # the replica's Keep-Alive is its own connection's
    assert r.headers["set-cookie"] == "sid=a"  # end to end: the client gets it...
    r = httpx.post(d.url + "/v1/chat/completions", json={"model": "chat"})
    assert r.status_code == 200 and a.seen[-1]["cookie"] is None  # ...and no other client does


def test_customer_header_pins_a_version(replicas, door) -> None:
    old, new = replicas("old"), replicas("new")
    doc = routes(
        model(
            "chat",
            {"2": version("chat@2", [new]), "1": version("chat@1", [old])},
            current="2",
            customers={"acme": "1"},
        ),
        customer_header="X-Tenant",
    )
    d = door(doc)
    d.wait_checked()
    assert d.chat("chat", headers={"X-Tenant": "acme"}).json()["replica"] == "old"
    assert d.chat("chat", headers={"X-Tenant": "acme"}).headers["x-fleetctl-deployment"] == "chat@1"
    assert d.chat("chat", headers={"X-Tenant": "globex"}).json()["replica"] == "new"
    assert (
        d.chat("chat", headers={"X-Customer": "acme"}).json()["replica"] == "new"
    )  # not this fleet's header
    assert d.chat("chat").json()["replica"] == "new"


def test_a_model_deployed_only_as_a_pin(replicas, door) -> None:
    old = replicas("old")
    pinned = model("chat", {"1": version("chat@1", [old])}, customers={"acme": "1"})
    pinned["current"] = None
    d = door(routes(pinned))
    d.wait_checked()
    assert d.chat("chat", headers={"X-Customer": "acme"}).json()["replica"] == "old"
    r = d.chat("chat")
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_ready_replica"
    assert d.http.get("/v1/models").json()["data"] == []
    assert [
        m["id"] for m in d.http.get("/v1/models", headers={"X-Customer": "acme"}).json()["data"]
    ] == ["chat"]


def test_api_key_pins_a_version_and_stays_at_the_door(replicas, door) -> None:
    old, new = replicas("old"), replicas("new")
    digest = hashlib.sha256(b"sk-acme-123").hexdigest()
    d = door(
        routes(
            model(
                "chat",
                {"2": version("chat@2", [new]), "1": version("chat@1", [old])},
                current="2",
                customers={"acme": "1"},
            ),
            api_keys={digest: "acme"},
        )
    )
    d.wait_checked()
    r = d.chat("chat", headers={"Authorization": "Bearer sk-acme-123"})
    assert r.json()["replica"] == "old" and r.headers["x-fleetctl-deployment"] == "chat@1"
    assert old.seen[-1]["auth"] is None
    r = d.chat("chat", headers={"Authorization": "Bearer sk-someone-else"})
    assert r.json()["replica"] == "new" and new.seen[-1]["auth"] == "Bearer sk-someone-else"


def test_v1_models_lists_what_the_caller_may_use(replicas, door) -> None:
    a, b, t = replicas("a"), replicas("b"), replicas("t")
    digest = hashlib.sha256(b"k").hexdigest()
    d = door(
        routes(
            model(
                "chat",
                {"2": version("chat@2", [b]), "1": version("chat@1", [a])},
                current="2",
                customers={"acme": "1"},
                names=["chat", "meta/llama-3.1-8b-instruct"],
            ),
            model(
                "embeddings",
                {"1": version("embeddings@1", [t], health_path="/v2/health/ready")},
                protocol="kserve",
            ),
            api_keys={digest: "acme"},
        )
    )
    listing = d.http.get("/v1/models").json()
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == ["chat", "meta/llama-3.1-8b-instruct"]
    for m in listing["data"]:
        assert (
            m["object"] == "model" and m["owned_by"] == "fleetctl" and isinstance(m["created"], int)
        )
        assert m["fleetctl"] == {"deployment": "chat@2"}
    pinned = d.http.get("/v1/models", headers={"Authorization": "Bearer k"}).json()
    assert {m["fleetctl"]["deployment"] for m in pinned["data"]} == {"chat@1"}


def test_kserve_requests_route_by_path(replicas, door) -> None:
    a, t = replicas("a"), replicas("triton")
    kserve = model(
        "embeddings",
        {"1": version("embeddings@1", [t], health_path="/v2/health/ready")},
        protocol="kserve",
        names=["embeddings", "embeddings_onnx"],
    )
    d = door(routes(model("chat", {"1": version("chat@1", [a])}), kserve))
    d.wait_checked()
    r = d.http.post("/v2/models/embeddings/infer", content=b'{"inputs": []}')
    assert r.status_code == 200 and r.json()["replica"] == "triton"
    assert r.headers["x-fleetctl-deployment"] == "embeddings@1"
    d.http.post("/v2/models/embeddings_onnx/versions/3/infer?tag=a%2Fb%20c", content=b"{}")
    d.http.get("/v2/models/embeddings/ready")
    d.http.get("/v2/models/embeddings")
    assert [s["path"] for s in t.seen] == [
        "/v2/models/embeddings/infer",
        "/v2/models/embeddings_onnx/versions/3/infer?tag=a%2Fb%20c",
        "/v2/models/embeddings/ready",
        "/v2/models/embeddings",
    ]
    r = d.http.post("/v2/models/chat/infer", content=b"{}")  # an OpenAI name is no KServe model
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert d.http.get("/v2/health/live").status_code == 200
    assert d.http.get("/v2/health/ready").status_code == 200
    t.healthy = False
    wait_until(lambda: d.http.get("/v2/health/ready").status_code == 503, 3, "ready to turn 503")


def test_unknown_model_is_404_and_bad_bodies_400(replicas, door) -> None:
    a = replicas("a")
    d = door(routes(model("chat", {"1": version("chat@1", [a])})))
    r = d.chat("nope")
    assert r.status_code == 404
    assert (
        r.json()["error"]["code"] == "model_not_found"
        and r.json()["error"]["type"] == "invalid_request_error"
    )
    for body in (b"{not json", b'{"messages": []}', b'{"model": 3}', b"[1, 2]", b""):
        r = d.http.post("/v1/chat/completions", content=body)
        assert r.status_code == 400, body
        assert r.json()["error"]["code"] in ("invalid_json", "missing_model")
    assert a.hits() == 0


def test_no_ready_replica_is_503_with_retry_after(replicas, door) -> None:
    a = replicas("a")
    a.healthy = False
    d = door(routes(model("chat", {"1": version("chat@1", [a])})))
    d.wait_checked()
    r = d.chat("chat")
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json()["error"]["code"] == "no_ready_replica"
    assert a.hits() == 0


# ------------------------------------------------------------------ balancing and health
def test_least_outstanding_with_round_robin_ties(replicas, door) -> None:
    a, b = replicas("a"), replicas("b")
    d = door(routes(model("chat", {"1": version("chat@1", [a, b])})))
    d.wait_checked()
    a.hold()
    b.hold()
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(d.chat, "chat")
        busy = wait_until(
            lambda: next((r for r in (a, b) if r.active == 1), None), 5, "the first request"
        )
        idle = b if busy is a else a
        idle.release()
        assert [d.chat("chat").json()["replica"] for _ in range(8)] == [idle.name] * 8
        assert {x["url"]: x["outstanding"] for x in d.status()["backends"]} == {
            busy.url: 1,
            idle.url: 0,
        }
        busy.release()
        assert slow.result(5).json()["replica"] == busy.name
    wait_until(
        lambda: all(x["outstanding"] == 0 for x in d.status()["backends"]), 5, "nothing in flight"
    )
    served = [d.chat("chat").json()["replica"] for _ in range(10)]
    assert sorted(served) == ["a"] * 5 + ["b"] * 5
    assert all(x != y for x, y in zip(served, served[1:]))


def test_active_check_takes_an_unhealthy_replica_out_and_back(replicas, door) -> None:
    a, b = replicas("a"), replicas("b")
    d = door(routes(model("chat", {"1": version("chat@1", [a, b])})))
    d.wait_checked()
    steady = Steady(d.url, "chat")
    try:
        wait_until(lambda: {"a", "b"} <= set(steady.ok), 5, "traffic on both replicas")
        a.healthy = False
        t0 = time.monotonic()
        wait_until(lambda: d.backend(a.url)["ready"] is False, 3, "the active check to take a out")
        assert time.monotonic() - t0 < 3
        hits = a.hits()
        seen = len(steady.ok)
        wait_until(lambda: len(steady.ok) >= seen + 30, 5, "30 more requests")
        assert a.hits() == hits  # nothing more reached a
        a.healthy = True
        wait_until(lambda: a.hits() > hits, 3, "a back in rotation")
    finally:
        steady.stop()
    assert steady.failed == []


def test_fall_and_rise_count_checks_in_a_row(replicas, door) -> None:
    a = replicas("a")
    d = door(
        routes(
            model("chat", {"1": version("chat@1", [a])}),
            check={"interval_s": 0.4, "timeout_s": 0.5, "fall": 2, "rise": 2},
        )
    )
    d.wait_checked()
    assert d.backend(a.url)["ready"] is True  # a first check decides at once
    a.fail_checks = 1
    start = a.checks
    while a.checks < start + 3:  # one failure, then successes: never out of rotation
        assert d.backend(a.url)["ready"] is True
        assert d.chat("chat").status_code == 200
    a.healthy = False
    wait_until(lambda: d.backend(a.url)["ready"] is False, 3, "two failures to take a out")
    a.healthy = True
    start = a.checks
    wait_until(lambda: a.checks > start, 3, "one successful check")
    assert d.backend(a.url)["ready"] is False  # rise 2: one success is not enough
    wait_until(lambda: d.backend(a.url)["ready"], 3, "a back after two successes")
    assert a.checks >= start + 2


def test_refused_or_dropped_connection_is_retried_on_another_replica(replicas, door) -> None:
    a, b, c = replicas("a"), replicas("b"), replicas("c")
    slow = {
        "interval_s": 60,
        "timeout_s": 1,
        "fall": 2,
        "rise": 1,
    }  # one check at load, then none here
    d = door(
        routes(
            model("chat", {"1": version("chat@1", [a, b])}),
            model("other", {"1": version("o@1", [c])}),
            check=slow,
        )
    )
    d.wait_checked()
    a.stop()
    assert [d.chat("chat").status_code for _ in range(6)] == [200] * 6
    assert b.hits() == 6
    assert d.backend(a.url)["ready"] is False  # marked down by the refusal, not by a check
    c.drop = True
    r = d.chat("other")  # closed before any byte, and no other replica to retry on
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_ready_replica"
    assert d.backend(c.url)["ready"] is False


def test_never_checked_replica_only_when_nothing_checked_is_ready(replicas, door) -> None:
    a, b = replicas("a"), replicas("b")
    d = door(
        routes(model("chat", {"1": version("chat@1", [a])}), check={**FAST_CHECK, "interval_s": 60})
    )
    d.wait_checked()
    b.hold_health()  # b's first check hangs: b stays never-checked
    d.reload(
        routes(
            model("chat", {"1": version("chat@1", [a, b])}),
            check={**FAST_CHECK, "interval_s": 60, "timeout_s": 30},
        )
    )
    wait_until(lambda: b.health_waiting == 1, 5, "b's first check")
    assert d.backend(b.url)["checked"] is False
    assert {d.chat("chat").json()["replica"] for _ in range(6)} == {"a"}
    a.stop()
    assert d.chat("chat").json()["replica"] == "b"  # a refused; b, never checked, is all there is


# ------------------------------------------------------------------ bodies and streams
def test_streams_pass_through_before_the_replica_finishes(replicas, door) -> None:
    a = replicas("a")
    d = door(routes(model("chat", {"1": version("chat@1", [a])})))
    d.wait_checked()
    a.hold_streams()
    with d.http.stream("POST", "/v1/chat/completions", json={"model": "chat", "stream": True}) as r:
        assert r.headers["x-fleetctl-deployment"] == "chat@1"
        assert r.headers["content-type"].startswith("text/event-stream")
        chunks = r.iter_bytes()
        first = next(chunks)
        assert (
            first.startswith(b'data: {"n": 0') and a.streams_held == 1
        )  # the replica still holds the stream
        a.release_streams()
        rest = b"".join(chunks)
    assert b'data: {"n": 1}' in rest and rest.endswith(b"data: [DONE]\n\n")


def test_a_big_body_with_model_last_routes_correctly(replicas, door) -> None:
    a, b = replicas("a"), replicas("b")
    d = door(
        routes(
            model("chat", {"1": version("chat@1", [a])}), model("big", {"1": version("big@1", [b])})
        )
    )
    d.wait_checked()
    content = "x" * (8 * 1024 * 1024)
    body = ('{"messages": [{"role": "user", "content": "%s"}], "model": "big"}' % content).encode()
    r = d.http.post(
        "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 200 and r.json()["replica"] == "b"
    assert b.seen[-1]["sha"] == hashlib.sha256(body).hexdigest()  # forwarded byte for byte
    assert a.hits() == 0


def test_served_name_rewrites_the_body_model(replicas, door) -> None:
    a = replicas("a")
    served = "meta/llama-3.1-8b-instruct"
    d = door(
        routes(
            model("chat", {"1": version("chat@1", [a], served_name=served)}, names=["chat", served])
        )
    )
    d.wait_checked()
    r = d.http.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "é"}]},
    )
    assert r.json()["model"] == served
    body = json.dumps({"model": served, "messages": []}).encode()
    d.http.post("/v1/chat/completions", content=body)
    assert (
        a.seen[-1]["sha"] == hashlib.sha256(body).hexdigest()
    )  # already the served name: untouched


# ------------------------------------------------------------------ reloads and signals
def test_loaded_file_names_the_routes_in_use(replicas, door) -> None:
    a = replicas("a")
    d = door(routes(model("chat", {"1": version("chat@1", [a])})))
    want = hashlib.sha256(d.raw).hexdigest()[:16]
    wait_until(lambda: d.loaded() == want, 5, "the loaded file")
    status = d.status()
    assert status["routes_hash"] == want and status["format"] == 1 and status["loaded_at"] > 0
    assert not list(d.dir.glob(".loaded*"))  # the temporary file was renamed into place


def test_sighup_under_load_drains_the_old_replica(replicas, door) -> None:
    old, new = replicas("old"), replicas("new")
    v1 = routes(model("chat", {"1": version("chat@1", [old])}))
    v2 = routes(model("chat", {"2": version("chat@2", [new])}))
    d = door(v1)
    d.wait_checked()
    old.hold_streams()
    got: list[bytes] = []
    headers: dict[str, str] = {}

    def stream() -> None:
        with httpx.stream(
            "POST",
            d.url + "/v1/chat/completions",
            json={"model": "chat", "stream": True},
            timeout=10,
        ) as r:
            headers.update(r.headers)
            got.extend(r.iter_bytes())

    streamer = threading.Thread(target=stream)
    streamer.start()
    wait_until(lambda: old.streams_held == 1, 5, "a stream in flight on the old replica")
    steady = Steady(d.url, "chat")
    try:
        wait_until(lambda: len(steady.ok) >= 10, 5, "steady traffic")
        d.reload(v2)
        gone = d.backend(old.url)
        assert gone is not None and gone["in_routes"] is False and gone["outstanding"] == 1
        for doc in (v1, v2, v1, v2):  # more reloads under load, each one taking effect
            d.reload(doc)
        wait_until(lambda: steady.ok[-5:] == ["new"] * 5, 5, "new requests on the new replica")
        assert old.streams_held == 1
        old.release_streams()
        streamer.join(5)
        wait_until(lambda: d.backend(old.url) is None, 5, "the drained replica to leave the status")
    finally:
        steady.stop()
    assert steady.failed == [] and len(steady.ok) > 20
    assert headers["x-fleetctl-deployment"] == "chat@1"
    assert b"".join(got).endswith(b'data: {"n": 1}\n\ndata: [DONE]\n\n')


def test_a_bad_routes_file_keeps_the_old_routes(replicas, door) -> None:
    a = replicas("a")
    d = door(routes(model("chat", {"1": version("chat@1", [a])})))
    d.wait_checked()
    before = d.loaded()
    assert before
    broken = routes(model("chat", {"1": version("chat@1", [a])}, current="9"))
    for n, raw in enumerate(
        (b'{"format": 1, "models": [', json.dumps(broken).encode(), b'{"format": 2}'), 1
    ):
        d.write(raw)
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda n=n: sum("not loaded" in x for x in d.log) == n, 5, "the error line")
        assert d.loaded() == before and d.status()["routes_hash"] == before
        assert d.chat("chat").json()["replica"] == "a"


def test_sigterm_lets_requests_in_flight_finish(replicas, door) -> None:
    a = replicas("a")
    d = door(routes(model("chat", {"1": version("chat@1", [a])})))
    d.wait_checked()
    a.hold()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(d.chat, "chat")
        wait_until(lambda: a.active == 1, 5, "a request in flight")
        d.proc.send_signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                httpx.get(d.url + "/v2/health/live", timeout=1)
            except httpx.ConnectError:
                return True
            return False

        wait_until(refused, 5, "the listener to close")
        a.release()
        assert pending.result(5).json()["replica"] == "a"
    assert d.proc.wait(5) == 0
