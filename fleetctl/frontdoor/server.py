"""The fleetctl front door: one URL in front of every replica of a fleet (docs/front-door.md).

It runs inside its own container, copied there alone, so it imports only the standard
library and aiohttp. fleetctl writes the routes file and sends SIGHUP; the server answers
by loading it and writing the hash of what it loaded next to it, in a file named `loaded`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

if __package__:
    from .routing import Backend, Key, Routes, Version, parse_routes
else:  # run as a script, as in the container: this folder is first on sys.path
    from routing import Backend, Key, Routes, Version, parse_routes  # type: ignore[no-redef,import-not-found]

LOG = logging.getLogger("front-door")
MAX_BODY = 64 * 1024 * 1024
OPENAI_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
DEPLOYMENT_HEADER = "x-fleetctl-deployment"
# Hop-by-hop headers describe one connection, not the message: never forwarded. Host and
# Content-Length are set again by the upstream client; Expect is answered by this server.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "expect"}
NOT_FORWARDED_WITH_KEY = NOT_FORWARDED | {"authorization"}  # the key was this door's credential
HOP_BY_HOP_AND_LENGTH = HOP_BY_HOP | {"content-length"}


def write_atomically(path: Path, text: str) -> None:
    """Readers (fleetctl, through the Docker API) must never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def error(
    status: int,
    message: str,
    code: str,
    kind: str = "invalid_request_error",
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An OpenAI-style error, the shape OpenAI clients know how to show."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def no_ready_replica(message: str) -> web.Response:
    """Known model, nothing to serve it now: a client may retry in a second."""
    return error(
        503, message, "no_ready_replica", kind="service_unavailable", headers={"Retry-After": "1"}
    )


async def read_body(request: web.Request) -> bytes | web.Response:
    """The whole body (up to MAX_BODY: the retry resends it), or the error to answer."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return error(413, f"the request body is larger than {MAX_BODY} bytes", "body_too_large")


def end_to_end(headers: Any, drop: frozenset[str]) -> list[tuple[str, str]]:
    """The headers that may pass a proxy: not `drop`, nor any that Connection names."""
    if "Connection" in headers:
        drop = drop | {t.strip().lower() for t in headers["Connection"].split(",")}
    return [(k, v) for k, v in headers.items() if k.lower() not in drop]


class FrontDoor:
    """Routes, backends and the upstream client of one front door process."""

    def __init__(self, routes_path: Path) -> None:
        self.routes_path = routes_path
        self.routes = Routes()
        self.backends: dict[Key, Backend] = {}  # in routes, or draining
        self.checks: dict[
            Key, asyncio.Task[None]
        ] = {}  # one health check loop per backend in routes
        self.session: aiohttp.ClientSession | None = None

    # ---------------------------------------------------------------- lifecycle
    async def start(self, _app: web.Application | None = None) -> None:
        # One pooled session for every replica: keep-alive saves a connect per request.
        # No total timeout (a stream may last minutes), but a dead host fails fast.
        # auto_decompress off and no default headers: bytes and headers pass as sent. No
        # cookie jar: a cookie one client got must never ride on another client's request.
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=None, connect=2.0, sock_connect=2.0),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self.reload()

    async def stop(self, _app: web.Application | None = None) -> None:
        for task in self.checks.values():
            task.cancel()
        if self.session:
            await self.session.close()

    def reload(self) -> bool:
        """Load the routes file; on any problem keep the routes in use and say so once."""
        try:
            raw = self.routes_path.read_bytes()
            routes = parse_routes(raw, self.backends.get)
        except (OSError, ValueError) as exc:
            LOG.error(
                "routes: %s not loaded, keeping routes %s: %s",
                self.routes_path,
                self.routes.hash,
                exc,
            )
            return False
        self._install(routes)
        try:
            write_atomically(self.routes_path.with_name("loaded"), routes.hash or "")
        except OSError as exc:
            LOG.error("routes: cannot write %s: %s", self.routes_path.with_name("loaded"), exc)
        LOG.info(
            "routes: loaded %s (%d models, %d backends)",
            routes.hash,
            len(routes.models),
            len(routes.backends()),
        )
        return True

    def _install(self, routes: Routes) -> None:
        """Swap routes in one step. Backends that left keep their count of requests in flight
        and stay listed until it reaches zero; new ones are checked at once."""
        fresh = routes.backends()
        for key, b in list(self.backends.items()):
            if key not in fresh:
                b.in_routes = False
                task = self.checks.pop(key, None)
                if task:
                    task.cancel()
                self._forget_if_drained(b)
        for key, b in fresh.items():
            b.in_routes = True
            self.backends[key] = b
            if key not in self.checks:
                self.checks[key] = asyncio.get_running_loop().create_task(self._check_loop(b))
        self.routes = routes

    def _forget_if_drained(self, b: Backend) -> None:
        if not b.in_routes and b.outstanding == 0 and self.backends.get(b.key) is b:
            del self.backends[b.key]

    # ------------------------------------------------------------- health checks
    async def _check_loop(self, b: Backend) -> None:
        while b.in_routes:
            check = self.routes.check
            ok = await self._probe(b, check.timeout_s)
            if b.in_routes and b.record(ok, check):
                LOG.info(
                    "backend %s (%s) is %s", b.replica, b.url, "ready" if b.ready else "not ready"
                )
            await asyncio.sleep(check.interval_s)

    async def _probe(self, b: Backend, timeout_s: float) -> bool:
        assert self.session is not None
        try:
            async with self.session.get(
                b.url + b.health_path, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as r:
                await r.read()
                return r.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False

    # ------------------------------------------------------------------ handlers
    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        for path in OPENAI_PATHS:
            app.router.add_post(path, self.openai)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_get("/v2/health/live", self.live)
        app.router.add_get("/v2/health/ready", self.ready)
        app.router.add_route("*", "/v2/models/{name}", self.kserve)
        app.router.add_route("*", "/v2/models/{name}/{tail:.*}", self.kserve)
        app.router.add_get("/-/fleetctl/status", self.status)
        app.router.add_route("*", "/{tail:.*}", self.not_found)
        app.on_startup.append(self.start)
        app.on_cleanup.append(self.stop)
        return app

    async def openai(self, request: web.Request) -> web.StreamResponse:
        """Route by the body's `model`; the body is read whole first, wherever the key is."""
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
        try:
            doc = json.loads(body)
        except ValueError:
            return error(400, "the request body is not valid JSON", "invalid_json")
        name = doc.get("model") if isinstance(doc, dict) else None
        if not isinstance(name, str) or not name:
            return error(400, 'the request body has no "model"', "missing_model", param="model")
        routes = self.routes
        model = routes.openai.get(name)
        if model is None:
            return error(
                404, f"the model {name!r} does not exist", "model_not_found", param="model"
            )
        customer, by_key = self.customer(request, routes)
        version = model.version_for(customer)
        if version and version.served_name and version.served_name != name:
            doc["model"] = version.served_name
            body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        return await self.forward(request, version, body, by_key)

    async def kserve(self, request: web.Request) -> web.StreamResponse:
        """Route /v2/models/{name}/... by the path's name; the path goes on unchanged."""
        routes = self.routes
        name = request.match_info["name"]
        model = routes.kserve.get(name)
        if model is None:
            return error(404, f"the model {name!r} does not exist", "model_not_found")
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
        customer, by_key = self.customer(request, routes)
        return await self.forward(request, model.version_for(customer), body, by_key)

    async def list_models(self, request: web.Request) -> web.Response:
        """Every name an OpenAI client may send, with the deployment this caller would get."""
        routes = self.routes
        customer, _ = self.customer(request, routes)
        created = int(routes.loaded_at or 0)
        mine = {name: model.version_for(customer) for name, model in routes.openai.items()}
        data = [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "fleetctl",
                "fleetctl": {"deployment": version.deployment},
            }
            for name, version in mine.items()
            if version
        ]
        return web.json_response({"object": "list", "data": data})

    async def live(self, _request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def ready(self, _request: web.Request) -> web.Response:
        """Ready once routes are loaded and every KServe model has a ready replica."""
        routes = self.routes
        ok = routes.hash is not None and all(
            any(b.ready for v in m.versions.values() for b in v.backends)
            for m in routes.kserve.values()
        )
        return web.Response(status=200 if ok else 503)

    async def status(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "format": 1,
                "routes_hash": self.routes.hash,
                "loaded_at": self.routes.loaded_at,
                "backends": [b.status() for b in self.backends.values()],
            }
        )

    async def not_found(self, request: web.Request) -> web.Response:
        return error(404, f"no route for {request.method} {request.path}", "not_found")

    @staticmethod
    def customer(request: web.Request, routes: Routes) -> tuple[str | None, bool]:
        """The caller's customer and whether an API key said so. A known key wins over the
        header: it is the stronger claim."""
        auth = request.headers.get("Authorization")
        if auth and routes.api_keys and auth[:7].lower() == "bearer ":
            who = routes.api_keys.get(hashlib.sha256(auth[7:].strip().encode()).hexdigest())
            if who:
                return who, True
        return request.headers.get(routes.customer_header) or None, False

    # --------------------------------------------------------------------- proxy
    async def forward(
        self, request: web.Request, version: Version | None, body: bytes, drop_auth: bool
    ) -> web.StreamResponse:
        """Send the request to a backend of `version`. A connection refused or closed before
        any response byte marks that backend down and is retried once on another: the body
        is in memory, so the retry sends the same bytes."""
        assert self.session is not None
        if version is None:  # the model is deployed, but only as other customers' pins
            return no_ready_replica("this model has no version for this caller")
        headers = end_to_end(
            request.headers, NOT_FORWARDED_WITH_KEY if drop_auth else NOT_FORWARDED
        )
        tried: tuple[Backend, ...] = ()
        while len(tried) < 2:
            backend = version.pick(tried)
            if backend is None:
                break
            tried += (backend,)
            backend.outstanding += 1
            try:
                try:
                    # The path and query as the client encoded them, not parsed and re-encoded.
                    url = URL(backend.url + request.raw_path, encoded=True)
                    upstream = await self.session.request(
                        request.method,
                        url,
                        headers=headers,
                        data=body or None,
                        allow_redirects=False,
                    )
                except aiohttp.ClientConnectionError as exc:
                    backend.mark_down()
                    LOG.warning(
                        "backend %s (%s) is not ready: %s",
                        backend.replica,
                        backend.url,
                        exc or type(exc).__name__,
                    )
                    continue
                async with upstream:
                    return await self.relay(request, upstream, version.deployment)
            finally:
                backend.outstanding -= 1
                self._forget_if_drained(backend)
        return no_ready_replica(f"{version.deployment} has no ready replica")

    @staticmethod
    async def relay(
        request: web.Request, upstream: aiohttp.ClientResponse, deployment: str
    ) -> web.StreamResponse:
        """Pass the response on as it arrives, chunk by chunk: server-sent events reach the
        client when the replica writes them, and nothing is held in memory."""
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(end_to_end(upstream.headers, HOP_BY_HOP_AND_LENGTH))
        response.headers[DEPLOYMENT_HEADER] = deployment
        if upstream.content_length is not None and "Transfer-Encoding" not in upstream.headers:
            response.content_length = (
                upstream.content_length
            )  # not chunked when the replica was not
        try:
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
        except (ConnectionResetError, aiohttp.ClientError) as exc:
            # One side went away mid-response. If it was the replica, ending the client's
            # connection too keeps a truncated body from passing for a whole one; if it
            # was the client, closing the upstream connection stops the replica's work.
            if not isinstance(exc, ConnectionResetError):
                LOG.warning(
                    "%s broke off a response: %s", upstream.url.origin(), exc or type(exc).__name__
                )
            upstream.close()
            if request.transport is not None:
                request.transport.abort()
        return response


