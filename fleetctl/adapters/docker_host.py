"""A Docker host behind a small interface, over the docker SDK.

`DockerHost` is the only code that calls Docker; it implements `fleetctl.ports.HostAPI`.
Unit tests fake that protocol, not the SDK; integration tests run this class against
real engines.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC
from typing import TYPE_CHECKING, Any

from fleetctl.core import labels as L
from fleetctl.core.front_door import LOADED_PATH
from fleetctl.core.inventory import Host
from fleetctl.core.observed import ContainerRun, ObservedContainer, ObservedFrontDoor, ObservedHost
from fleetctl.crashpoints import mutation
from fleetctl.runtimes.spec import ContainerSpec

if TYPE_CHECKING:
    from fleetctl.adapters.lease import HostLease

OBSERVE_TIMEOUT_S = 10
LOG_HEAD_MAX_BYTES = 256 * 1024
API_TIMEOUT_S = 120
_IMAGE_ID = re.compile(r"^(sha256:)?[0-9a-f]{12,64}$")
# `docker ps` status of a container (re)started under a minute ago: only such a one can
# be crash-looping, so only it costs an inspect during observation.
_JUST_STARTED = re.compile(r"^Up (Less than a second|\d+ seconds?)\b")


@dataclass(frozen=True)
class CreateArgs:
    """The parts of a container's creation that depend on the spec (pure, unit-tested)."""

    env: dict[str, str]
    binds: dict[str, dict[str, str]]
    port_bindings: dict[int, tuple[str, int]]
    device_ids: tuple[str, ...]  # real GPUs: a device request with exactly these ids


def create_args(
    spec: ContainerSpec, secrets: Mapping[str, str], publish_address: str = "127.0.0.1"
) -> CreateArgs:
    """`publish_address` is the host address published ports bind: loopback unless the
    inventory asks for more (Docker's default would be every interface)."""
    env = {**spec.env, **secrets}
    device_ids: tuple[str, ...] = ()
    if spec.gpus and not spec.simulated_gpus:
        device_ids = tuple(str(g) for g in spec.gpus)
    elif spec.gpus:
        # A device request cannot start on an engine without the NVIDIA runtime, so
        # simulated GPUs travel only as the variable the runtime would have set.
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(str(g) for g in spec.gpus)
    return CreateArgs(
        env=env,
        binds={
            v.source: {"bind": v.target, "mode": "ro" if v.read_only else "rw"}
            for v in spec.volumes
        },
        port_bindings={p.container_port: (publish_address, p.host_port) for p in spec.ports},
        device_ids=device_ids,
    )


def client_for(host: Host, timeout: int = API_TIMEOUT_S) -> Any:
    """A docker SDK client for unix://, ssh:// or tcp:// (TLS unless explicitly allowed)."""
    import docker
    from docker.tls import TLSConfig

    kwargs: dict[str, Any] = {"base_url": host.docker, "timeout": timeout}
    if host.docker.startswith("ssh://"):
        # The system ssh client honours ~/.ssh/config, agents and known_hosts; fleetctl adds
        # only the bounds that keep a dead or frozen host from hanging it.
        kwargs["use_ssh_client"] = True
        _bound_ssh_client()
    elif host.docker.startswith("tcp://") and host.tls is not None:
        t = host.tls
        path = lambda p: os.path.expanduser(p) if p else None  # noqa: E731
        cert = (path(t.client_cert), path(t.client_key)) if t.client_cert and t.client_key else None
        ca = path(t.ca_cert)
        kwargs["tls"] = TLSConfig(client_cert=cert, ca_cert=ca, verify=ca if ca else t.verify)
        if ca:
            # requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE replace the session's CA on
            # every call (psf/requests#3829), so the host's own CA would be ignored where
            # they are set: the session ignores the environment, and the API version is
            # asked for only then.
            from docker.constants import MINIMUM_DOCKER_API_VERSION

            client = docker.DockerClient(**kwargs, version=MINIMUM_DOCKER_API_VERSION)
            client.api.trust_env = False
            client.api._version = client.api._retrieve_server_version()
            return client
    return docker.DockerClient(**kwargs)


SSH_ALIVE_INTERVAL_S = 10
SSH_ALIVE_COUNT = 3


def ssh_options(timeout_s: float) -> list[str]:
    """What fleetctl adds to the system ssh client's command line for an ssh:// host:
    the connection and its protocol handshake end after `timeout_s` (the client's API
    timeout); a connection that stops answering ends after about 30 s; and ssh never asks
    for a password or a host key on a terminal (BatchMode). The rest (user, key,
    known_hosts, jump hosts) comes from ssh_config as usual."""
    return [
        "-o",
        f"ConnectTimeout={max(1, int(timeout_s))}",
        "-o",
        f"ServerAliveInterval={SSH_ALIVE_INTERVAL_S}",
        "-o",
        f"ServerAliveCountMax={SSH_ALIVE_COUNT}",
        "-o",
        "BatchMode=yes",
    ]


