"""Canary secrets through every command, on the real engines: the values reach the
containers that need them and nothing fleetctl writes or prints.

Two canaries sit in fleetctl's environment: NGC_API_KEY (every NIM's key) and HF_TOKEN (a
model's `secrets:` reference, which its pinned version inherits). Every command runs with
them: validate, plan (table, JSON, saved), apply, status, health (with a Prometheus
textfile), history, report, advise, a second apply, rollback, release, down, and the
failure paths: a replica that is never ready and prints the key in its log, whole and
split over lines; and a host that cannot be reached. Inventories that write a canary into
a pin's env or a runtime's arguments are refused at validate, plan and apply. Then the
values are searched for in stdout and stderr of every call, every file under the test's
directory (state database and its WAL, saved plan, textfile) and the labels of every
container of the fleet.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from fleetctl.errors import ExitCode

pytestmark = pytest.mark.integration

HF_CANARY = "hf-CANARY-5e0c4b9d71aa"
MISSING_HOST = "unix:///run/fleetctl-testbed/missing.sock"

# A runtime from a separate package, as a third party would write one (the entry point
# group `fleetctl`): it starts the test bed's tiny image, which prints its key whole and
# cut over three lines, and never becomes ready.
LEAKY_RUNTIME = """\
from fleetctl.runtimes.hookspecs import hookimpl
from fleetctl.runtimes.spec import ContainerSpec, SecretEnv, http_health

SCRIPT = (
    'k="$NGC_API_KEY"; echo "starting with key $k"; '
    'a="${k%????????????}"; rest="${k#"$a"}"; b="${rest%??????}"; c="${rest#"$b"}"; '
    'echo "token begins $a"; echo "$b"; echo "$c (end of token)"; '
    "trap 'exit 0' TERM INT; while :; do sleep 1; done"
)


class LeakyRuntime:
    name = "leaky"

    def render(self, ctx):
        return ContainerSpec(
            image=ctx.deployment.image,
            endpoint=f"http://{ctx.address}:{ctx.port}",
            health=(http_health("/ready"),),
            startup_timeout_s=3.0,
            entrypoint=("/bin/busybox", "sh", "-c", SCRIPT),
            secret_env=(SecretEnv("NGC_API_KEY", "env:NGC_API_KEY"),),
            network_mode=ctx.network,
            gpus=ctx.gpus,
            simulated_gpus=ctx.simulated,
        )


FLEETCTL_API_VERSION = "1.0"


@hookimpl
def register_runtimes(register):
    register(LeakyRuntime())
