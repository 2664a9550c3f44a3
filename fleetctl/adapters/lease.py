"""A fleet's lease on one Docker host, kept through the Docker API itself.

The lease is a container that is created and never started: `fleetctl-lease-FLEET`.
Docker refuses a second container of the same name (409), so creating it is an atomic
test-and-set on the host, whoever the caller is and whatever state file it uses. Its
labels name the holder; a file inside it (`/lease.json`, written with `put_archive`)
carries a heartbeat that the holder renews while it works.

A lease whose holder is dead is taken over: at once when the holder ran on this machine
and its process is gone, else once its heartbeat has not moved for a whole
`ttl_s` (watched by the taker's own clock, so clocks need not agree). A takeover removes
the stale container *by id*, so two takers cannot remove each other's fresh lease.

The image is a tiny empty one that fleetctl imports on the host when it is missing
(`fleetctl/lease:1`): a container that never starts needs no program.
"""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
import time
from dataclasses import dataclass
from typing import Any

from fleetctl import ports
from fleetctl.core import labels as L

LEASE_IMAGE = "fleetctl/lease:1"
LEASE_FILE = "lease.json"
ROLE_LEASE = "lease"
HOLDER = L.PREFIX + "lease.holder"
COMMAND = L.PREFIX + "lease.command"
MACHINE = L.PREFIX + "lease.machine"
PID = L.PREFIX + "lease.pid"
PID_START = L.PREFIX + "lease.pid-start"


def lease_name(fleet: str) -> str:
    return f"fleetctl-lease-{fleet}"


def _pid_start(pid: int) -> str:
    """When a process started (clock ticks since boot), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


@dataclass(frozen=True)
class Holder:
    token: str  # unique per process: machine, pid, start time
    command: str
    machine: str
    pid: int
    pid_start: str
    user: str = ""

    @classmethod
    def me(cls, command: str, user: str = "") -> Holder:
        machine, pid = socket.gethostname(), os.getpid()
        start = _pid_start(pid)
        return cls(f"{machine}:{pid}:{start}", command, machine, pid, start, user)

    @property
    def labels(self) -> dict[str, str]:
        return {
            L.OWNER: L.OWNER_VALUE,
            L.ROLE: ROLE_LEASE,
            HOLDER: self.token,
            COMMAND: self.command,
            MACHINE: self.machine,
            PID: str(self.pid),
            PID_START: self.pid_start,
        }

    @classmethod
    def from_labels(cls, labels: dict[str, str]) -> Holder:
        return cls(
            labels.get(HOLDER, ""),
            labels.get(COMMAND, ""),
            labels.get(MACHINE, ""),
            int(labels.get(PID) or 0),
            labels.get(PID_START, ""),
        )

    def dead_here(self) -> bool:
        """The holder ran on this machine and its process is gone (or the pid is reused)."""
        if self.machine != socket.gethostname() or not self.pid:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        return _pid_start(self.pid) != self.pid_start


class LeaseHeld(ports.LeaseHeld):
    def __init__(self, holder: Holder, host: str) -> None:
        super().__init__(
            f"{host}: held by {holder.command!r} (pid {holder.pid} on {holder.machine})"
        )
        self.holder, self.host = holder, host


class HostLease:
    """The lease of one fleet on one host (an `APIClient` from the docker SDK)."""

    def __init__(self, api: Any, host: str, fleet: str, ttl_s: float) -> None:
        self.api, self.host, self.fleet, self.ttl_s = api, host, fleet, ttl_s
        self.name = lease_name(fleet)
        self.id: str | None = None
        self._beat = 0

    def take(self, command: str) -> None:
        """Take the lease for this process, running `command`: create it, or take over a
        dead holder's; raises LeaseHeld."""
        import docker.errors

        me = Holder.me(command)
        for _ in range(3):
            try:
                self._create(me)
                return
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise
            try:
                info = self.api.inspect_container(self.name)
            except docker.errors.NotFound:
                continue  # released meanwhile: try again
            holder = Holder.from_labels(info["Config"].get("Labels") or {})
            if holder.token == me.token:
                self.id = info["Id"]
                return  # ours already (two inventory hosts on one engine)
            if not (
                holder.dead_here() or (not self._fresh(info["Id"]) and self._stale(info["Id"]))
            ):
                raise LeaseHeld(holder, self.host)
            try:
                self.api.remove_container(info["Id"], force=True)  # by id: only the stale one
            except docker.errors.NotFound:
                pass
        raise LeaseHeld(Holder("", "another fleetctl", "?", 0, ""), self.host)

    def renew(self) -> bool:
        """Move the heartbeat on; False when the lease is no longer ours."""
        if self.id is None:
            return False
        self._beat += 1
        try:
            return bool(self.api.put_archive(self.id, "/", _heartbeat(self._beat)))
        except Exception:  # the host went away, or the lease is gone: no longer ours
            return False

    def release(self) -> None:
        if self.id is None:
            return
        try:
            self.api.remove_container(self.id, force=True)
        except Exception:  # gone already, or the host went away: the lease expires
            pass
        self.id = None

    # -- inside -------------------------------------------------------------------------
    def _create(self, me: Holder) -> None:
        import docker.errors

        try:
            created = self.api.create_container(
                LEASE_IMAGE, command=["lease"], name=self.name, labels=me.labels
            )
        except docker.errors.ImageNotFound:
            self._import_image()
            created = self.api.create_container(
                LEASE_IMAGE, command=["lease"], name=self.name, labels=me.labels
            )
        self.id = created["Id"]
        self.renew()

    def _import_image(self) -> None:
        empty = io.BytesIO()
        with tarfile.open(fileobj=empty, mode="w"):
            pass
        repo, _, tag = LEASE_IMAGE.partition(":")
        self.api.import_image_from_data(empty.getvalue(), repository=repo, tag=tag)

    def _beat_of(self, cid: str) -> str | None:
        import docker.errors

        try:
            stream, _ = self.api.get_archive(cid, "/" + LEASE_FILE)
        except docker.errors.APIError:
            return None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile(LEASE_FILE)
            return member.read().decode() if member else None

    def _fresh(self, cid: str) -> bool:
        """The heartbeat is recent by this machine's clock: the holder is alive (or the
        clocks disagree by more than ttl_s, which only delays a takeover)."""
        try:
            at = float(json.loads(self._beat_of(cid) or "{}").get("at", 0))
        except (ValueError, TypeError):
            return False
        return abs(time.time() - at) < self.ttl_s

    def _stale(self, cid: str) -> bool:
        """The heartbeat did not move for a whole ttl (watched, not compared across clocks)."""
        first = self._beat_of(cid)
        deadline = time.monotonic() + self.ttl_s
        while time.monotonic() < deadline:
            time.sleep(min(1.0, self.ttl_s / 10))
            if self._beat_of(cid) != first:
                return False
        return True


def _heartbeat(beat: int) -> bytes:
    data = json.dumps({"beat": beat, "at": time.time()}).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(LEASE_FILE)
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
