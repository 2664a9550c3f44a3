"""The sweep's HTTP client: keep-alive connections per endpoint, shared by the probe threads.

Built on the standard library's `http.client`: a probe is a handful of small requests to
one endpoint, and what they cost is the client's own overhead per request (measured in
docs/benchmarks.md: about a third of httpx's on the same requests). Each request is sent
in one write (headers and body together), so no request waits on a delayed ACK.

Errors are named like the HTTP libraries name them (`ConnectError`, `ConnectTimeout`,
`ReadTimeout`, `RemoteProtocolError`), which is what probe details show.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_IDLE_PER_ENDPOINT = 2
Key = tuple[str, str, int]


class HTTPFailure(Exception):
    """A request that got no HTTP answer; `kind` names why."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


class SweepHTTP:
    """Thread-safe; `close()` closes the idle connections."""

    def __init__(self) -> None:
        self._idle: dict[Key, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def get(self, url: str, timeout: float) -> Response:
        return self.request("GET", url, None, timeout)

    def post_json(self, url: str, body: Any, timeout: float) -> Response:
        return self.request("POST", url, json.dumps(body).encode(), timeout)

    def request(self, method: str, url: str, body: bytes | None, timeout: float) -> Response:
        parts = urlsplit(url)
        key: Key = (
            parts.scheme,
            parts.hostname or "",
            parts.port or (443 if parts.scheme == "https" else 80),
        )
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Accept": "application/json", "Connection": "keep-alive"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn, reused = self._take(key, timeout)
        try:
            return self._send(conn, key, method, path, body, headers, timeout)
        except HTTPFailure as exc:
            if not reused or exc.kind != "RemoteProtocolError":
                raise
        # The server closed a kept-alive connection in between: once more, on a fresh one.
        conn, _ = self._take(key, timeout, fresh=True)
        return self._send(conn, key, method, path, body, headers, timeout)

    def _take(
        self, key: Key, timeout: float, fresh: bool = False
    ) -> tuple[http.client.HTTPConnection, bool]:
        if not fresh:
            with self._lock:
                idle = self._idle.get(key)
                if idle:
                    return idle.pop(), True
        scheme, host, port = key
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout), False
        return http.client.HTTPConnection(host, port, timeout=timeout), False

    def _send(
        self,
        conn: http.client.HTTPConnection,
        key: Key,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float,
    ) -> Response:
        timeout = max(timeout, 0.001)
        conn.timeout = timeout
        if conn.sock is None:
            try:
                conn.connect()
            except TimeoutError:
                conn.close()
                raise HTTPFailure("ConnectTimeout") from None
            except OSError as exc:
                conn.close()
                raise HTTPFailure("ConnectError", str(exc)) from None
            assert conn.sock is not None  # connect() opened it
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            conn.sock.settimeout(timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except TimeoutError:
            conn.close()
            raise HTTPFailure("ReadTimeout") from None
        except (http.client.HTTPException, OSError) as exc:
            conn.close()
            raise HTTPFailure("RemoteProtocolError", type(exc).__name__) from None
        if resp.will_close:
            conn.close()
        else:
            self._give_back(key, conn)
        return Response(resp.status, data)

    def _give_back(self, key: Key, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < MAX_IDLE_PER_ENDPOINT:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for c in conns:
            c.close()