"""


def _plugin_path(tmp: Path) -> Path:
    d = tmp / "plugin"
    info = d / "fleetctl_test_leaky-0.0.0.dist-info"
    info.mkdir(parents=True)
    (d / "fleetctl_test_leaky.py").write_text(LEAKY_RUNTIME)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fleetctl-test-leaky\nVersion: 0.0.0\n"
    )
    (info / "entry_points.txt").write_text("[fleetctl]\nleaky = fleetctl_test_leaky\n")
    return d


def _env(tmp: Path) -> dict[str, str]:
    path = os.pathsep.join(
        p for p in (str(_plugin_path(tmp)), os.environ.get("PYTHONPATH", "")) if p
    )
    return {"HF_TOKEN": HF_CANARY, "PYTHONPATH": path}


FRAGMENT = 10  # a piece of a canary this long is a leak too (a log tail cut inside it)


def _holds(text: str, canary: str) -> bool:
    """Whole, whole once line breaks are taken out (a program split it), or a fragment."""
    joined = re.sub(r"\r?\n[ \t]*", "", text)
    pieces = {canary[i : i + FRAGMENT] for i in range(len(canary) - FRAGMENT + 1)}
    return canary in joined or any(p in text for p in pieces)


def _state_rows(fleet: Any) -> str:
    """Every row of every table of the fleet's state as text: on a PostgreSQL state
    (FLEETCTL_TEST_STATE=postgresql) the scan of the files under tmp does not see it."""
    from fleetctl.state.paths import is_database

    if is_database(fleet.state):
        sql = (
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    tables = [t for (t,) in fleet.query(sql)]
    assert "revision" in tables, tables
    return "\n".join(f"{t}: {fleet.query(f'SELECT * FROM {t}')}" for t in tables)


def _nowhere(
    canaries: list[str], outputs: list[str], tmp: Path, labels: list[dict[str, str]], fleet: Any
) -> int:
    """How many places hold a canary (asserted to be 0 by the caller, with the place)."""
    found = []
    rows = _state_rows(fleet)
    found += [f"the state ({fleet.state})" for c in canaries if _holds(rows, c)]
    for i, out in enumerate(outputs):
        found += [f"output of call {i}" for c in canaries if _holds(out, c)]
    for f in sorted(tmp.rglob("*")):
        if f.is_file() and "plugin" not in f.parts:
            data = f.read_bytes().decode("utf-8", errors="replace")
            found += [str(f) for c in canaries if _holds(data, c)]
    for lab in labels:
        text = json.dumps(lab)
        found += [
            f"labels of {lab.get('io.fleetctl.deployment')}" for c in canaries if _holds(text, c)
        ]
    assert not found, found
    return len(found)


def _labels(testbed: Any, fleet: Any, engine: str = "a") -> list[dict[str, str]]:
    api = testbed.client(engine).api
    rows = api.containers(all=True, filters={"label": [f"io.fleetctl.fleet={fleet.name}"]})
    return [r.get("Labels") or {} for r in rows]


def test_canaries_reach_their_containers_and_nothing_fleetctl_writes_or_prints(
    fleet: Any, testbed: Any
) -> None:
    env = _env(fleet.tmp)
    state = ("--state", str(fleet.state))
    m = fleet.nim("chat-llm", memory=10, secrets={"HF_TOKEN": {"env": "HF_TOKEN"}})
    m["pins"] = [
        {
            "version": "0",
            "image": testbed.images.nim_standin_v2,
            "customers": ["acme"],
            "env": {"LOG_LEVEL": "info"},
        }
    ]
    labels: list[dict[str, str]] = []

    def cli(*args: str, **kw: Any) -> Any:
        return fleet.cli(*args, env=env, **kw)

    assert cli("validate").returncode == 0
    assert cli("validate", "--output", "json").returncode == 0
    assert cli("plan", *state).returncode == 0
    assert cli("plan", "--output", "json", *state).returncode == 0
    assert cli("plan", "-o", str(fleet.tmp / "plan.json"), *state).returncode == 0
    r = cli("apply", "--yes", "--plan", str(fleet.tmp / "plan.json"), *state)
    assert r.returncode == 0, r.stdout + r.stderr
    # The keys did reach the containers that need them, the pin's included...
    for name in (fleet.container("chat-llm@1"), fleet.container("chat-llm@0")):
        cenv = testbed.client().api.inspect_container(name)["Config"]["Env"]
        assert f"NGC_API_KEY={fleet.canary}" in cenv and f"HF_TOKEN={HF_CANARY}" in cenv, name
    labels += _labels(testbed, fleet)

    assert cli("status", *state).returncode == 0
    assert cli("status", "--output", "json", *state).returncode == 0
    assert cli("health", "--textfile", str(fleet.prom), *state, timeout=180).returncode in (0, 14)
    assert cli("health", "--output", "json", *state, timeout=180).returncode in (0, 14)
    assert cli("history", *state, inventory=False).returncode == 0
    assert cli("history", "chat-llm@1", "--output", "json", *state, inventory=False).returncode == 0
    assert cli("report").returncode == 0
    assert cli("report", "--output", "json").returncode == 0
    assert cli("advise").returncode == 0

    # A second revision, then a rollback to the first and a release.
    m["image"] = testbed.images.nim_standin_v2
    r = cli("apply", "--yes", *state)
    assert r.returncode == 0, r.stdout + r.stderr
    labels += _labels(testbed, fleet)
    r = cli("rollback", "chat-llm", "--yes", *state)
    assert r.returncode == 0, r.stdout + r.stderr
    labels += _labels(testbed, fleet)
    assert cli("history", "chat-llm@1", *state, inventory=False).returncode == 0
    assert cli("release", "chat-llm", *state).returncode == 0

    # A replica that prints its key, whole and split over lines, and is never ready.
    fleet.models.append(
        {
            "name": "leaky",
            "version": "1",
            "runtime": "leaky",
            "image": testbed.images.tiny,
            "gpu_memory_gb": 1,
        }
    )
    r = cli("apply", "--yes", *state)
    assert r.returncode == ExitCode.ROLLOUT_FAILED, r.stdout + r.stderr
    assert (
        "token begins" in r.stdout and "(end of token)" in r.stdout
    )  # its log was quoted, scrubbed
    r = cli("apply", "--yes", "--output", "json", *state)
    assert r.returncode == ExitCode.ROLLOUT_FAILED and "token begins" in r.stdout
    labels += _labels(testbed, fleet)
    fleet.models.pop()

    # Inventories that spell a canary out are refused before anything runs, without echoing it.
    refused = {
        "pin env by name": {"env": {"HF_TOKEN": HF_CANARY}},
        "pin env by value": {"env": {"TOKEN_FOR_DOWNLOADS": fleet.canary}},
        "pin env, unnamed": {"env": {"DOWNLOAD_WITH": HF_CANARY}},
        "pin arguments": {"nim": {"passthrough_args": f"--api-key {fleet.canary}"}},
        "pin arguments, unnamed": {"nim": {"passthrough_args": f"--download-with {HF_CANARY}"}},
    }
    kept = copy.deepcopy(m)
    for what, extra in refused.items():
        m["pins"] = [{**kept["pins"][0], **extra}]
        for args in (("validate",), ("plan", *state), ("apply", "--yes", *state)):
            r = cli(*args)
            assert r.returncode == ExitCode.INVENTORY, (what, args, r.stdout + r.stderr)
            assert "Traceback" not in r.stderr and "models[0].pins[0]" in r.stderr, (what, r.stderr)
    m["pins"] = kept["pins"]

    down = cli("down", "--yes", *state)
    assert down.returncode == 0, down.stdout + down.stderr
    assert fleet.ids() == {}

    assert _nowhere([fleet.canary, HF_CANARY], fleet.outputs, fleet.tmp, labels, fleet) == 0
    print(
        f"\n{len(fleet.outputs)} fleetctl calls, {len(labels)} container label sets: secrets found 0"
    )


def test_an_unreachable_host_and_its_failures_print_no_canary(
    make_fleet: Any, testbed: Any
) -> None:
    fleet = make_fleet(hosts={"host-a": testbed.host_a, "gone": MISSING_HOST})
    env = _env(fleet.tmp)
    state = ("--state", str(fleet.state))
    fleet.nim("here", hosts={"name": "host-a"}, secrets={"HF_TOKEN": {"env": "HF_TOKEN"}})
    fleet.nim("there", hosts={"name": "gone"}, secrets={"HF_TOKEN": {"env": "HF_TOKEN"}})
    for args in (
        ("plan", *state),
        ("apply", "--yes", *state),
        ("apply", "--yes", "--output", "json", *state),
    ):
        r = fleet.cli(*args, env=env)
        assert r.returncode in (0, ExitCode.HOST_UNREACHABLE), r.stdout + r.stderr
    assert fleet.cli("status", *state, env=env).returncode in (0, ExitCode.HOST_UNREACHABLE)
    r = fleet.cli("health", "--textfile", str(fleet.prom), *state, env=env, timeout=180)
    assert r.returncode == ExitCode.HOST_UNREACHABLE, r.stdout + r.stderr
    labels = _labels(testbed, fleet)
    assert labels, "the reachable host's replica runs"
    assert fleet.cli("down", "--yes", *state, env=env).returncode in (0, ExitCode.HOST_UNREACHABLE)
    assert _nowhere([fleet.canary, HF_CANARY], fleet.outputs, fleet.tmp, labels, fleet) == 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
