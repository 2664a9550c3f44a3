"""Pure parts of the Docker host adapter's transports: the bounds fleetctl adds to the
system ssh client, and how an engine's pull error is said."""

from __future__ import annotations

from fleetctl.adapters.docker_host import _dedup, ssh_options


def test_ssh_is_bounded_by_the_client_timeout_and_never_prompts() -> None:
    opts = ssh_options(10)
    pairs = dict(o.split("=", 1) for o in opts if o != "-o")
    assert pairs == {
        "ConnectTimeout": "10",
        "ServerAliveInterval": "10",
        "ServerAliveCountMax": "3",
        "BatchMode": "yes",
    }
    assert opts[::2] == ["-o"] * 4
    assert dict(o.split("=", 1) for o in ssh_options(0.2) if o != "-o")["ConnectTimeout"] == "1"


def test_an_engine_repeating_the_registry_is_said_once() -> None:
    assert (
        _dedup("manifest for x:1 not found: manifest unknown: manifest unknown")
        == "manifest for x:1 not found: manifest unknown"
    )
    assert _dedup("a: b: a") == "a: b: a"
