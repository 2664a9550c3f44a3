"""The command line's own surface: --version, -h on every command, shell completion, and
what importing it costs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def fleetctl(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run(
        [sys.executable, "-m", "fleetctl", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )


def test_version_is_the_one_written_in_pyproject() -> None:
    wanted = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    r = fleetctl("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"fleetctl {wanted}\n"


def test_the_package_keeps_no_second_copy_of_the_version() -> None:
    import fleetctl as package

    assert not hasattr(package, "__version__")


def _commands() -> list[list[str]]:
    from typer.main import get_command

    from fleetctl.cli.app import app

    root = get_command(app)
    found: list[list[str]] = []

    def walk(group: object, path: list[str]) -> None:
        for name, cmd in getattr(group, "commands", {}).items():
            found.append([*path, name])
            walk(cmd, [*path, name])

    walk(root, [])
    return found


def test_every_command_takes_dash_h_as_well_as_help() -> None:
    from typer.testing import CliRunner

    from fleetctl.cli.app import app

    commands = _commands()
    assert ["plan"] in commands and ["state", "migrate"] in commands and len(commands) >= 12
    runner = CliRunner()
    for path in [[], *commands]:
        short = runner.invoke(app, [*path, "-h"], prog_name="fleetctl", terminal_width=160)
        long = runner.invoke(app, [*path, "--help"], prog_name="fleetctl", terminal_width=160)
        assert short.exit_code == 0, (path, short.output)
        assert "Usage: fleetctl" in short.output, path
        assert short.output == long.output, path
    # And as a user runs it.
    r = fleetctl("plan", "-h")
    assert r.returncode == 0 and "Usage: fleetctl plan" in r.stdout, r.stderr


def test_shell_completion_is_offered_and_completes_command_names() -> None:
    r = fleetctl("--help")
    assert "--install-completion" in r.stdout and "--show-completion" in r.stdout
    # What the generated bash function asks the program for, as the shell would.
    env = {
        **os.environ,
        "_FLEETCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "fleetctl pl",
        "COMP_CWORD": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "fleetctl"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.stdout.split() == ["plan"], (done.stdout, done.stderr)


def test_py_typed_ships_with_the_package() -> None:
    assert (REPO / "fleetctl" / "py.typed").is_file()
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["fleetctl"]


HEAVY = ["sqlalchemy", "sqlmodel", "docker", "ortools", "httpx", "tritonclient", "paramiko"]


@pytest.mark.parametrize("module", ["fleetctl.cli.app"])
def test_importing_the_cli_loads_no_engine_library(module: str) -> None:
    # A fresh interpreter: this one has imported everything the other tests needed.
    code = (
        f"import json, sys, {module}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert r.returncode == 0, r.stderr
    loaded = set(json.loads(r.stdout))
    assert "typer" in loaded  # the check sees what the import pulled in
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
