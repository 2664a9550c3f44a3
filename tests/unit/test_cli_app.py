"""The command line's own surface: --version, -h on every command, shell completion, and
what importing it costs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

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
        assert "╭" not in short.output, path  # one help style, the deferred commands' too
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


def _loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after `code` (this one has imported
    everything the other tests needed)."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout.splitlines()[-1]))


def test_importing_the_cli_loads_no_engine_library() -> None:
    loaded = _loaded_after("import fleetctl.cli.app")
    tops = {m.split(".")[0] for m in loaded}
    assert "typer" in tops  # the check sees what the import pulled in
    assert tops.isdisjoint(HEAVY), sorted(tops & set(HEAVY))
    # Nor the plan model, the health sweep or rich: --help and completion need none.
    assert "fleetctl.core.plan" not in loaded
    assert "fleetctl.ops.health" not in loaded
    assert "rich.console" not in loaded


RUN = """
from fleetctl.cli.app import app
from fleetctl.errors import FleetctlError
try:
    app({args!r}, prog_name="fleetctl")
except SystemExit as exc:
    assert exc.code == 0, exc.code
except FleetctlError as exc:
    assert "nothing has been applied yet" in exc.message, exc.message
"""


def test_help_and_history_without_a_state_load_no_engine_library(tmp_path: Path) -> None:
    loaded = _loaded_after(RUN.format(args=["--help"]))
    assert {m.split(".")[0] for m in loaded}.isdisjoint([*HEAVY, "pydantic", "rich"])
    # No state beside the inventory: the command says so before SQLAlchemy is imported.
    loaded = _loaded_after(RUN.format(args=["history", "-f", str(tmp_path / "fleet.yaml")]))
    assert "fleetctl.ops.history" in loaded  # the command did run
    assert {m.split(".")[0] for m in loaded}.isdisjoint(HEAVY)


def test_a_deferred_commands_summary_is_its_docstrings() -> None:
    import inspect

    from fleetctl.cli import app as cli
    from fleetctl.cli import health_cmd

    doc = inspect.getdoc(health_cmd.health) or ""
    assert cli.HEALTH_SUMMARY == " ".join(doc.split("\n\n")[0].split())
