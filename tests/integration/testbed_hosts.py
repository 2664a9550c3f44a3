"""Fixtures for the parts of the test bed beyond the three local engines (imported by
conftest.py): the image registry on loopback (tests/testbed/registry.sh) and the two
remote hosts in network namespaces (tests/testbed/netns.sh).

``registry``         (session) a :class:`Registry`: the test bed's registry at
                     ``127.0.0.1:PORT``, with the small test bed images pushed to it by
                     setup.sh under ``127.0.0.1:PORT/fleetctl-testbed/...``.
``namespace_hosts``  (session) a :class:`NamespaceHosts`: the ssh:// and TLS tcp://
                     hosts, their addresses and TLS material, and fault switches.
``remote_fleet``     (function) a :class:`RemoteFleet` on those two hosts; its
                     containers there are removed after the test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .conftest import FleetUnderTest

__all__ = ["registry", "namespace_hosts", "remote_fleet"]  # what conftest.py takes in: the fixtures

RUN_DIR = Path(os.environ.get("FLEETCTL_TESTBED_RUN_DIR", "/run/fleetctl-testbed"))
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def testbed_env(name: str) -> str | None:
    """A value from the test bed's env files (`export NAME=VALUE` lines: `env`, and each
    part's own `*.env`), else the environment."""
    for env_file in [RUN_DIR / "env", *sorted(RUN_DIR.glob("*.env"))]:
        if env_file.exists():
            for line in env_file.read_text().splitlines():
                key, _, value = line.removeprefix("export ").partition("=")
                if key == name:
                    return value
    return os.environ.get(name)


@dataclasses.dataclass(frozen=True)
class Registry:
    """The test bed's registry on loopback (Debian's docker-registry 2.8, plain HTTP)."""

    address: str  # 127.0.0.1:PORT

    def image(self, name: str) -> str:
        """`fleetctl-testbed/tiny:1` -> `127.0.0.1:PORT/fleetctl-testbed/tiny:1`."""
        return f"{self.address}/{name}"

    def digest(self, name: str) -> str | None:
        """The manifest digest the registry holds for `repo:tag` (None: it has none)."""
        repo, _, tag = name.rpartition(":")
        r = httpx.head(
            f"http://{self.address}/v2/{repo}/manifests/{tag}",
            headers={"Accept": MANIFEST_V2},
            timeout=10,
        )
        return r.headers.get("docker-content-digest") if r.status_code == 200 else None

    def fresh_tag(self, name: str) -> str:
        """A new tag, unique to this call, for the image `repo:tag` the registry holds
        (the same manifest put under another tag, through the registry's API): a name no
        engine has pulled yet. Returns the full image reference."""
        repo, _, tag = name.rpartition(":")
        base = f"http://{self.address}/v2/{repo}/manifests"
        got = httpx.get(f"{base}/{tag}", headers={"Accept": MANIFEST_V2}, timeout=10)
        got.raise_for_status()
        new = f"{tag}-{uuid.uuid4().hex[:10]}"
        put = httpx.put(
            f"{base}/{new}", content=got.content, headers={"Content-Type": MANIFEST_V2}, timeout=10
        )
        put.raise_for_status()
        return self.image(f"{repo}:{new}")


