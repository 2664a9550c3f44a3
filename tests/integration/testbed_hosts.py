"""Fixtures for the parts of the test bed beyond the three local engines (imported by
conftest.py): the image registry on loopback (tests/testbed/registry.sh).

``registry``  (session) a :class:`Registry`: the test bed's registry at
              ``127.0.0.1:PORT``, with the small test bed images pushed to it by
              setup.sh under ``127.0.0.1:PORT/fleetctl-testbed/...``.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path

import httpx
import pytest

__all__ = ["registry"]  # what conftest.py takes in: the fixtures

RUN_DIR = Path(os.environ.get("FLEETCTL_TESTBED_RUN_DIR", "/run/fleetctl-testbed"))
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def testbed_env(name: str) -> str | None:
    """A value from the test bed's env file (`export NAME=VALUE` lines), else the environment."""
    env_file = RUN_DIR / "env"
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
        r = httpx.head(f"http://{self.address}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_V2}, timeout=10)
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
        put = httpx.put(f"{base}/{new}", content=got.content, headers={"Content-Type": MANIFEST_V2}, timeout=10)
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
