"""Signals, a second fleetctl on the same fleet, and faults mid-apply, on real engines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from fleetctl.errors import ExitCode


def _start_apply(fleet: Any, *extra: str, state: Path | None = None) -> subprocess.Popen[str]:
    fleet.write()
    env = {**os.environ, "NGC_API_KEY": fleet.canary, "COLUMNS": "200"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleetctl",
            "apply",
            "-f",
            str(fleet.path),
            "--yes",
            "--state",
            str(state or fleet.state),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def _wait_for_container(fleet: Any, fragment: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(fragment in n for n in fleet.ids()):
            return
        time.sleep(0.05)
    raise TimeoutError(f"no container named like {fragment}")


def _slow_fleet(fleet: Any, testbed: Any, n: int = 3) -> None:
    for i in range(n):
        fleet.nim(
            f"m{i}",
            testbed.images.nim_standin,
            memory=10,
            env={"STANDIN_START_DELAY_S": "3"},
            timeout=30,
        )
    fleet.gpus = {"count": 4, "memory_gb": 80, "model": "H100-80GB"}


def test_a_first_sigint_finishes_the_steps_in_flight_records_them_and_exits_130(
    fleet: Any, testbed: Any
) -> None:
    for i in range(3):
        fleet.nim(
            f"m{i}",
            testbed.images.nim_standin,
            memory=10,
            env={"STANDIN_START_DELAY_S": "3"},
            timeout=30,
        )
    fleet.front_door = {"enabled": False}
    fleet.write()
    doc = yaml.safe_load(fleet.path.read_text())
    doc["hosts"][0]["max_parallel"] = 1  # one container operation at a time: the steps queue
    fleet.path.write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {**os.environ, "NGC_API_KEY": fleet.canary, "COLUMNS": "200"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleetctl",
            "apply",
            "-f",
            str(fleet.path),
            "--yes",
            "--state",
            str(fleet.state),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    _wait_for_container(fleet, "-next")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "interrupted" in err
    names = list(fleet.ids())
    assert names and len(names) < 3, (
        names
    )  # the step in flight finished; the queued ones did not start
    assert not [n for n in names if n.endswith(("-next", "-old"))], names
    ((rollout_outcome, summary),) = fleet.query(
        "SELECT outcome, summary FROM rollout ORDER BY id DESC LIMIT 1"
    )
    ((ok_steps,),) = fleet.query("SELECT count(*) FROM rollout_step WHERE outcome = 'ok'")
    assert rollout_outcome == "partial" and "interrupted" in summary, (rollout_outcome, summary)
    assert ok_steps == len(names)  # history says what ran
    fleet.path.write_text(yaml.safe_dump(doc, sort_keys=False))
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleetctl",
            "apply",
            "-f",
            str(fleet.path),
            "--yes",
            "--state",
            str(fleet.state),
        ],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=180,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(fleet.ids()) == 3


def test_a_second_sigint_exits_at_once_and_the_next_apply_converges(
    fleet: Any, testbed: Any
) -> None:
    fleet.nim(
        "m0", testbed.images.nim_standin, memory=10, env={"STANDIN_START_DELAY_S": "20"}, timeout=60
    )
    fleet.front_door = {"enabled": False}
    proc = _start_apply(fleet)
    _wait_for_container(fleet, "-next")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert time.monotonic() - t0 < 5  # at once, not after the 20 s start
    again = fleet.apply()
    assert again.returncode == 0, again.stdout + again.stderr
    assert list(fleet.ids()) == [fleet.container("m0@1")]


def test_two_applies_of_one_fleet_from_two_state_files_cannot_interleave(
    fleet: Any, testbed: Any
) -> None:
    _slow_fleet(fleet, testbed, n=2)
    first = _start_apply(fleet)
    _wait_for_container(fleet, "-next")
    other_state = fleet.tmp / "elsewhere" / "state.db"
    t0 = time.monotonic()
    second = fleet.cli("apply", "--yes", "--state", str(other_state))
    assert second.returncode == ExitCode.LOCKED, second.stdout + second.stderr
    assert (
        "being changed by another fleetctl" in second.stderr and f"pid {first.pid}" in second.stderr
    )
    assert time.monotonic() - t0 < 10
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    # Released: the other state may now change the fleet (it finds it converged).
    third = fleet.cli("apply", "--yes", "--state", str(other_state))
    assert third.returncode == 0, third.stdout + third.stderr


def test_a_lease_left_by_a_killed_apply_is_taken_over_at_once_on_the_same_machine(
    fleet: Any, testbed: Any
) -> None:
    _slow_fleet(fleet, testbed, n=1)
    proc = _start_apply(fleet)
    _wait_for_container(fleet, "-next")
    proc.kill()
    proc.communicate(timeout=30)
    api = testbed.client().api
    assert api.containers(all=True, filters={"name": f"fleetctl-lease-{fleet.name}"})  # left behind
    again = fleet.apply()
    assert again.returncode == 0, again.stdout + again.stderr
    assert not api.containers(
        all=True, filters={"name": f"fleetctl-lease-{fleet.name}"}
    )  # released at the end