async def serve(args: argparse.Namespace) -> None:
    """Run until SIGTERM, then stop accepting and give requests in flight `--drain-s`."""
    door = FrontDoor(Path(args.routes))
    runner = web.AppRunner(
        door.app(), handle_signals=False, access_log=None, shutdown_timeout=args.drain_s
    )
    await runner.setup()
    site = web.TCPSite(runner, args.listen, args.port, backlog=1024)
    await site.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, door.reload)
    LOG.info("listening on %s", " ".join(f"http://{a[0]}:{a[1]}" for a in runner.addresses))
    await stop.wait()
    LOG.info("stopping: draining requests in flight (up to %.0f s)", args.drain_s)
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="fleetctl front door (docs/front-door.md)")
    parser.add_argument("--listen", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    parser.add_argument(
        "--port", type=int, default=8000, help="port to bind; 0 picks a free one (default 8000)"
    )
    parser.add_argument(
        "--routes", default="/etc/fleetctl/front-door/routes.json", help="the routes file"
    )
    parser.add_argument(
        "--drain-s", type=float, default=10.0, help="grace for requests in flight on SIGTERM"
    )
    args = parser.parse_args(argv)
    # Our own events at INFO (a few lines per reload or state change), the library's at
    # WARNING: no line per request.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s front-door %(levelname)s %(message)s"
    )
    LOG.setLevel(logging.INFO)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
