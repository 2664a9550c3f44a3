#!/usr/bin/env python3
"""Benchmark: how much does `fleetctl apply` cost over launching the same containers by hand?

Run it as root on the test bed (docs/testbed.md), from the repository root:

    .venv/bin/python tests/benchmarks/bench_apply.py                   # 5 runs on engine a
    .venv/bin/python tests/benchmarks/bench_apply.py --engine private  # a dockerd of its own
    .venv/bin/python tests/benchmarks/bench_apply.py --runs 9 --json out.json

It is a script, not a pytest test. On one Docker engine (engine a by default) it times,
over `--runs` repetitions, each starting from an engine without any of its containers
(the removal between runs is not timed):

1. raw docker: `seq | xargs -P4 docker run -d --network host ...` of N tiny services
   (N = `--services`, 20), timed as one shell pipeline;
2. `fleetctl apply --yes` of the same N services (`max_parallel: 4`), timed as a
   subprocess: the wall time of the whole command, Python start-up included;
3. `docker-compose up -d` (Debian's docker-compose 1.29.2, installed with apt-get when
   missing) of the same N services, `network_mode: host`, at compose's own parallelism
   (up to 64 at a time): compose 1.x deadlocks when COMPOSE_PARALLEL_LIMIT is lower than
   the number of services (docker/compose#5864), so it cannot be held to 4;
4. a no-op `fleetctl apply` on `--noop-services` (50) running containers, `--noop-runs`
   (5) times, checking that it changed nothing: the container ids and StartedAt are the
   same before and after, and the engine reported no container event for them.

The three launchers are interleaved (their order rotates from run to run) so that a
change of machine load hits all of them alike; an untimed warm-up round comes first.
For every timed run the engine's own event stream is read afterwards to split the wall
time into: before the first `create` event, the span from the first `create` to the
last container event, and the tail after it.

Every service is `fleetctl-testbed/tiny:1` (busybox httpd FROM scratch) with host
networking and `PORT` set to its own port on 127.0.0.1 (26000, 26004, ...: fleetctl
gives each replica a block of 4 ports, the other launchers use the same numbers).

The health gate is left out on purpose: the benchmark compares the work of launching
containers, not how long a server takes to become ready. fleetctl gates every replica on
its runtime's health checks, so the services use a runtime of their own, `bench-tiny`,
whose `ContainerSpec.health` is empty (`probe` then answers "ready" at once; fleetctl
still reads the container's state once and sets its restart policy, as for any replica).
It is registered the way any third-party runtime is (plugins/fleetctl-vllm): through
the `fleetctl` entry-point group. Rather than installing a package, the script writes
into a temporary directory a module with the `register_runtimes` hook and a minimal
`*.dist-info` (METADATA + entry_points.txt) that declares it, and puts that directory on
`PYTHONPATH` of the fleetctl subprocess only. `importlib.metadata` finds distributions on
every `sys.path` entry, so fleetctl's own plugin loading picks the runtime up unchanged;
nothing in the virtual environment or in fleetctl is modified or patched.

The simulated host declares 8 GPUs of 80 GB (labels only); each service asks for 1 GB,
so all of them pack. fleetctl state goes to a temporary database.

Engines and safety: `fleetctl apply` converges every fleetctl-managed container on the
engine, so it would remove managed containers that are not in the benchmark's inventory
(a demo, or another session's test on the same engine). The script refuses to start, and
checks again before every fleetctl command, when the engine holds an `io.fleetctl.owner`
container that is not one of its own. The test bed engines are shared the other way too:
the integration tests' cleanup removes, on a, b and c, every managed container created
while a test ran, which can take one of the benchmark's away in the middle of an apply.
`--engine private` avoids both: the script starts a dockerd of its own for the run (same
binary and flags as the test bed engines, the tiny image copied into it) and stops it,
by its pid, at the end. The script removes only what it made: the names `bench-raw-*`
and `bench-compose-*` and the managed containers of its own deployments
(`bench-tiny-NN@1`), on that engine only, at the end and on Ctrl-C. It never runs
`fleetctl down` (which removes every managed container on the engine). Ports: 26000 and
up, one block of 4 per service (26000-26199 with the defaults); the script refuses to
start when one of them is already listening.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN_DIR = Path(os.environ.get("FLEETCTL_TESTBED_RUN_DIR", "/run/fleetctl-testbed"))
IMAGE = "fleetctl-testbed/tiny:1"
PORT_LO, PORT_HI = 26000, 26999
PORT_STEP = 4  # fleetctl's PORTS_PER_REPLICA: the same port numbers for every launcher
PARALLEL = 4
RUNTIME = "bench-tiny"
MODEL_PREFIX = "bench-tiny-"
RAW_PREFIX = "bench-raw-"
COMPOSE_PREFIX = "bench-compose-"
COMPOSE_PROJECT = "fleetctl-bench"
OWNER_LABEL = "io.fleetctl.owner"
DEPLOYMENT_LABEL = "io.fleetctl.deployment"
GOAL_RATIO = 1.25
COMMAND_TIMEOUT_S = 300
MUTATING_EVENTS = {
    "create",
    "start",
    "restart",
    "stop",
    "kill",
    "die",
    "destroy",
    "rename",
    "update",
    "pause",
    "unpause",
}

PLUGIN_MODULE = '''\
"""fleetctl runtime for the apply benchmark: busybox httpd on PORT, no health gate."""

from fleetctl.runtimes.hookspecs import hookimpl
from fleetctl.runtimes.spec import ContainerSpec, merged_env


class BenchTinyRuntime:
    name = "bench-tiny"

    def render(self, ctx):
        d = ctx.deployment
        return ContainerSpec(
            image=d.image,
            endpoint=f"http://{ctx.address}:{ctx.port}",
            health=(),  # no readiness gate: launch work only
            startup_timeout_s=10.0,
            env=merged_env(d.settings.get("env"), {"PORT": str(ctx.port)}),
            network_mode=ctx.network,
            gpus=ctx.gpus,
            simulated_gpus=ctx.simulated,
        )


@hookimpl
def register_runtimes(register):
    register(BenchTinyRuntime())
'''


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def die(msg: str) -> None:
    print(f"[bench] error: {msg}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def port_of(i: int) -> int:
    """Port of service i (0-based)."""
    return PORT_LO + PORT_STEP * i


def model_name(i: int) -> str:
    return f"{MODEL_PREFIX}{i + 1:02d}"


# ----------------------------------------------------------------------------- docker
@dataclass
class Engine:
    url: str

    def cmd(self, *args: str) -> list[str]:
        return ["docker", "-H", self.url, *args]

    def run(self, *args: str, check: bool = True) -> str:
        p = subprocess.run(self.cmd(*args), capture_output=True, text=True)
        if check and p.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:3])} failed: {p.stderr.strip()[:500]}")
        return p.stdout

    def names(self, *filters: str) -> list[str]:
        args = ["ps", "-a", "--format", "{{.Names}}"]
        for f in filters:
            args += ["--filter", f]
        return [n for n in self.run(*args).split() if n]

    def managed(self) -> list[tuple[str, str]]:
        """(name, deployment) of every fleetctl-managed container on the engine."""
        out = self.run(
            "ps",
            "-a",
            "--filter",
            f"label={OWNER_LABEL}",
            "--format",
            '{{.Names}}\t{{.Label "' + DEPLOYMENT_LABEL + '"}}',
        )
        rows = []
        for line in out.splitlines():
            if line.strip():
                name, _, dep = line.partition("\t")
                rows.append((name, dep))
        return rows

    def remove(self, names: list[str]) -> None:
        for i in range(0, len(names), 50):
            self.run("rm", "-f", *names[i : i + 50], check=False)

    def inspect_started(self, names: list[str]) -> dict[str, tuple[str, str, str]]:
        """name -> (id, status, StartedAt)."""
        if not names:
            return {}
        out = self.run(
            "inspect",
            "--format",
            "{{.Name}}\t{{.Id}}\t{{.State.Status}}\t{{.State.StartedAt}}",
            *names,
        )
        res = {}
        for line in out.splitlines():
            name, cid, status, started = line.split("\t")
            res[name.lstrip("/")] = (cid, status, started)
        return res

    def events(self, since: float, until: float) -> list[tuple[float, str, str]]:
        """(time, action, container name) of container events in [since, until]."""
        out = self.run(
            "events",
            "--since",
            f"{since:.6f}",
            "--until",
            f"{until:.6f}",
            "--filter",
            "type=container",
            "--format",
            "{{json .}}",
            check=False,
        )
        evs = []
        for line in out.splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            action = str(e.get("Action") or e.get("status") or "").split(":")[0]
            name = (e.get("Actor") or {}).get("Attributes", {}).get("name", "")
            evs.append((int(e.get("timeNano", 0)) / 1e9, action, name))
        return sorted(evs)


class PrivateEngine:
    """A dockerd of the benchmark's own (`--engine private`), like a test bed engine.

    The test bed engines are shared: integration tests remove, on all three, the
    fleetctl-managed containers created while they ran, and fleetctl would remove theirs.
    This engine has the same binary and flags as engines a, b and c (no bridge, host
    networking, own data root, exec root, pidfile, socket and containerd namespace); the
    tiny image is copied into it from a test bed engine. Stopped by its pid at the end.
    """

    def __init__(self) -> None:
        tag = f"{os.getpid()}"
        self.base = (
            Path(os.environ.get("FLEETCTL_TESTBED_DIR", "/var/lib/fleetctl-testbed")).parent
            / f"fleetctl-bench-{tag}"
        )
        self.run_dir = Path("/run") / f"fleetctl-bench-{tag}"
        self.sock = self.run_dir / "d.sock"
        self.url = f"unix://{self.sock}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if shutil.which("dockerd") is None:
            die("no dockerd: run testbed/setup.sh first")
        (self.base / "data").mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.base / "daemon.json"
        cfg.write_text(json.dumps({"deprecated-key-path": str(self.base / "key.json")}) + "\n")
        logf = open(self.base / "dockerd.log", "ab")
        ns = f"fleetctl-bench-{os.getpid()}"
        self.proc = subprocess.Popen(
            [
                "dockerd",
                "--config-file",
                str(cfg),
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--data-root",
                str(self.base / "data"),
                "--exec-root",
                str(self.run_dir / "x"),
                "--pidfile",
                str(self.run_dir / "d.pid"),
                "--containerd-namespace",
                ns,
                "--containerd-plugins-namespace",
                ns + "-plugins",
                "-H",
                self.url,
            ],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=logf,
            start_new_session=True,
        )
        logf.close()
        deadline = time.time() + 60
        while (
            subprocess.run(
                ["docker", "-H", self.url, "info", "--format", "{{.ServerVersion}}"],
                capture_output=True,
            ).returncode
            != 0
        ):
            if self.proc.poll() is not None or time.time() > deadline:
                die(f"private dockerd did not start; see {self.base / 'dockerd.log'}")
            time.sleep(0.3)
        for e in "abc":
            src = f"unix://{RUN_DIR}/{e}.sock"
            if (
                subprocess.run(
                    ["docker", "-H", src, "image", "inspect", IMAGE], capture_output=True
                ).returncode
                == 0
            ):
                rc = subprocess.run(
                    f"docker -H {src} save {IMAGE} | docker -H {self.url} load -q",
                    shell=True,
                    capture_output=True,
                ).returncode
                if rc == 0:
                    return
        die(f"could not copy {IMAGE} from a test bed engine: run testbed/setup.sh")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # only the daemon this script started, by its pid
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for root in (self.base, self.run_dir):
            mounts = [
                line.split()[1]
                for line in Path("/proc/mounts").read_text().splitlines()
                if line.split()[1].startswith(str(root) + "/")
            ]
            for m in sorted(mounts, reverse=True):
                subprocess.run(["umount", "-l", m], capture_output=True)
            shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------ measuring
@dataclass
class Sample:
    wall: float
    before_first_create: float | None = None
    docker_span: float | None = None
    after_last_event: float | None = None


@dataclass
class Series:
    label: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def walls(self) -> list[float]:
        return [s.wall for s in self.samples]

    def median(self) -> float:
        return statistics.median(self.walls)

    def part(self, attr: str) -> float | None:
        vals = [getattr(s, attr) for s in self.samples if getattr(s, attr) is not None]
        return statistics.median(vals) if vals else None


def split_by_events(engine: Engine, t0: float, t1: float, names: set[str], wall: float) -> Sample:
    evs = [e for e in engine.events(t0 - 0.05, t1 + 0.05) if e[2] in names]
    creates = [e[0] for e in evs if e[1] == "create"]
    if not evs or not creates:
        return Sample(wall)
    first, last = min(creates), max(e[0] for e in evs)
    return Sample(wall, max(0.0, first - t0), max(0.0, last - first), max(0.0, t1 - last))


def timed(
    argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, float, float, subprocess.CompletedProcess]:
    t0 = time.time()
    p0 = time.perf_counter()
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=COMMAND_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        die(f"{' '.join(argv[:3])} ... did not finish within {COMMAND_TIMEOUT_S} s")
    wall = time.perf_counter() - p0
    return wall, t0, t0 + wall, proc


# ------------------------------------------------------------------------- the bench
class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.engine = Engine(args.docker_host)
        self.n = args.services
        # The ports the benchmark uses: one block of PORT_STEP per service, from PORT_LO.
        self.port_hi = PORT_LO + PORT_STEP * max(args.services, args.noop_services) - 1
        self.fleetctl = args.fleetctl
        self.compose = None if args.no_compose else self._compose_binary()
        self.tmp = Path(tempfile.mkdtemp(prefix="fleetctl-bench-"))
        self.state = self.tmp / "state" / "fleetctl.db"
        self.plugin_dir = self._write_plugin()
        self.inv_n = self._write_inventory(self.n, "inventory.yaml")
        self.inv_noop = self._write_inventory(args.noop_services, "inventory-noop.yaml")
        self.compose_file = self._write_compose(self.n)
        self.load_samples: list[str] = []

    # -- setup -----------------------------------------------------------------------
    def _compose_binary(self) -> str:
        found = shutil.which("docker-compose")
        if found:
            return found
        log(
            "docker-compose is not installed: installing Debian's docker-compose (1.29.2) "
            "with `apt-get install -y docker-compose` (use --no-compose to skip that launcher)"
        )
        if os.geteuid() != 0:
            die("installing docker-compose needs root; install it or pass --no-compose")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        rc = subprocess.run(
            ["apt-get", "install", "-y", "-q", "docker-compose"], env=env
        ).returncode
        if rc != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env)
            rc = subprocess.run(
                ["apt-get", "install", "-y", "-q", "docker-compose"], env=env
            ).returncode
        found = shutil.which("docker-compose")
        if rc != 0 or not found:
            die("apt-get could not install docker-compose; pass --no-compose to run without it")
        return found

    def _write_plugin(self) -> Path:
        d = self.tmp / "plugin"
        (d / "fleetctl_bench_tiny-0.0.0.dist-info").mkdir(parents=True)
        (d / "fleetctl_bench_tiny.py").write_text(PLUGIN_MODULE)
        (d / "fleetctl_bench_tiny-0.0.0.dist-info" / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: fleetctl-bench-tiny\nVersion: 0.0.0\n"
        )
        (d / "fleetctl_bench_tiny-0.0.0.dist-info" / "entry_points.txt").write_text(
            f"[fleetctl]\n{RUNTIME} = fleetctl_bench_tiny\n"
        )
        return d

    def _write_inventory(self, n: int, filename: str) -> Path:
        lines = [
            "# generated by tests/benchmarks/bench_apply.py",
            # The same N containers as the other launchers: no front door beside them.
            "front_door: {enabled: false}",
            "hosts:",
            "  - name: bench-host",
            f"    docker: {self.engine.url}",
            "    simulated: true",
            "    gpus: {count: 8, memory_gb: 80}",
            "    network: host",
            "    address: 127.0.0.1",
            f"    ports: {PORT_LO}-{self.port_hi}",
            f"    max_parallel: {PARALLEL}",
            "models:",
        ]
        for i in range(n):
            lines += [
                f"  - name: {model_name(i)}",
                '    version: "1"',
                f"    runtime: {RUNTIME}",
                f"    image: {IMAGE}",
                "    gpu_memory_gb: 1",
            ]
        path = self.tmp / filename
        path.write_text("\n".join(lines) + "\n")
        return path

    def _write_compose(self, n: int) -> Path:
        lines = ['version: "2.4"', "services:"]
        for i in range(n):
            lines += [
                f"  svc-{i + 1:02d}:",
                f"    image: {IMAGE}",
                f"    container_name: {COMPOSE_PREFIX}{i + 1:02d}",
                "    network_mode: host",
                "    environment:",
                f'      PORT: "{port_of(i)}"',
            ]
        path = self.tmp / "docker-compose.yml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def fleetctl_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self.plugin_dir), env.get("PYTHONPATH", "")) if p
        )
        env.pop("FLEETCTL_INVENTORY", None)
        env.pop("FLEETCTL_STATE", None)
        env["COLUMNS"] = "120"
        return env

    # -- safety and cleaning ---------------------------------------------------------
    def our_deployments(self) -> set[str]:
        n = max(self.n, self.args.noop_services)
        return {f"{model_name(i)}@1" for i in range(n)}

    def guard(self) -> None:
        """Refuse when fleetctl apply would touch managed containers that are not ours."""
        ours = self.our_deployments()
        foreign = [(name, dep) for name, dep in self.engine.managed() if dep not in ours]
        if foreign:
            shown = ", ".join(
                f"{name} ({dep or 'no deployment label'})" for name, dep in foreign[:6]
            )
            more = f" and {len(foreign) - 6} more" if len(foreign) > 6 else ""
            die(
                f"{self.engine.url} holds fleetctl-managed containers that are not the benchmark's: "
                f"{shown}{more}. `fleetctl apply` would remove them. Run on an engine of its own "
                "(--engine private starts one for the run) or wait until they are gone."
            )

    def our_managed(self) -> list[str]:
        ours = self.our_deployments()
        return [name for name, dep in self.engine.managed() if dep in ours]

    def mine(self) -> list[str]:
        """Every container the benchmark made on the engine: its names and its deployments."""
        named = [n for n in self.engine.names() if n.startswith((RAW_PREFIX, COMPOSE_PREFIX))]
        return sorted(set(named) | set(self.our_managed()))

    def clean(self) -> None:
        names = self.mine()
        if names:
            self.engine.remove(names)
        left = self.mine()
        if left:
            die(f"could not remove {', '.join(left)}")

    def cleanup_all(self) -> None:
        try:
            self.clean()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- checks ----------------------------------------------------------------------
    def preflight(self) -> None:
        if shutil.which("docker") is None:
            die("no docker client: run testbed/setup.sh first")
        ok = (
            subprocess.run(
                self.engine.cmd("image", "inspect", IMAGE), capture_output=True
            ).returncode
            == 0
        )
        if (
            not ok
            and self.args.engine in ("a", "b", "c")
            and (REPO / "testbed" / "setup.sh").exists()
        ):
            log("engine or image missing: running testbed/setup.sh (idempotent)")
            subprocess.run([str(REPO / "testbed" / "setup.sh")], check=False)
            ok = (
                subprocess.run(
                    self.engine.cmd("image", "inspect", IMAGE), capture_output=True
                ).returncode
                == 0
            )
        if not ok:
            die(f"{IMAGE} is not on {self.engine.url}: run testbed/setup.sh")
        if not Path(self.fleetctl).exists():
            die(
                f"no fleetctl at {self.fleetctl}: create the venv (pip install -e .) or pass --fleetctl"
            )
        self.guard()
        busy = self._ports_in_use()
        if busy:
            die(
                f"ports already listening in {PORT_LO}-{self.port_hi}, which the benchmark needs: {busy[:10]}"
            )

    def ports_free(self) -> None:
        """Untimed, before each launch: the ports must not answer (fleetctl refuses a taken one)."""
        deadline = time.time() + 5
        while (busy := self._ports_in_use()) and time.time() < deadline:
            time.sleep(0.1)
        if busy:
            die(
                f"something else listens on ports {busy[:10]} in {PORT_LO}-{self.port_hi}; rerun when they are free"
            )

    def _ports_in_use(self) -> list[int]:
        busy = []
        for path in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                rows = Path(path).read_text().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                parts = row.split()
                if len(parts) > 3 and parts[3] == "0A":  # LISTEN
                    port = int(parts[1].rsplit(":", 1)[1], 16)
                    if PORT_LO <= port <= self.port_hi:
                        busy.append(port)
        return sorted(set(busy))

    def expect_running(self, names: list[str], what: str) -> None:
        states = self.engine.inspect_started(names)
        bad = [n for n in names if states.get(n, ("", "missing", ""))[1] != "running"]
        if bad:
            die(f"{what}: {len(bad)} of {len(names)} containers are not running: {bad[:5]}")

    # -- launchers ---------------------------------------------------------------------
    def raw_names(self) -> list[str]:
        return [f"{RAW_PREFIX}{port_of(i)}" for i in range(self.n)]

    def fleet_names(self, n: int) -> list[str]:
        return [f"fleetctl-{model_name(i)}-1-0" for i in range(n)]

    def compose_names(self) -> list[str]:
        return [f"{COMPOSE_PREFIX}{i + 1:02d}" for i in range(self.n)]

    def raw_pipeline(self) -> str:
        return (
            f"seq {PORT_LO} {PORT_STEP} {port_of(self.n - 1)} | xargs -P{PARALLEL} -I{{}} "
            f"docker -H {self.engine.url} run -d --network host --name {RAW_PREFIX}{{}} -e PORT={{}} {IMAGE}"
        )

    def run_raw(self) -> Sample:
        wall, t0, t1, p = timed(["bash", "-c", "set -o pipefail; " + self.raw_pipeline()])
        if p.returncode != 0:
            die(f"raw docker pipeline failed: {p.stderr.strip()[:500]}")
        names = self.raw_names()
        self.expect_running(names, "raw docker")
        return split_by_events(self.engine, t0, t1, set(names), wall)

    def fleetctl_argv(self, inventory: Path) -> list[str]:
        return [self.fleetctl, "apply", "-f", str(inventory), "--yes", "--state", str(self.state)]

    def run_fleetctl(self, inventory: Path, n: int, *, expect_noop: bool = False) -> Sample:
        self.guard()
        wall, t0, t1, p = timed(
            self.fleetctl_argv(inventory), env=self.fleetctl_env(), cwd=self.tmp
        )
        if p.returncode != 0:
            die(f"fleetctl apply exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
        if expect_noop and "nothing to do" not in p.stdout:
            die(f"expected a no-op apply, got:\n{p.stdout[-2000:]}")
        names = self.fleet_names(n)
        self.expect_running(names, "fleetctl apply")
        if expect_noop:
            return Sample(wall)
        return split_by_events(self.engine, t0, t1, set(names), wall)

    def run_compose(self) -> Sample:
        assert self.compose is not None
        env = {**os.environ, "DOCKER_HOST": self.engine.url}
        env.pop("COMPOSE_PARALLEL_LIMIT", None)  # below the service count, compose 1.x hangs
        argv = [self.compose, "-p", COMPOSE_PROJECT, "-f", str(self.compose_file), "up", "-d"]
        wall, t0, t1, p = timed(argv, env=env, cwd=self.tmp)
        if p.returncode != 0:
            die(f"docker-compose up failed: {p.stderr.strip()[-1500:]}")
        names = self.compose_names()
        self.expect_running(names, "docker-compose")
        return split_by_events(self.engine, t0, t1, set(names), wall)

    # -- phases ------------------------------------------------------------------------
    def launch_phase(self) -> list[Series]:
        launchers = [
            ("raw docker (xargs -P4)", self.run_raw),
            ("fleetctl apply", lambda: self.run_fleetctl(self.inv_n, self.n)),
        ]
        if self.compose:
            launchers.append(("docker-compose up -d", self.run_compose))
        series = {label: Series(label) for label, _ in launchers}
        for w in range(self.args.warmup):
            log(f"warm-up round {w + 1} (not timed)")
            for _, fn in launchers:
                self.ports_free()
                fn()
                self.clean()
        for r in range(self.args.runs):
            k = r % len(launchers)
            order = launchers[k:] + launchers[:k]
            for label, fn in order:
                self.clean()
                self.ports_free()
                la = loadavg()
                s = fn()
                series[label].samples.append(s)
                self.load_samples.append(la)
                log(f"run {r + 1}/{self.args.runs}: {label:<24} {s.wall:6.3f} s   (load {la})")
            self.clean()
        return [series[label] for label, _ in launchers]

    def noop_phase(self) -> tuple[Series, dict]:
        n = self.args.noop_services
        self.clean()
        log(f"no-op: first apply of {n} services (not timed)")
        self.run_fleetctl(self.inv_noop, n)
        names = self.fleet_names(n)
        before = self.engine.inspect_started(names)
        t_start = time.time()
        series = Series(f"fleetctl no-op ({n} running)")
        for r in range(self.args.noop_runs):
            s = self.run_fleetctl(self.inv_noop, n, expect_noop=True)
            series.samples.append(s)
            log(f"no-op {r + 1}/{self.args.noop_runs}: {s.wall:6.3f} s   (load {loadavg()})")
        t_end = time.time()
        after = self.engine.inspect_started(names)
        changed = [nm for nm in names if before.get(nm) != after.get(nm)]
        events = [
            e
            for e in self.engine.events(t_start, t_end + 0.5)
            if e[2] in set(names) and e[1] in MUTATING_EVENTS
        ]
        check = {"containers": n, "changed": changed, "mutating_events": events}
        if changed or events:
            die(f"no-op apply changed containers: {changed[:5]} events: {events[:5]}")
        self.clean()
        return series, check


# --------------------------------------------------------------------------- report
def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def machine(docker_host: str) -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    docker_v = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        env={**os.environ, "DOCKER_HOST": docker_host},
    ).stdout.strip()
    compose_v = ""
    if shutil.which("docker-compose"):
        compose_v = subprocess.run(
            ["docker-compose", "version", "--short"], capture_output=True, text=True
        ).stdout.strip()
    return {
        "cpu": f"{os.cpu_count()} x {cpu}",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker engine": docker_v,
        "docker-compose": compose_v,
    }


def report(
    args: argparse.Namespace,
    launch: list[Series],
    noop: Series | None,
    check: dict | None,
    info: dict,
    loads: dict,
) -> dict:
    rows = list(launch) + ([noop] if noop else [])
    print()
    print(
        f"fleetctl apply benchmark: {args.services} tiny services on {args.docker_host}, "
        f"{args.runs} runs (wall seconds; raw docker and fleetctl {PARALLEL} at a time, compose its default)"
    )
    print()
    print("| launcher | median | min | max | before 1st create | docker span | after last event |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s in rows:
        print(
            f"| {s.label} | {fmt(s.median())} | {fmt(min(s.walls))} | {fmt(max(s.walls))} | "
            f"{fmt(s.part('before_first_create'))} | {fmt(s.part('docker_span'))} | {fmt(s.part('after_last_event'))} |"
        )
    raw = launch[0].median()
    fl = launch[1].median()
    ratios = {"fleetctl/raw": fl / raw}
    print()
    print(
        f"fleetctl/raw  = {fl / raw:.2f}x  (goal <= {GOAL_RATIO:.2f}x: {'met' if fl / raw <= GOAL_RATIO else 'NOT met'})"
    )
    if len(launch) > 2:
        cr = launch[2].median() / raw
        ratios["compose/raw"] = cr
        print(f"compose/raw   = {cr:.2f}x")
    if check is not None:
        print(
            f"no-op check: {check['containers']} containers, ids and StartedAt unchanged, "
            f"{len(check['mutating_events'])} mutating engine events"
        )
    print(
        f"load average: start {loads['start']}, during runs {loads['min']} .. {loads['max']} (1-min), end {loads['end']}"
    )
    print("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()))
    return {
        "services": args.services,
        "runs": args.runs,
        "engine": args.docker_host,
        "series": {
            s.label: {
                "walls": s.walls,
                "median": s.median(),
                "before_first_create": s.part("before_first_create"),
                "docker_span": s.part("docker_span"),
                "after_last_event": s.part("after_last_event"),
            }
            for s in rows
        },
        "ratios": ratios,
        "noop_check": check,
        "loadavg": loads,
        "machine": info,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--engine",
        choices=["a", "b", "c", "private"],
        help="test bed engine, or 'private': a dockerd of the benchmark's own (default a)",
    )
    where.add_argument("--docker-host", help="any Docker address instead of a test bed engine")
    p.add_argument(
        "--runs", type=int, default=5, help="timed repetitions of each launcher (default 5)"
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    p.add_argument("--services", type=int, default=20, help="services per launch (default 20)")
    p.add_argument(
        "--noop-services",
        type=int,
        default=50,
        help="running containers for the no-op apply (default 50)",
    )
    p.add_argument(
        "--noop-runs", type=int, default=5, help="timed no-op applies (default 5; 0 skips)"
    )
    p.add_argument("--no-compose", action="store_true", help="leave docker-compose out")
    p.add_argument(
        "--fleetctl",
        default=None,
        help="fleetctl executable (default: next to this Python, else .venv/bin)",
    )
    p.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    p.add_argument(
        "--strict", action="store_true", help=f"exit 1 when fleetctl/raw exceeds {GOAL_RATIO}"
    )
    a = p.parse_args(argv)
    if a.docker_host is None and a.engine != "private":
        a.engine = a.engine or "a"
        a.docker_host = f"unix://{RUN_DIR}/{a.engine}.sock"
    if a.fleetctl is None:
        here = Path(sys.executable).parent / "fleetctl"
        a.fleetctl = str(here if here.exists() else REPO / ".venv" / "bin" / "fleetctl")
    needed_ports = max(a.services, a.noop_services) * PORT_STEP
    if needed_ports > PORT_HI - PORT_LO + 1:
        p.error(
            f"at most {(PORT_HI - PORT_LO + 1) // PORT_STEP} services fit in ports {PORT_LO}-{PORT_HI}"
        )
    if a.runs < 1 or a.services < 1:
        p.error("--runs and --services must be at least 1")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_term(signum, frame):  # type: ignore[no-untyped-def]
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    private = None
    if args.engine == "private":
        private = PrivateEngine()
        log(f"starting a private dockerd on {private.url}")
        try:
            private.start()
        except BaseException:
            private.stop()
            raise
        args.docker_host = private.url
    try:
        return run(args)
    finally:
        if private is not None:
            private.stop()


def run(args: argparse.Namespace) -> int:
    bench = Bench(args)
    result: dict = {}
    try:
        bench.preflight()
        bench.clean()
        loads = {"start": loadavg()}
        log(f"engine {args.docker_host}; load average {loads['start']}; work dir {bench.tmp}")
        launch = bench.launch_phase()
        noop, check = bench.noop_phase() if args.noop_runs > 0 else (None, None)
        loads["end"] = loadavg()
        ones = [float(x.split()[0]) for x in bench.load_samples] or [0.0]
        loads["min"], loads["max"] = f"{min(ones):.2f}", f"{max(ones):.2f}"
        loads["samples"] = bench.load_samples
        result = report(args, launch, noop, check, machine(args.docker_host), loads)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        return 130
    finally:
        bench.cleanup_all()
    if args.strict and result["ratios"]["fleetctl/raw"] > GOAL_RATIO:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
