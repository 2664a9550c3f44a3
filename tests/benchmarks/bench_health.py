#!/usr/bin/env python3
"""Benchmark: how long the probe stage of `fleetctl health` takes over many endpoints.

Run it from the repository root (no Docker needed):

    .venv/bin/python tests/benchmarks/bench_health.py                        # 1,000 healthy NIM-like endpoints
    .venv/bin/python tests/benchmarks/bench_health.py --hanging 100 --timeout 1 --concurrency 32
    .venv/bin/python tests/benchmarks/bench_health.py --kind readiness      # one GET per endpoint
    .venv/bin/python tests/benchmarks/bench_health.py --runs 7 --json out.json

It is a script, not a pytest test. It starts local endpoint servers (aiohttp, in
`--servers` child processes of its own, on 127.0.0.1 only), each listening on its share
of `--endpoints` ports, and times the sweep's probe stage,
`fleetctl.ops.health.sweeping.probe_targets`, with the sweep's own `Prober` (one HTTP
client for the sweep) at `--concurrency` probes at a time, each within `--timeout`
seconds, under the overall deadline the sweep sets. Observation, planning and the Docker
facts are not part of it (they do not depend on how endpoints answer).

Endpoints:
- `--kind nim` (default): every endpoint answers like a NIM (`GET /v1/health/live` and
  `/v1/health/ready`, `GET /v1/models`, a one-token `POST /v1/chat/completions`), and is
  probed as a NIM replica is: three requests when it is ready (readiness, the model
  list, the timed completion);
- `--kind readiness`: one `GET /v1/health/ready` per endpoint (a runtime whose only
  check is its readiness: plugins, front doors).
- `--hanging H`: the first H endpoints accept the connection and never answer.

Checked every run: every healthy endpoint is probed ok, every hanging one times out, and
the stage ends within the bound: 2 s with no hanging endpoint, else
ceil(H / C) * T + 2 s. The report gives each run and the median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MODEL = "bench"


def serve(ports: list[int], hanging: set[int], ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    """An aiohttp app on every port; the hanging ones never answer."""
    from aiohttp import web

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response()

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"object": "health.response"})

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(
            {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}
        )

    def app(hangs: bool) -> web.Application:
        a = web.Application()
        if hangs:
            a.router.add_route("*", "/{tail:.*}", hang)
        else:
            a.router.add_get("/v1/health/live", ok)
            a.router.add_get("/v1/health/ready", ok)
            a.router.add_get("/v1/models", models)
            a.router.add_post("/v1/chat/completions", chat)
        return a

    async def main() -> None:
        runners = []
        for port in ports:
            runner = web.AppRunner(app(port in hanging), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
            runners.append(runner)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def free_ports(n: int) -> list[int]:
    """n distinct ports that were free on 127.0.0.1 a moment ago."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def targets(ports: list[int], kind: str) -> list:  # type: ignore[type-arg]
    from fleetctl.core.observed import ObservedContainer
    from fleetctl.ops.health.model import ProbeSpec, Target
    from fleetctl.runtimes.spec import ContainerSpec, http_health

    out = []
    for i, port in enumerate(ports):
        url = f"http://127.0.0.1:{port}"
        spec = ContainerSpec(
            image="bench",
            endpoint=url,
            health=(http_health("/v1/health/ready"),),
            startup_timeout_s=60,
        )
        ps = ProbeSpec(
            spec,
            runtime="nim" if kind == "nim" else "",
            served_model=MODEL if kind == "nim" else None,
            sla_ms=1000,
        )
        c = ObservedContainer(
            "h",
            f"id{i}",
            f"c{i}",
            "bench@1",
            i,
            (),
            "",
            "running",
            "bench",
            port=port,
            endpoint=url,
        )
        out.append(Target("bench@1", i, "h", container=c, probe=ps, runtime=ps.runtime))
    return out


def one_run(ts: list, timeout: float, concurrency: int, hanging: int) -> dict:  # type: ignore[type-arg]
    from fleetctl.ops.health.probing import Prober
    from fleetctl.ops.health.sweeping import probe_targets

    with Prober() as prober:
        started = time.monotonic()
        results = probe_targets(ts, prober, timeout, concurrency)
        took = time.monotonic() - started
    hung = {t.key for t in ts[:hanging]}
    ok = sum(r.ok for k, r in results.items() if k not in hung)
    timed_out = sum(not r.ok for k, r in results.items() if k in hung)
    return {"seconds": round(took, 3), "healthy_ok": ok, "hanging_failed": timed_out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoints", type=int, default=1000)
    ap.add_argument("--hanging", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--kind", choices=("nim", "readiness"), default="nim")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--servers", type=int, default=max(1, min(4, (os.cpu_count() or 2) // 2)))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    ports = free_ports(args.endpoints)
    hanging = set(ports[: args.hanging])
    ready = [multiprocessing.Event() for _ in range(args.servers)]
    shares = [ports[i :: args.servers] for i in range(args.servers)]
    procs = [
        multiprocessing.Process(target=serve, args=(share, hanging, ev), daemon=True)
        for share, ev in zip(shares, ready)
    ]
    for p in procs:
        p.start()
    try:
        for ev in ready:
            if not ev.wait(60):
                raise SystemExit("endpoint servers did not start")
        ts = targets(ports, args.kind)
        healthy = args.endpoints - args.hanging
        bound = (
            2.0
            if not args.hanging
            else math.ceil(args.hanging / args.concurrency) * args.timeout + 2.0
        )
        one_run(
            ts[args.hanging :][:50], args.timeout, args.concurrency, 0
        )  # untimed warm-up (imports, first connections)
        runs = []
        for i in range(args.runs):
            r = one_run(ts, args.timeout, args.concurrency, args.hanging)
            r["within_bound"] = r["seconds"] <= bound
            runs.append(r)
            print(
                f"run {i + 1}: {r['seconds']:.3f} s  healthy ok {r['healthy_ok']}/{healthy}  "
                f"hanging timed out {r['hanging_failed']}/{args.hanging}",
                flush=True,
            )
            assert r["healthy_ok"] == healthy and r["hanging_failed"] == args.hanging, r
        median = statistics.median(r["seconds"] for r in runs)
        summary = {
            "endpoints": args.endpoints,
            "hanging": args.hanging,
            "concurrency": args.concurrency,
            "timeout_s": args.timeout,
            "kind": args.kind,
            "requests_per_probe": 3 if args.kind == "nim" else 1,
            "runs": runs,
            "median_s": round(median, 3),
            "bound_s": bound,
            "cpus": os.cpu_count(),
        }
        print(
            f"median {median:.3f} s over {args.runs} runs (bound {bound:g} s): "
            f"{'within' if median <= bound else 'OVER'} the bound"
        )
        if args.json:
            args.json.write_text(json.dumps(summary, indent=2))
        return 0 if all(r["within_bound"] for r in runs) else 1
    finally:
        for p in procs:
            p.terminate()
            p.join(5)


if __name__ == "__main__":
    sys.exit(main())
