"""A real PostgreSQL 15 for the tests and benchmarks, run by the caller itself.

Debian's postgresql-15 (installed with apt-get when missing, as a CI machine starts
bare): `initdb` and `pg_ctl` as the `postgres` user (PostgreSQL refuses to run as root),
a data directory under /tmp that the caller owns, listening on 127.0.0.1 only at a free
port, password (SCRAM) authentication on loopback. The password lives in a file passed
by reference (`?password_file=`), as a team would. `running_postgres()` stops the server
by its own pid and removes its directory.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class Unavailable(Exception):
    """PostgreSQL 15 is not installed and cannot be."""


PG_VERSION = "15"
PG_BIN = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")
PG_USER = "postgres"
BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password_file: Path
    password: str

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}?password_file={self.password_file}"

    def admin(self):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname="postgres",
            autocommit=True,
        )

    def new_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:16]
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


def install() -> str | None:
    """None when PostgreSQL 15 is there (installing it if need be), else why not."""
    if (PG_BIN / "initdb").exists():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"PostgreSQL {PG_VERSION} is not installed and cannot be (needs root and apt-get)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", f"postgresql-{PG_VERSION}"],
    ):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0 and cmd[1] == "install":
            return f"apt-get install postgresql-{PG_VERSION} failed: {done.stderr.strip().splitlines()[-1:]}"
    return (
        None
        if (PG_BIN / "initdb").exists()
        else f"postgresql-{PG_VERSION} installed no {PG_BIN}/initdb"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", PG_USER, "--", *args], capture_output=True, text=True, timeout=timeout
    )


@contextmanager
def running_postgres(*, fsync: bool = False) -> Iterator[PostgresServer]:
    """Tests run with fsync off (faster; a crash of the test server loses nothing of value);
    benchmarks turn it on, as in production."""
    why = install()
    if why is not None:
        raise Unavailable(why)
    root = Path(tempfile.mkdtemp(prefix="fleetctl-pg-", dir="/tmp"))
    data = root / "data"
    password = secrets.token_urlsafe(18)
    pwfile = root / "password"
    pwfile.write_text(password + "\n")
    os.chmod(pwfile, 0o644)  # read by initdb as postgres, and by the tests
    shutil.chown(root, PG_USER)
    pid = None
    try:
        init = _as_postgres(
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            PG_USER,
            "--pwfile",
            str(pwfile),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
        for _ in range(5):  # a free port may be taken by another session between check and bind
            port = _free_port()
            opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync={'on' if fsync else 'off'} -c max_connections=200"
            started = _as_postgres(
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "log"),
                "-o",
                opts,
                "-w",
                "-t",
                "30",
                "start",
            )
            if started.returncode == 0:
                break
        else:
            raise RuntimeError(f"PostgreSQL did not start: {(root / 'log').read_text()[-2000:]}")
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        yield PostgresServer("127.0.0.1", port, PG_USER, pwfile, password)
    finally:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGINT)  # fast shutdown: disconnects clients, then exits
                for _ in range(200):
                    os.kill(pid, 0)
                    time.sleep(0.05)
            except ProcessLookupError:
                pass
        shutil.rmtree(root, ignore_errors=True)
