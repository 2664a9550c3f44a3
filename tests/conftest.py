"""Shared by every test: a real PostgreSQL 15 server for the state tests
(`tests/testbed/postgres.py`), and the `state_location` fixture that runs a state test
once on SQLite and once on PostgreSQL. PostgreSQL is skipped only where it truly cannot
be installed (no root or no apt-get)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTBED = str(Path(__file__).resolve().parent / "testbed")
if TESTBED not in sys.path:
    sys.path.insert(0, TESTBED)

from postgres import PostgresServer, Unavailable, running_postgres  # noqa: E402

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        with running_postgres() as server:
            yield server
    except Unavailable as why:
        pytest.skip(str(why))


@pytest.fixture(params=BACKENDS)
def state_location(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh, empty state: a SQLite file under tmp_path, or a new PostgreSQL database."""
    from fleetctl.state.paths import parse_state_location

    if request.param == "sqlite":
        return tmp_path / "state" / "fleetctl.db"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return parse_state_location(server.url(server.new_database()))
