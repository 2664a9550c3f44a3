"""Faults mid-apply end in one line and a documented exit code, and the next run
reconciles: a Docker daemon that goes away, a container in a crash loop."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fleetctl.errors import ExitCode


class DaemonLink:
    """A unix socket that forwards to a real engine's socket, and can be cut: to the
    client it is the daemon dying (connections reset, new ones refused)."""

    def __init__(self, path: Path, target: str) -> None:
        self.path, self.target = path, target.removeprefix("unix://")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(64)
        self.conns: list[socket.socket] = []
        self.cut_at: float | None = None
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.cut_at = time.monotonic()
        self.listener.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        self.path.unlink(missing_ok=True)


def _apply_until_a_replacement_starts(fleet: Any) -> subprocess.Popen[str]:
    """`apply` of the fleet as written, in the background, returned once its first new
    container (`-next`) exists (or after 60 s)."""
    fleet.write()
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
    deadline = time.monotonic() + 60
    while not any(n.endswith("-next") for n in fleet.ids()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return proc


def test_a_daemon_lost_mid_apply_ends_in_one_line_and_exit_6_and_the_next_apply_converges(
    make_fleet: Any, testbed: Any
) -> None:
    fleet = make_fleet()
    link = DaemonLink(fleet.tmp / "engine-a.sock", testbed.host_a)
    fleet.hosts = {"host-a": link.url}
    for i in range(3):
        fleet.nim(
            f"m{i}",
            testbed.images.nim_standin,
            memory=10,
            env={"STANDIN_START_DELAY_S": "4"},
            timeout=30,
        )
    fleet.front_door = {"enabled": False}
    proc = _apply_until_a_replacement_starts(fleet)
    link.cut()
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == ExitCode.HOST_UNREACHABLE, out + err
    assert "Traceback" not in out + err
    assert "host unreachable" in out
    # The daemon is back (here: the engine never stopped; the link is made again).
    link = DaemonLink(fleet.tmp / "engine-a.sock", testbed.host_a)
    again = fleet.apply()
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(fleet.ids()) == sorted(fleet.container(f"m{i}@1") for i in range(3))
    assert fleet.apply().stdout.count("nothing to do") == 1


def test_a_crash_looping_replica_is_reported_by_plan_status_and_health(
    fleet: Any, testbed: Any
) -> None:
    fleet.nim(
        "loop",
        testbed.images.nim_standin,
        memory=10,
        env={"STANDIN_CRASH_AFTER_S": "2"},
        timeout=30,
    )
    fleet.front_door = {"enabled": False}
    assert fleet.apply().returncode == 0  # ready before its first crash
    api = testbed.client().api
    name = fleet.container("loop@1")
    deadline = time.monotonic() + 60
    while api.inspect_container(name)["RestartCount"] < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    import json

    plan = json.loads(fleet.cli("plan", "--output", "json").stdout)
    (action,) = [a for a in plan["actions"] if a["deployment"] == "loop@1"]
    assert action["kind"] == "recreate" and "crash-looping" in action["reason"], action
    states = [r["state"] for r in fleet.deployment("loop@1")["replicas"]]
    assert states == ["crash-looping"], states
    first = fleet.cli("health", "--output", "json", "--state", str(fleet.state))
    assert "crash-looping" in first.stdout, first.stdout  # reported at once, as drift
    # Once the restart count has risen between two sweeps, the verdict says so too.
    seen = api.inspect_container(name)["RestartCount"]
    deadline = time.monotonic() + 60
    while api.inspect_container(name)["RestartCount"] <= seen and time.monotonic() < deadline:
        time.sleep(0.2)
    second = fleet.cli("health", "--output", "json", "--state", str(fleet.state))
    assert second.returncode in (ExitCode.UNHEALTHY, ExitCode.DEGRADED), (
        second.stdout + second.stderr
    )


def _mount_small_disk(where: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    where.mkdir()
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
            capture_output=True,
        ).returncode
        == 0
    )


def _fill(disk: Path) -> None:
    """Write until the kernel answers ENOSPC, down to the last byte."""
    for size in (65536, 4096, 512, 1):
        try:
            with open(disk / "filler", "ab", buffering=0) as fh:
                while True:
                    fh.write(b"\0" * size)
        except OSError:
            pass


def test_a_disk_filling_mid_rollout_ends_in_one_line_and_the_next_apply_reconciles(
    make_fleet: Any, testbed: Any, tmp_path: Path
) -> None:
    import json
    import sqlite3

    import pytest

    disk = tmp_path / "disk"
    if not _mount_small_disk(disk, "3m"):
        pytest.skip("mounting a tmpfs needs root")
    try:
        fleet = make_fleet(state=None)
        # A full disk under a SQLite state: SQLite on either pass of the suite (on
        # FLEETCTL_TEST_STATE=postgresql too), since the file is what fills.
        fleet.state, fleet.state_env = disk / "state.db", {}
        fleet.nim("chat", memory=10, replicas=2, env={"STANDIN_START_DELAY_S": "2"}, timeout=30)
        fleet.front_door = {"enabled": False}
        assert fleet.apply().returncode == 0
        fleet.models[0]["env"] = {"STANDIN_START_DELAY_S": "2", "CHANGED": "1"}
        proc = _apply_until_a_replacement_starts(fleet)
        _fill(disk)
        out, err = proc.communicate(timeout=180)
        # One line, the documented exit code for a state fault, no traceback.
        assert proc.returncode == ExitCode.ERROR, out + err
        assert "Traceback" not in out + err
        assert err.count("\n") == 1 and "state" in err and ("full" in err or "No space" in err), err
        # Space is back: the next apply reconciles what the killed write left and converges.
        (disk / "filler").unlink()
        again = fleet.apply()
        assert again.returncode == 0, again.stdout + again.stderr
        ids = fleet.ids()
        assert (
            sorted(ids) == sorted(n for n in ids if not n.endswith(("-next", "-old")))
            and len(ids) == 2
        )
        assert fleet.apply().stdout.count("nothing to do") == 1
        db = sqlite3.connect(fleet.state)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM rollout WHERE outcome = 'running'").fetchone() == (
            0,
        )
        api = testbed.client().api
        for name in ids:
            labels = api.inspect_container(name)["Config"]["Labels"]
            row = db.execute(
                "SELECT outcome FROM revision WHERE deployment = ? AND number = ?",
                (labels["io.fleetctl.deployment"], int(labels["io.fleetctl.revision"])),
            ).fetchone()
            assert row == ("applied",), (name, labels["io.fleetctl.revision"], row)
        # The rollout the full disk stopped is in the history, not lost or left running.
        history = json.loads(
            fleet.cli("history", "--output", "json", "--state", str(fleet.state)).stdout
        )
        stopped = [r for r in history["rollouts"] if r["outcome"] != "succeeded"]
        assert [(r["outcome"], r["summary"]) for r in stopped] == [
            ("failed", "interrupted before it finished")
        ], history
        assert len(history["rollouts"]) == 3
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
