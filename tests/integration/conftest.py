"""Fixtures for fleetctl's integration tests against the local test bed.

The test bed (see docs/testbed.md) is three real Docker engines on this
machine plus locally built images. The session fixture ``testbed`` runs
``tests/testbed/setup.sh`` once (quick when everything is already there) and hands
out the engine addresses and image names. Nothing here is mocked.

Fixtures
--------
``testbed``         (session) a :class:`Testbed`; skips the integration suite
                    only when the machine cannot host it (not root, or
                    docker.io cannot be installed).
``docker_cleanup``  (function) after the test, removes the containers on the
                    three engines labelled ``io.fleetctl.test=1`` or carrying
                    any ``io.fleetctl.owner`` label that were created while
                    the test ran.
``port_block``      (function) a :class:`PortBlock` of free 127.0.0.1 ports in
                    18000-18999, distinct for every test of the session.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO_ROOT / "tests" / "testbed" / "setup.sh"
RUN_DIR = Path(os.environ.get("FLEETCTL_TESTBED_RUN_DIR", "/run/fleetctl-testbed"))

TEST_LABEL = "io.fleetctl.test"
SESSION_LABEL = "io.fleetctl.test.session"
OWNER_LABEL = "io.fleetctl.owner"
FLEET_LABEL = "io.fleetctl.fleet"


def _ours(fleet: str) -> bool:
    """Whether a fleet name is one this pytest process made (test fleets end in -PID)."""
    return fleet.endswith(f"-{os.getpid()}")


#: Ports the integration tests use for their own containers (host networking,
#: 127.0.0.1). fleetctl host definitions in tests should use the per-engine
#: ranges in ``Testbed.port_ranges`` instead, so the two never meet.
TEST_PORT_RANGE = (18000, 18999)
STALE_AFTER_S = 30 * 60
PORT_BLOCK_SIZE = 10


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "integration: runs against the real Docker test bed (tests/testbed/setup.sh); needs root",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@dataclasses.dataclass(frozen=True)
class Images:
    """Tags of the test bed images (all built locally by tests/testbed/images.sh)."""

    base: str = "fleetctl-testbed/base:bookworm"
    triton: str = "fleetctl-testbed/tritonserver:2.51"
    nim_standin: str = "fleetctl-testbed/nim-standin:1"
    nim_standin_v2: str = "fleetctl-testbed/nim-standin:2"
    tiny: str = "fleetctl-testbed/tiny:1"
    front_door: str = "fleetctl-testbed/front-door:1"

    @property
    def on_every_engine(self) -> tuple[str, ...]:
        """Images present on engines a, b and c (the Triton image is on a only)."""
        return (self.base, self.nim_standin, self.nim_standin_v2, self.tiny, self.front_door)


@dataclasses.dataclass
class Testbed:
    """What the integration tests need to reach the test bed."""

    __test__ = False  # not a test class, despite the name

    host_a: str
    host_b: str
    host_c: str
    images: Images
    model_repository: Path
    run_dir: Path
    #: Suggested, non-overlapping host port ranges for fleetctl host
    #: definitions (the engines share one loopback).
    port_ranges: dict[str, tuple[int, int]] = dataclasses.field(
        default_factory=lambda: {"a": (20000, 20999), "b": (21000, 21999), "c": (22000, 22999)}
    )
    #: This pytest session's id (several sessions may share the engines).
    session: str = dataclasses.field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    )

    @property
    def test_labels(self) -> dict[str, str]:
        """Labels every container a test starts directly should carry."""
        return {TEST_LABEL: "1", SESSION_LABEL: self.session}

    _clients: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def hosts(self) -> dict[str, str]:
        """Engine name -> Docker address, e.g. ``{"a": "unix:///run/fleetctl-testbed/a.sock", ...}``."""
        return {"a": self.host_a, "b": self.host_b, "c": self.host_c}

    def client(self, engine: str = "a"):
        """A docker SDK client for engine ``a``, ``b`` or ``c`` (cached)."""
        import docker

        if engine not in self._clients:
            self._clients[engine] = docker.DockerClient(base_url=self.hosts[engine], timeout=120)
        return self._clients[engine]

    def cleanup(
        self,
        since: float | None = None,
        until: float | None = None,
        owned: bool = True,
        any_session: bool = False,
    ) -> int:
        """Remove test containers on every engine; returns how many were removed.

        Candidates are containers labelled ``io.fleetctl.test=1`` and, with
        ``owned``, those carrying any ``io.fleetctl.owner`` label. Containers
        labelled with *another* session's ``io.fleetctl.test.session`` are
        left alone unless ``any_session``. ``since`` / ``until`` (epoch
        seconds) limit it to containers created in that window, so that a
        per-test cleanup spares the containers of wider-scoped fixtures and of
        other people using the same engines.
        """
        import docker.errors

        removed = 0
        filters = [{"label": f"{TEST_LABEL}=1"}] + ([{"label": OWNER_LABEL}] if owned else [])
        for engine in self.hosts:
            api = self.client(engine).api
            ids: set[str] = set()
            for flt in filters:
                ids.update(c["Id"] for c in api.containers(all=True, filters=flt))
            for cid in ids:
                try:
                    attrs = api.inspect_container(cid)
                    labels = attrs["Config"].get("Labels") or {}
                    other = labels.get(SESSION_LABEL)
                    if other and other != self.session and not any_session:
                        continue
                    if not other and not any_session and not _ours(labels.get(FLEET_LABEL, "")):
                        continue  # a managed container of another session's fleet
                    created = _created_epoch(attrs["Created"])
                    if (since is not None and created < since) or (
                        until is not None and created >= until
                    ):
                        continue
                    api.remove_container(cid, force=True, v=True)
                    removed += 1
                except docker.errors.NotFound:  # already gone (e.g. --rm, or removed by its test)
                    pass
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:  # 409: someone else is removing it right now
                        raise
        return removed

    @staticmethod
    def take_port_block() -> PortBlock:
        """A fresh block of free 127.0.0.1 ports (for fixtures wider than a test)."""
        return _ALLOCATOR.take()

    @staticmethod
    def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
        """Poll ``predicate`` until it returns a truthy value and return that value."""
        return wait_until(predicate, timeout, interval, what)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def _created_epoch(created: str) -> float:
    """Docker's RFC 3339 "Created" (nanoseconds, UTC) as epoch seconds."""
    stamp = created.rstrip("Z")
    if "." in stamp:
        whole, frac = stamp.split(".", 1)
        stamp = f"{whole}.{frac[:6]}"
    else:
        stamp += ".0"
    dt = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f")
    return dt.replace(tzinfo=datetime.UTC).timestamp()