@pytest.fixture(scope="session")
def registry(testbed) -> Registry:
    """The registry setup.sh started; fails (not skips) when it does not answer."""
    address = testbed_env("FLEETCTL_TESTBED_REGISTRY")
    if not address:
        pytest.fail("the test bed has no registry (tests/testbed/registry.sh up)", pytrace=False)
    try:
        httpx.get(f"http://{address}/v2/", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.fail(f"the test bed's registry does not answer at {address}: {exc}", pytrace=False)
    return Registry(address)


# -- remote hosts in network namespaces (tests/testbed/netns.sh) ---------------------------


@dataclasses.dataclass(frozen=True)
class NamespaceHosts:
    """The two namespace hosts: `ssh` and `tls` are fleetctl `docker:` URLs."""

    ssh: str  # ssh://root@10.201.0.2
    tls: str  # tcp://10.201.0.6:2376
    tls_dir: Path  # ca.pem, client-cert.pem, client-key.pem

    @property
    def addresses(self) -> dict[str, str]:
        return {
            "ssh": self.ssh.rpartition("@")[2],
            "tls": self.tls.removeprefix("tcp://").rpartition(":")[0],
        }

    @property
    def tls_block(self) -> dict[str, str]:
        """The inventory's `tls:` for the TLS host: paths, never the certificates."""
        d = self.tls_dir
        return {
            "ca_cert": str(d / "ca.pem"),
            "client_cert": str(d / "client-cert.pem"),
            "client_key": str(d / "client-key.pem"),
        }

    def local_client(self, host: str) -> Any:
        """A docker client on the host's own unix socket (for checks and clean-up)."""
        import docker

        return docker.DockerClient(base_url=f"unix://{RUN_DIR}/ns-{host}.sock", timeout=60)

    @contextlib.contextmanager
    def sshd_stopped(self) -> Iterator[None]:
        """sshd of the ssh host frozen (SIGSTOP): connections open, and nothing answers."""
        pid = int((RUN_DIR / "ns-ssh-sshd.pid").read_text().strip())
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    @contextlib.contextmanager
    def tls_dropped(self) -> Iterator[None]:
        """Every packet to the TLS host's Docker port dropped inside its namespace (this
        kernel has no netem: 100% loss, made with iptables)."""
        rule = ["INPUT", "-p", "tcp", "--dport", "2376", "-j", "DROP"]
        ns = ["ip", "netns", "exec", "fleetctl-tls", "iptables"]
        subprocess.run([*ns, "-I", *rule], check=True, timeout=30)
        try:
            yield
        finally:
            subprocess.run([*ns, "-D", *rule], check=True, timeout=30)


@pytest.fixture(scope="session")
def namespace_hosts(testbed) -> NamespaceHosts:
    """The namespace hosts setup.sh started; fails (not skips) when they do not answer."""
    ssh, tls, tls_dir = (
        testbed_env(f"FLEETCTL_TESTBED_{k}") for k in ("SSH_HOST", "TLS_HOST", "TLS_DIR")
    )
    if not (ssh and tls and tls_dir):
        pytest.fail(
            "the test bed has no namespace hosts (tests/testbed/netns.sh up)", pytrace=False
        )
    return NamespaceHosts(ssh, tls, Path(tls_dir))


class RemoteFleet(FleetUnderTest):
    """A fleet on the ssh host (`ssh-host`) and the TLS host (`tls-host`), each declared
    with its namespace address and, for TLS, the paths of its certificates."""

    def __init__(
        self, tmp_path: Path, testbed: Any, ns: NamespaceHosts, state: str | None = None
    ) -> None:
        super().__init__(tmp_path, testbed, {"ssh-host": ns.ssh, "tls-host": ns.tls}, state)
        self.ns = ns
        self.address = {"ssh-host": ns.addresses["ssh"], "tls-host": ns.addresses["tls"]}

    def write(self) -> None:
        super().write()
        doc = yaml.safe_load(self.path.read_text())
        for h in doc["hosts"]:
            h["address"] = self.address[h["name"]]
            if h["name"] == "tls-host":
                h["tls"] = self.ns.tls_block
        self.path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def front_door_url(self, host: str | None = None) -> str:
        name = host or "ssh-host"
        port = self.front_door.get("port") or self.ranges[name] + 99
        return f"http://{self.address[name]}:{port}"

    def remote_ids(self, host: str) -> dict[str, str]:
        """This fleet's managed containers on `ssh` or `tls` (front doors included): name -> id."""
        client = self.ns.local_client(host)
        try:
            rows = client.api.containers(
                all=True, filters={"label": f"io.fleetctl.fleet={self.name}"}
            )
        finally:
            client.close()
        return {r["Names"][0].lstrip("/"): r["Id"] for r in rows}

    def remove_all(self) -> None:
        for host in ("ssh", "tls"):
            client = self.ns.local_client(host)
            try:
                for r in client.api.containers(
                    all=True, filters={"label": f"io.fleetctl.fleet={self.name}"}
                ):
                    client.api.remove_container(r["Id"], force=True, v=True)
            finally:
                client.close()


@pytest.fixture
def remote_fleet(
    tmp_path: Path, testbed, namespace_hosts: NamespaceHosts, request: pytest.FixtureRequest
) -> Iterator[RemoteFleet]:
    """A fleet on the two namespace hosts; on FLEETCTL_TEST_STATE=postgresql its state is
    a fresh PostgreSQL database, as for make_fleet."""
    from .conftest import STATE_BACKEND

    state = None
    if STATE_BACKEND == "postgresql":
        server = request.getfixturevalue("postgres_server")
        state = server.url(server.new_database())
    fleet = RemoteFleet(tmp_path, testbed, namespace_hosts, state)
    yield fleet
    fleet.remove_all()
