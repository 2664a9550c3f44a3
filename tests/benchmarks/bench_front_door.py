#!/usr/bin/env python3
"""Benchmark: what does the front door cost a request, and how many can one front door pass?

Run it from the repository root (wrk comes from Debian: `apt-get install -y wrk`; the
script installs it itself when it runs as root and wrk is missing):

    .venv/bin/python tests/benchmarks/bench_front_door.py                # 5 runs of each
    .venv/bin/python tests/benchmarks/bench_front_door.py --runs 3 --json out.json

It is a script, not a pytest test, and all its traffic stays on 127.0.0.1. It starts two
processes of its own:

- the backend, a fast stand-in replica: a minimal aiohttp app (this file, run with
  `--serve-backend`) that answers `/v1/health/ready` and answers every
  `POST /v1/chat/completions` with the same 271-byte OpenAI-shaped completion, after
  reading the body. One process; it is not the bottleneck (see the direct rate below);
- the front door, `fleetctl/frontdoor/server.py` run by this interpreter, with a routes
  file that sends the model `bench` to that backend (no served-name rewrite) and the
  default health checks (every 1 s).

Then, interleaved run by run so that a change of machine load hits both alike:

(a) latency at a paced rate: an open-loop client (this process, aiohttp, keep-alive)
    sends, for `--seconds` (10), `--rate` (200) small chat requests a second through the
    front door and as many directly to the backend, the two streams interleaved (each
    request of one halfway between two of the other; which leads alternates from run to
    run), so that a stall of this shared, noisy machine hits both alike. Each latency is
    counted from the moment the request was due, not from when it was sent, so a stalled
    client or server cannot hide its queue. The figures are the medians over `--runs` of
    each run's p50 and p99, and "added" is the median of the per-run differences (front
    door minus direct, within the same run);
(b) rate: `wrk -t1 -c{--connections} -d{--wrk-seconds}s` with a Lua script that POSTs the
    same small body, against the backend directly and through the front door; the median
    of `--runs` runs each, with the CPU the front door process used during its runs and
    so the requests it passes per second of its own CPU time.

An untimed warm-up of each comes first. Goals (from the front door's issue): p99 added at
most 2 ms at 200 req/s; at least 2,000 small requests/s through one front door.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SERVER = REPO / "fleetctl" / "frontdoor" / "server.py"
MODEL = "bench"
BODY = json.dumps(
    {"model": MODEL, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8}
).encode()
ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1764580000,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
).encode()
GOAL_P99_ADDED_MS = 2.0
GOAL_RATE = 2000.0
WRK_LUA = """wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "application/json"
""" % BODY.decode()


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the backend
def serve_backend(port: int) -> None:
    """The fast stand-in replica (its own process)."""
    from aiohttp import web

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=ANSWER, content_type="application/json")

    async def ready(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/health/ready", ready)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, backlog=1024)


# ------------------------------------------------------------------ processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 15.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"[bench] error: {url} did not answer 200 within {timeout} s")


def start_backend(procs: list[subprocess.Popen[bytes]]) -> str:
    """Start the fast replica; it joins `procs` at once, so that it is stopped whatever happens."""
    port = free_port()
    procs.append(subprocess.Popen([sys.executable, __file__, "--serve-backend", str(port)]))
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/v1/health/ready")
    return url


def start_front_door(
    procs: list[subprocess.Popen[bytes]], workdir: Path, backend: str, server: Path
) -> str:
    """Start the front door in front of `backend` and wait until it has checked it ready."""
    import httpx

    routes = {
        "format": 1,
        "fleet": "bench",
        "customer_header": "X-Customer",
        "api_keys": {},
        "check": {"interval_s": 1.0, "timeout_s": 1.0, "fall": 2, "rise": 1},
        "models": [
            {
                "name": MODEL,
                "protocol": "openai",
                "names": [MODEL],
                "current": "1",
                "customers": {},
                "versions": {
                    "1": {
                        "deployment": f"{MODEL}@1",
                        "health_path": "/v1/health/ready",
                        "served_name": MODEL,
                        "backends": [{"url": backend, "replica": f"{MODEL}@1#0"}],
                    }
                },
            }
        ],
    }
    (workdir / "routes.json").write_text(json.dumps(routes))
    port = free_port()
    procs.append(
        subprocess.Popen(
            [
                sys.executable,
                str(server),
                "--listen",
                "127.0.0.1",
                "--port",
                str(port),
                "--routes",
                str(workdir / "routes.json"),
            ]
        )
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/v2/health/live")
    deadline = time.monotonic() + 10
    while not all(b["ready"] for b in httpx.get(url + "/-/fleetctl/status").json()["backends"]):
        if time.monotonic() > deadline:
            raise SystemExit("[bench] error: the front door never saw the backend ready")
        time.sleep(0.05)
    return url


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ (a) paced latency
async def paced(urls: list[str], rate: float, seconds: float) -> list[tuple[list[float], int]]:
    """Open loop: `rate` requests a second to each URL, request i to URL k due at
    start + i/rate + k/(rate * len(urls)) whatever happened to the others, so that the
    streams interleave and any stall of the machine falls on all of them alike. Returns
    (latencies in s, failed requests) per URL."""
    import aiohttp

    results: list[tuple[list[float], int]] = [([], 0) for _ in urls]
    errors = [0] * len(urls)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:

        async def one(k: int, due: float) -> None:
            try:
                async with session.post(
                    urls[k], data=BODY, headers={"Content-Type": "application/json"}
                ) as r:
                    await r.read()
                    ok = r.status == 200
            except aiohttp.ClientError:
                ok = False
            if ok:
                results[k][0].append(time.perf_counter() - due)
            else:
                errors[k] += 1

        start = time.perf_counter() + 0.05
        schedule = sorted(
            (start + i / rate + k / (rate * len(urls)), k)
            for i in range(int(rate * seconds))
            for k in range(len(urls))
        )
        tasks = []
        for due, k in schedule:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(k, due)))
        await asyncio.gather(*tasks)
    return [(lat, errors[k]) for k, (lat, _) in enumerate(results)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def latency_runs(direct: str, door: str, args: argparse.Namespace) -> dict[str, Any]:
    asyncio.run(paced([direct, door], args.rate, 2))  # warm-up, untimed
    rows: dict[str, list[dict[str, float]]] = {"direct": [], "front door": []}
    for run in range(args.runs):
        targets = [("direct", direct), ("front door", door)]
        if run % 2:
            targets.reverse()  # which stream leads within each period alternates
        for (name, _), (lat, errors) in zip(
            targets, asyncio.run(paced([u for _, u in targets], args.rate, args.seconds))
        ):
            row = {
                "p50_ms": percentile(lat, 0.50) * 1e3,
                "p99_ms": percentile(lat, 0.99) * 1e3,
                "max_ms": max(lat) * 1e3,
                "n": len(lat),
                "errors": errors,
            }
            rows[name].append(row)
            log(
                f"latency run {run + 1}/{args.runs} {name:10s} p50 {row['p50_ms']:.3f} ms  "
                f"p99 {row['p99_ms']:.3f} ms  n={row['n']} errors={errors}"
            )
    added = {
        q: statistics.median(f[q] - d[q] for d, f in zip(rows["direct"], rows["front door"]))
        for q in ("p50_ms", "p99_ms")
    }
    summary = {
        name: {q: statistics.median(r[q] for r in rs) for q in ("p50_ms", "p99_ms", "max_ms")}
        for name, rs in rows.items()
    }
    return {
        "runs": rows,
        "median": summary,
        "added_ms": added,
        "errors": sum(r["errors"] for rs in rows.values() for r in rs),
    }


# ------------------------------------------------------------------ (b) rate with wrk
def wrk(url: str, lua: Path, args: argparse.Namespace, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{args.connections}", f"-d{round(seconds)}s", "-s", str(lua), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rate": rate,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(int(x) for x in sock.groups()) if sock else 0,
    }


def rate_runs(
    direct: str, door: str, door_pid: int, workdir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    lua = workdir / "post.lua"
    lua.write_text(WRK_LUA)
    wrk(direct, lua, args, 2)  # warm-up, untimed
    wrk(door, lua, args, 2)
    rows: dict[str, list[dict[str, float]]] = {"direct": [], "front door": []}
    for run in range(args.runs):
        order = [("direct", direct), ("front door", door)]
        for name, url in order if run % 2 == 0 else order[::-1]:
            cpu0, t0 = cpu_seconds(door_pid), time.monotonic()
            row = wrk(url, lua, args, args.wrk_seconds)
            row["door_cpu"] = (cpu_seconds(door_pid) - cpu0) / (time.monotonic() - t0)
            rows[name].append(row)
            log(
                f"rate run {run + 1}/{args.runs} {name:10s} {row['rate']:8.0f} req/s  "
                f"non-2xx {row['non_2xx']:.0f}  socket errors {row['socket_errors']:.0f}  "
                f"front door CPU {row['door_cpu'] * 100:.0f}%"
            )
    return {
        "runs": rows,
        "median": {name: statistics.median(r["rate"] for r in rs) for name, rs in rows.items()},
        "door_cpu": statistics.median(r["door_cpu"] for r in rows["front door"]),
        # requests per second of the front door's own CPU time: what one core would pass
        # if it had it to itself, less sensitive to neighbours than the rate
        "per_core": statistics.median(r["rate"] / r["door_cpu"] for r in rows["front door"]),
        "errors": sum(r["non_2xx"] + r["socket_errors"] for rs in rows.values() for r in rs),
    }


# ------------------------------------------------------------------ main
def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        raise SystemExit("[bench] error: wrk is missing (apt-get install -y wrk)")
    log("installing wrk (apt-get install -y wrk)")
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, stdout=subprocess.DEVNULL)


def report(
    lat: dict[str, Any] | None, rate: dict[str, Any] | None, args: argparse.Namespace
) -> None:
    import aiohttp

    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    if lat:
        print(
            f"\n(a) latency at {args.rate:.0f} req/s, open loop, {args.seconds:.0f} s per run, "
            f"median of {args.runs} runs"
        )
        print("| target | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|")
        for name, m in lat["median"].items():
            print(f"| {name} | {m['p50_ms']:.3f} | {m['p99_ms']:.3f} | {m['max_ms']:.3f} |")
        added = lat["added_ms"]
        verdict = "met" if added["p99_ms"] <= GOAL_P99_ADDED_MS else "NOT met"
        print(
            f"added by the front door: p50 {added['p50_ms']:.3f} ms, p99 {added['p99_ms']:.3f} ms "
            f"(goal p99 <= {GOAL_P99_ADDED_MS} ms: {verdict}); failed requests: {lat['errors']}"
        )
    if rate:
        print(
            f"\n(b) rate, wrk -t1 -c{args.connections} -d{args.wrk_seconds:.0f}s, median of {args.runs} runs"
        )
        print("| target | req/s |\n|---|---:|")
        for name, r in rate["median"].items():
            print(f"| {name} | {r:,.0f} |")
        verdict = "met" if rate["median"]["front door"] >= GOAL_RATE else "NOT met"
        print(
            f"front door: {rate['median']['front door']:,.0f} req/s (goal >= {GOAL_RATE:,.0f}: {verdict}), "
            f"its CPU {rate['door_cpu'] * 100:.0f}% of one core, {rate['per_core']:,.0f} req/s per CPU-second "
            f"({1e6 / rate['per_core']:.0f} us of CPU a request); failed requests: {rate['errors']}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rate", type=float, default=200.0, help="paced requests per second for (a)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of one paced run")
    ap.add_argument("--wrk-seconds", type=float, default=5.0, help="length of one wrk run")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--json", type=Path, help="also write every figure here")
    ap.add_argument("--only", choices=("latency", "rate"), help="run one of the two parts")
    ap.add_argument(
        "--server",
        type=Path,
        default=SERVER,
        help="the front door to measure (default: this checkout's)",
    )
    ap.add_argument("--serve-backend", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_backend:
        serve_backend(args.serve_backend)
        return
    ensure_wrk()
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="fleetctl-bench-fd-") as tmp:
        try:
            backend_url = start_backend(procs)
            door_url = start_front_door(procs, Path(tmp), backend_url, args.server)
            backend, door = procs
            path = "/v1/chat/completions"
            log(
                f"backend {backend_url} (pid {backend.pid}), front door {door_url} (pid {door.pid})"
            )
            lat = (
                latency_runs(backend_url + path, door_url + path, args)
                if args.only != "rate"
                else None
            )
            rate = (
                rate_runs(backend_url + path, door_url + path, door.pid, Path(tmp), args)
                if args.only != "latency"
                else None
            )
        finally:
            for p in reversed(procs):  # the front door first, so that it sees no backend vanish
                p.terminate()
                p.wait(15)
    report(lat, rate, args)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"latency": lat, "rate": rate, "args": {k: str(v) for k, v in vars(args).items()}},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