def _skip_or_fail_setup(proc: subprocess.CompletedProcess) -> None:
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    if shutil.which("dockerd") is None:
        pytest.skip(
            "integration test bed unavailable: docker.io could not be installed with apt-get\n"
            + tail
        )
    pytest.fail(f"tests/testbed/setup.sh failed (rc={proc.returncode}):\n{tail}", pytrace=False)


@pytest.fixture(scope="session")
def testbed() -> Testbed:
    """Run tests/testbed/setup.sh once and describe the running test bed."""
    if os.geteuid() != 0:
        pytest.skip("integration test bed needs root (it runs its own Docker engines)")
    if shutil.which("dockerd") is None and shutil.which("apt-get") is None:
        pytest.skip(
            "integration test bed unavailable: no dockerd and no apt-get to install docker.io"
        )
    proc = subprocess.run(
        ["bash", str(SETUP_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=1800,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        _skip_or_fail_setup(proc)

    hosts = {e: f"unix://{RUN_DIR}/{e}.sock" for e in "abc"}
    env_file = RUN_DIR / "env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.startswith("export FLEETCTL_TESTBED_HOST_"):
                key, _, value = line[len("export ") :].partition("=")
                hosts[key[-1].lower()] = value
    for engine, url in hosts.items():
        os.environ.setdefault(f"FLEETCTL_TESTBED_HOST_{engine.upper()}", url)

    bed = Testbed(
        host_a=hosts["a"],
        host_b=hosts["b"],
        host_c=hosts["c"],
        images=Images(),
        model_repository=REPO_ROOT / "tests" / "testbed" / "models",
        run_dir=RUN_DIR,
    )
    started = time.time() - 0.001
    # Leftovers of an interrupted earlier run: test-only containers older than
    # STALE_AFTER_S (younger ones may belong to a session running beside us).
    bed.cleanup(until=started - STALE_AFTER_S, owned=False, any_session=True)
    yield bed
    # Only test-labelled containers here: io.fleetctl.owner containers are
    # removed per test by ``docker_cleanup``, so that people using the same
    # engines (a demo, another session) do not lose theirs when this ends.
    bed.cleanup(since=started, owned=False)
    bed.close()


@pytest.fixture
def docker_cleanup(testbed: Testbed):
    """After the test, remove the containers labelled io.fleetctl.test=1 or
    io.fleetctl.owner=* that were created while it ran (on all three engines)."""
    started = time.time() - 0.001
    yield testbed
    testbed.cleanup(since=started)


@dataclasses.dataclass(frozen=True)
class PortBlock:
    """Consecutive 127.0.0.1 ports that were free when handed out."""

    start: int
    size: int

    @property
    def ports(self) -> list[int]:
        return list(range(self.start, self.start + self.size))

    def __getitem__(self, i: int) -> int:
        if not 0 <= i < self.size:
            raise IndexError(i)
        return self.start + i

    def __iter__(self):
        return iter(self.ports)


class _PortAllocator:
    def __init__(self, lo: int, hi: int, size: int) -> None:
        self.lo, self.hi, self.size = lo, hi, size
        self.nblocks = (hi - lo + 1) // size
        # Start at a pid-dependent block so two sessions on one machine rarely meet.
        self.next = (os.getpid() * 7) % self.nblocks
        self.lock = threading.Lock()

    @staticmethod
    def _free(port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    def take(self) -> PortBlock:
        with self.lock:
            for _ in range(self.nblocks):
                start = self.lo + self.next * self.size
                self.next = (self.next + 1) % self.nblocks
                if all(self._free(p) for p in range(start, start + self.size)):
                    return PortBlock(start, self.size)
        raise RuntimeError(f"no free block of {self.size} ports in {self.lo}-{self.hi}")


_ALLOCATOR = _PortAllocator(*TEST_PORT_RANGE, PORT_BLOCK_SIZE)


@pytest.fixture
def port_block() -> PortBlock:
    """Ten free ports on 127.0.0.1 in 18000-18999, not handed to any other test."""
    return _ALLOCATOR.take()


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - polling a server that may not be up
            last_exc = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"{what} not reached within {timeout:.0f}s (last error: {last_exc!r})"
            )
        time.sleep(interval)


# -- fleets under test -------------------------------------------------------------------

CANARY = "nvapi-CANARY-7f3e1d9a2b"
# fleetctl host port ranges for the tests' fleets: a block of 100 per host, never reused
# within a session (engines share one loopback). Blocks are claimed across processes
# through files under the run directory, so that two sessions on one machine never
# hand out the same block while both are alive.
FLEET_PORTS = (23000, 64999)
FLEET_PORT_BLOCK = 100


class _FleetPortClaims:
    def __init__(self, lo: int, hi: int, size: int) -> None:
        self.starts = list(range(lo, hi - size + 2, size))
        self.next = 0
        self.lock = threading.Lock()

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _claim(self, start: int) -> bool:
        claims = RUN_DIR / "port-claims"
        claims.mkdir(parents=True, exist_ok=True)
        path = claims / str(start)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    holder = int(path.read_text().strip() or 0)
                except (OSError, ValueError):
                    holder = 0
                if holder == os.getpid():
                    return False  # ours already, handed out earlier in this session
                if holder and self._alive(holder):
                    return False
                path.unlink(missing_ok=True)  # a dead session's claim
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return True
        return False

    def __next__(self) -> int:
        with self.lock:
            for _ in range(len(self.starts)):
                start = self.starts[self.next]
                self.next = (self.next + 1) % len(self.starts)
                if self._claim(start):
                    return start
        raise RuntimeError("every fleet port block is claimed by a live test session")


_fleet_ports = _FleetPortClaims(*FLEET_PORTS, FLEET_PORT_BLOCK)
_fleet_names = itertools.count()


def run_fleetctl(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, with the canary NGC_API_KEY in its environment."""
    full_env = {**os.environ, "NGC_API_KEY": CANARY, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "fleetctl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )


class FleetUnderTest:
    """An inventory on the test bed (its own fleet name and ports), a state database,
    and the CLI calls the tests make against them."""

    canary = CANARY

    def __init__(
        self,
        tmp_path: Path,
        testbed: Testbed,
        hosts: dict[str, str] | None = None,
        state: str | None = None,
    ) -> None:
        self.tmp = tmp_path
        self.testbed = testbed
        self.path = tmp_path / "fleet.yaml"
        # A state URL (postgresql://…) is also every CLI call's $FLEETCTL_STATE.
        from fleetctl.state.paths import parse_state_location

        self.state: Any = parse_state_location(state) if state else tmp_path / "state.db"
        self.state_env = {"FLEETCTL_STATE": state} if state else {}
        self.prom = tmp_path / "textfile" / "fleetctl.prom"
        self.hosts = hosts or {"host-a": testbed.host_a}
        self.ranges = {name: next(_fleet_ports) for name in self.hosts}
        self.name = f"t{next(_fleet_names)}-{os.getpid()}"
        self.models: list[dict[str, Any]] = []
        self.outputs: list[str] = []
        self.gpus: dict[str, Any] = {"count": 2, "memory_gb": 80, "model": "H100-80GB"}  # per host
        # Every host's front door listens at the top of its port range (the default).
        self.front_door: dict[str, Any] = {"image": testbed.images.front_door}

    def nim(
        self,
        name: str,
        image: str | None = None,
        *,
        memory: float = 10,
        env: dict[str, str] | None = None,
        timeout: float = 60,
        version: str = "1",
        **kw: Any,
    ) -> dict[str, Any]:
        m = {
            "name": name,
            "version": version,
            "runtime": "nim",
            "image": image or self.testbed.images.nim_standin,
            "gpu_memory_gb": memory,
            "env": env or {},
            "nim": {
                "served_model_name": name,
                "cache_dir": str(self.tmp / "nim-cache"),
                "startup_timeout_s": timeout,
            },
            **kw,
        }
        self.models.append(m)
        return m

    def triton(self, name: str, *, memory: float = 2, **kw: Any) -> dict[str, Any]:
        m = {
            "name": name,
            "version": "1",
            "runtime": "triton",
            "image": self.testbed.images.triton,
            "gpu_memory_gb": memory,
            "sla_ms": 50,
            "triton": {
                "model_repository": str(self.testbed.model_repository),
                "models": [name],
                "server_binary": "/opt/tritonserver/bin/tritonserver",
                "startup_timeout_s": 120,
            },
            **kw,
        }
        self.models.append(m)
        return m

    def write(self) -> None:
        hosts = [
            {
                "name": name,
                "docker": url,
                "simulated": True,
                "gpus": dict(self.gpus),
                "network": "host",
                "address": "127.0.0.1",
                "ports": f"{self.ranges[name]}-{self.ranges[name] + 99}",
                "labels": {"name": name},
            }
            for name, url in self.hosts.items()
        ]
        doc = {
            "fleet": self.name,
            "front_door": self.front_door,
            "hosts": hosts,
            "models": self.models,
            **getattr(self, "extra", {}),
        }
        self.path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def cli(
        self, *args: str, inventory: bool = True, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        self.write()
        if self.state_env:
            kw["env"] = {**self.state_env, **(kw.get("env") or {})}
        r = run_fleetctl(*args, *(["-f", str(self.path)] if inventory else []), **kw)
        self.outputs.append(r.stdout + r.stderr)
        return r

    def apply(self, *extra: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.cli("apply", "--yes", "--state", str(self.state), *extra, **kw)

    def status(self) -> dict[str, Any]:
        r = self.cli("status", "--output", "json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def deployment(self, name: str) -> dict[str, Any]:
        """A deployment's status, or for a Triton model in a shared server, its server's."""
        rows = self.status()["deployments"]
        return next(
            (d for d in rows if d["deployment"] == name),
            None,
        ) or next(d for d in rows if any(m["deployment"] == name for m in d.get("members", ())))

    def endpoint(self, name: str, replica: int = 0) -> str:
        return self.deployment(name)["replicas"][replica]["endpoint"]

    def container(self, deployment: str, replica: int = 0) -> str:
        return f"fleetctl-{self.name}-{deployment.replace('@', '-')}-{replica}"

    def ids(self, engine: str = "a", *, front_door: bool = False) -> dict[str, str]:
        """This fleet's managed replica containers on one engine (with `front_door`, its
        front door instead): name -> id."""
        api = self.testbed.client(engine).api
        flt = {"label": ["io.fleetctl.owner=fleetctl", f"io.fleetctl.fleet={self.name}"]}
        rows = api.containers(all=True, filters=flt)
        return {
            r["Names"][0].lstrip("/"): r["Id"]
            for r in rows
            if ((r.get("Labels") or {}).get("io.fleetctl.role") == "front-door") == front_door
        }

    def front_door_url(self, host: str | None = None) -> str:
        """The URL clients use on `host` (default: the first host)."""
        name = host or next(iter(self.hosts))
        port = self.front_door.get("port") or self.ranges[name] + 99
        return f"http://127.0.0.1:{port}"

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of one read-only statement on the fleet's state, SQLite file or PostgreSQL
        (`?` placeholders on both), so that tests read the state the same way on either."""
        from fleetctl.state.paths import is_database

        if is_database(self.state):
            from fleetctl.state.pg import connect, qmark

            with connect(self.state, autocommit=True) as conn:
                return [tuple(r) for r in conn.execute(qmark(sql), params).fetchall()]
        import sqlite3

        db = sqlite3.connect(self.state)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()


class SteadyLoad:
    """A client sending one request after another (about every `interval_s`) in a thread,
    counting every failure: an exception or a status other than 200."""

    def __init__(
        self,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        interval_s: float = 0.02,
    ) -> None:
        self.url, self.body, self.headers, self.interval_s = url, body, headers or {}, interval_s
        self.ok = 0
        self.failures: list[str] = []
        self.failed_at: list[float] = []  # time.monotonic() of each failure
        self.served_by: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(self.url, json=self.body, headers=self.headers)
                    if r.status_code == 200:
                        self.ok += 1
                        self.served_by.append(r.headers.get("x-fleetctl-deployment", ""))
                    else:
                        self.failures.append(f"{r.status_code} {r.text[:200]}")
                        self.failed_at.append(time.monotonic())
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    self.failed_at.append(time.monotonic())
                time.sleep(self.interval_s)

    def __enter__(self) -> SteadyLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


@pytest.fixture
def steady_load():
    """`steady_load(url, body, headers=None)`: a context manager sending requests in a
    thread until it exits; `.failures`, `.ok` and `.served_by` tell what happened."""
    return SteadyLoad


# FLEETCTL_TEST_STATE=postgresql runs every fleet of the suite on a PostgreSQL state
# (a fresh database each) instead of a SQLite file: the suite on the other backend.
STATE_BACKEND = os.environ.get("FLEETCTL_TEST_STATE", "sqlite")


@pytest.fixture
def make_fleet(
    tmp_path: Path, testbed: Testbed, docker_cleanup: Testbed, request: pytest.FixtureRequest
):
    """`make_fleet(hosts={name: docker_url}, tmp=DIR, state=URL)`: a fleet on chosen
    engines (default: a), its files in DIR (default: the test's tmp_path; give each fleet
    of a test its own), with its state in a SQLite file or at a state URL."""

    def make(
        hosts: dict[str, str] | None = None, tmp: Path | None = None, state: str | None = None
    ) -> FleetUnderTest:
        if tmp is not None:
            tmp.mkdir(parents=True, exist_ok=True)
        if state is None and STATE_BACKEND == "postgresql":
            server = request.getfixturevalue("postgres_server")
            state = server.url(server.new_database())
        return FleetUnderTest(tmp or tmp_path, testbed, hosts, state)

    return make


@pytest.fixture
def fleet(make_fleet) -> FleetUnderTest:
    """A fleet on engine a."""
    return make_fleet()


@pytest.fixture
def fleetctl_run():
    """The real CLI in a subprocess (see run_fleetctl)."""
    return run_fleetctl


from .testbed_hosts import *  # noqa: E402,F401,F403  the registry and namespace-host fixtures


@pytest.fixture
def suite_state(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The state for a test that writes its own inventory instead of using make_fleet: a
    SQLite file under tmp_path, or, with FLEETCTL_TEST_STATE=postgresql, a fresh
    PostgreSQL database (as make_fleet gives its fleets)."""
    if STATE_BACKEND == "postgresql":
        server = request.getfixturevalue("postgres_server")
        return server.url(server.new_database())
    return str(tmp_path / "state.db")