def _bound_ssh_client() -> None:
    """The docker SDK starts `ssh HOST docker system dial-stdio` with no option of its own,
    so an sshd that accepts and never answers (frozen, or a dropped network) hangs the
    caller for good unless ssh_config sets a ConnectTimeout. Its socket class, used only
    for use_ssh_client, is replaced once by one that adds `ssh_options`."""
    import signal
    import subprocess

    from docker.transport import sshconn

    if getattr(sshconn.SSHSocket, "fleetctl_bounded", False):
        return

    class BoundedSSHSocket(sshconn.SSHSocket):
        fleetctl_bounded = True

        def connect(self, **kwargs: Any) -> None:
            args = ["ssh", *ssh_options(self.gettimeout() or API_TIMEOUT_S)]
            if self.user:
                args += ["-l", self.user]
            if self.port:
                args += ["-p", self.port]
            args += ["--", self.host, "docker system dial-stdio"]
            env = dict(os.environ)
            env.pop("LD_LIBRARY_PATH", None)
            env.pop("SSL_CERT_FILE", None)
            self.proc = subprocess.Popen(
                args,
                env=env,
                stdout=subprocess.PIPE,
                stdin=subprocess.PIPE,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
            )

    sshconn.SSHSocket = BoundedSSHSocket


class DockerHost:
    def __init__(
        self,
        host: Host,
        fleet: str = "default",
        client: Any | None = None,
        timeout: int = API_TIMEOUT_S,
    ) -> None:
        self.host = host
        self.fleet = fleet
        self.name = host.name
        self._timeout = timeout
        self._client = client
        self._images_present: set[str] = set()  # checked (or pulled) during this run

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client_for(self.host, self._timeout)
        return self._client

    @property
    def api(self) -> Any:
        return self.client.api

    # -- reading -------------------------------------------------------------------
    def observe(self) -> ObservedHost:
        """One label-filtered list call; an error makes the host unreachable, not fatal."""
        import docker.errors
        import requests

        try:
            rows = self.api.containers(all=True, filters={"label": L.fleet_filter(self.fleet)})
        except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
            return ObservedHost(self.name, reachable=False, error=_one_line(exc))
        containers: list[ObservedContainer] = []
        front_doors: list[ObservedFrontDoor] = []
        for row in rows:
            names = row.get("Names") or [row["Id"][:12]]
            image = row.get("Image", "")
            labels = row.get("Labels") or {}
            if L.is_front_door(labels):
                state = row.get("State", "")
                url = labels.get(L.ENDPOINT, "")
                loaded = self._loaded_routes(row["Id"], url) if state == "running" else None
                front_doors.append(
                    L.observed_front_door(
                        self.name, row["Id"], names[0], state, image, labels, loaded
                    )
                )
                continue
            labeled = labels.get(L.IMAGE, "")
            if _IMAGE_ID.match(image) and labeled:
                # The tag moved to a newer build after the container was created; Docker
                # then shows the old id. That is not drift made by hand.
                image = labeled
            c = L.observed_from(
                self.name, row["Id"], names[0], row.get("State", ""), image, row.get("Labels") or {}
            )
            if c is not None:
                if c.state == "restarting" or _JUST_STARTED.match(row.get("Status", "")):
                    c = replace(c, restarts=self._restarts(row["Id"]))
                containers.append(c)
        return ObservedHost(
            self.name, reachable=True, containers=tuple(containers), front_doors=tuple(front_doors)
        )

    def _restarts(self, container: str) -> int:
        """How often the restart policy brought it back (one inspect; 0 if it is gone)."""
        try:
            return int(self.api.inspect_container(container).get("RestartCount") or 0)
        except Exception:
            return 0

    def _loaded_routes(self, container: str, url: str) -> str | None:
        """The hash of the routes a front door last loaded (None: unknown, reload it)."""
        from fleetctl.adapters.probes import front_door_status
        from fleetctl.core.front_door import loaded_routes

        return loaded_routes(
            url,
            lambda: self.read_file(container, LOADED_PATH),
            lambda u: front_door_status(u, timeout_s=0.5),
        )

    def read_file(self, container: str, path: str) -> bytes | None:
        """One file out of a container, through the Docker API (unix, ssh and tcp alike)."""
        import io
        import tarfile

        import docker.errors

        try:
            stream, _ = self.api.get_archive(container, path)
            blob = b"".join(stream)
        except docker.errors.NotFound:
            return None
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            member = next((m for m in tar.getmembers() if m.isfile()), None)
            fh = tar.extractfile(member) if member else None
            return fh.read() if fh else None

    def put_file(self, container: str, path: str, data: bytes) -> None:
        """Write one file into a container (created or running) through the Docker API,
        making its folders: the archive is unpacked at / with every parent in it."""
        import io
        import tarfile
        import time

        now = int(time.time())
        parts = path.strip("/").split("/")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for i in range(1, len(parts)):
                folder = tarfile.TarInfo("/".join(parts[:i]))
                folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, now
                tar.addfile(folder)
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode, info.mtime = len(data), 0o644, now
            tar.addfile(info, io.BytesIO(data))
        with mutation("put_file", f"{self.name}/{container}:{path}"):
            written = self.api.put_archive(container, "/", buf.getvalue())
        if not written:
            raise RuntimeError(f"could not write {path} into {container} on {self.name}")

    def signal(self, container: str, signal: str) -> None:
        with mutation("signal", f"{self.name}/{container}:{signal}"):
            self.api.kill(container, signal=signal)

    def state(self, container: str) -> str:
        """Docker's status, or "restarted" once the restart policy had to bring it back."""
        info = self.api.inspect_container(container)
        if info.get("RestartCount", 0) > 0:
            return "restarted"
        return str(info["State"]["Status"])

    def logs_tail(self, container: str, lines: int = 40) -> str:
        try:
            raw = self.api.logs(container, stdout=True, stderr=True, tail=lines)
        except Exception as exc:  # logs are best effort: the container may be gone
            return f"<no logs: {_one_line(exc)}>"
        return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)

    def run_info(self, container: str) -> ContainerRun:
        """State, restart count and start time of the container's current run (one inspect)."""
        info = self.api.inspect_container(container)
        state = info.get("State") or {}
        return ContainerRun(
            status=str(state.get("Status", "")),
            restart_count=int(info.get("RestartCount") or 0),
            started_at=docker_time(state.get("StartedAt")),
            exit_code=state.get("ExitCode"),
        )

    def logs_head(self, container: str, lines: int = 200, since: float | None = None) -> str:
        """The first `lines` lines the container logged (since `since`, epoch seconds: its
        current run), read as a stream and closed as soon as they are in: a long-running
        container's whole log is never fetched."""
        try:
            stream = self.api.logs(
                container, stdout=True, stderr=True, stream=True, follow=False, since=since
            )
        except Exception as exc:  # logs are best effort: the container may be gone
            return f"<no logs: {_one_line(exc)}>"
        buf = bytearray()
        try:
            for chunk in stream:
                buf.extend(chunk)
                if buf.count(b"\n") >= lines or len(buf) >= LOG_HEAD_MAX_BYTES:
                    break
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        text = buf.decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[:lines])

    def image_digest(self, image: str) -> str | None:
        # Asked when a rollout is recorded, also of a host whose steps were all skipped as
        # unreachable: without a client from this run yet, ask with the observe timeout,
        # so that a dead host costs seconds here, not the API timeout.
        short = None
        try:
            if self._client is None:
                short = client_for(self.host, min(self._timeout, OBSERVE_TIMEOUT_S))
            info = (short or self.client).api.inspect_image(image)
        except Exception:
            return None
        finally:
            if short is not None:
                short.close()
        digests = info.get("RepoDigests") or []
        return digests[0] if digests else info.get("Id")

    # -- changing ------------------------------------------------------------------
    def run(
        self,
        name: str,
        spec: ContainerSpec,
        labels: Mapping[str, str],
        secrets: Mapping[str, str],
        files: Mapping[str, bytes] | None = None,
    ) -> str:
        """Create and start a container (with `files` written into it before it starts);
        a container that fails to start is removed."""
        import docker.errors

        args = create_args(spec, secrets, self.host.publish_address)
        if args.device_ids:
            from docker.types import DeviceRequest

            device_requests = [
                DeviceRequest(device_ids=list(args.device_ids), capabilities=[["gpu"]])
            ]
        else:
            device_requests = None
        host_config = self.api.create_host_config(
            network_mode=spec.network_mode,
            binds=args.binds,
            port_bindings=args.port_bindings or None,
            shm_size=spec.shm_size,
            device_requests=device_requests,
            # From creation, so a ready replica needs no second call; a crash before it is
            # ready shows as a restart and fails the health gate.
            restart_policy={"Name": "unless-stopped"},
        )
        self._ensure_image(spec.image)
        with mutation("create", f"{self.name}/{name}"):
            created = self.api.create_container(
                image=spec.image,
                name=name,
                command=list(spec.command) or None,
                entrypoint=list(spec.entrypoint) if spec.entrypoint else None,
                environment=args.env,
                labels=dict(labels),
                host_config=host_config,
                ports=[p.container_port for p in spec.ports] or None,
                detach=True,
            )
        cid = created["Id"]
        try:
            for path, data in (files or {}).items():
                self.put_file(cid, path, data)
            with mutation("start", f"{self.name}/{name}"):
                self.api.start(cid)
        except (docker.errors.APIError, RuntimeError):
            self.api.remove_container(cid, force=True)
            raise
        return str(cid)

    def ensure_image(self, image: str) -> None:
        """Pull an image the host does not have (with the host's registry credentials);
        raises ImageNotFound with the registry's answer, one line, when it cannot be had."""
        self._ensure_image(image)

    def _ensure_image(self, image: str) -> None:
        import docker.errors
        import requests
        from docker.utils import parse_repository_tag

        if image in self._images_present:
            return  # many replicas share an image: one inspect per host and run
        if self._has_image(image):
            return
        # A digest reference (repo@sha256:...) or a registry with a port (host:5000/repo)
        # splits where Docker splits it, not at the last colon.
        repo, tag = parse_repository_tag(image)
        try:
            # Streamed: an error after the pull started (a layer the registry cannot
            # serve) comes inside the stream, under a 200, and must not pass for success.
            # A stalled pull ends at the client's read timeout; a registry that does not
            # answer at the engine's own (about 25 s on engine 20.10).
            for event in self.api.pull(repo, tag=tag or "latest", stream=True, decode=True):
                if isinstance(event, dict) and event.get("error"):
                    raise _PullFailed(str(event["error"]))
        except _PullFailed as exc:
            raise self._not_had(image, _one_line(exc)) from None
        except requests.exceptions.Timeout:
            raise self._not_had(
                image, f"no answer from the engine within {self._timeout} s"
            ) from None
        except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
            raise self._not_had(image, _api_reason(exc)) from None
        if not self._has_image(image):
            raise self._not_had(image, "the pull ended but the engine does not have the image")

    def _has_image(self, image: str) -> bool:
        import docker.errors
        import requests

        try:
            self.api.inspect_image(image)
        except docker.errors.ImageNotFound:
            return False
        except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
            raise docker.errors.ImageNotFound(
                f"checking for it failed: {_api_reason(exc)}"
            ) from None
        self._images_present.add(image)
        return True

    def _not_had(self, image: str, reason: str) -> Exception:
        import docker.errors

        # The caller names the image and the host; this says what the pull met.
        return docker.errors.ImageNotFound(f"pulling it failed: {_dedup(reason)}")

    def lease(self, fleet: str, ttl_s: float) -> HostLease | None:
        """This host's lease for `fleet` (fleetctl.adapters.lease); None if unreachable."""
        from fleetctl.adapters.lease import HostLease

        try:
            return HostLease(self.api, self.name, fleet, ttl_s)
        except Exception:
            return None

    def stop(self, container: str, timeout_s: int = 30) -> None:
        with mutation("stop", f"{self.name}/{container}"):
            self.api.stop(container, timeout=timeout_s)

    def start(self, container: str) -> None:
        with mutation("start", f"{self.name}/{container}"):
            self.api.start(container)

    def remove(self, container: str, timeout_s: int = 30) -> None:
        import docker.errors

        try:
            with mutation("stop", f"{self.name}/{container}"):
                self.api.stop(container, timeout=timeout_s)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:
            pass  # already stopped or dead: removal below still applies
        try:
            with mutation("remove", f"{self.name}/{container}"):
                self.api.remove_container(container, force=True)
        except docker.errors.NotFound:
            pass

    def rename(self, container: str, new_name: str) -> None:
        with mutation("rename", f"{self.name}/{container}->{new_name}"):
            self.api.rename(container, new_name)


def docker_time(text: str | None) -> float | None:
    """Docker's RFC 3339 time (nanoseconds, "Z") as epoch seconds; None for its zero time."""
    from datetime import datetime

    if not text or text.startswith("0001-"):
        return None
    stamp = text.rstrip("Z")
    whole, _, frac = stamp.partition(".")
    try:
        dt = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return dt.timestamp() + (float(f"0.{frac[:6]}") if frac.isdigit() else 0.0)


class _PullFailed(Exception):
    """An error the engine reported inside a pull's progress stream."""


def _api_reason(exc: BaseException) -> str:
    """An engine's answer without the SDK's wrapping ("500 Server Error for http+docker://...")."""
    explanation = getattr(exc, "explanation", None)
    return (
        _one_line(explanation) if isinstance(explanation, str) and explanation else _one_line(exc)
    )


def _dedup(text: str) -> str:
    """ "manifest unknown: manifest unknown" (the engine repeating the registry) said once."""
    parts = text.split(": ")
    return ": ".join(p for i, p in enumerate(parts) if i == 0 or p != parts[i - 1])


def _one_line(exc: BaseException | str) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
