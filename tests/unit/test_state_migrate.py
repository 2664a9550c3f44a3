"""`fleetctl state migrate --to postgresql://…`: a SQLite state copied into a real
PostgreSQL 15, every table, ids kept, and a non-empty target refused."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from fleetctl.state.health_store import Event, HealthMemory, Memory
from fleetctl.state.paths import DatabaseURL, parse_state_location
from fleetctl.state.pg import connect
from fleetctl.state.store import StateStore

FLEETCTL = str(Path(sys.executable).with_name("fleetctl"))
TABLES = ("rollout", "rollout_step", "revision", "hold", "health_streak", "health_event")


def _fleetctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLEETCTL, *args], capture_output=True, text=True, timeout=120, env=env)


def _sqlite_rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f'SELECT * FROM "{table}" ORDER BY id').fetchall()
    finally:
        conn.close()


def _pg_rows(url: DatabaseURL, table: str) -> list[tuple[Any, ...]]:
    with connect(url, autocommit=True) as conn:
        return conn.execute(f'SELECT * FROM "{table}" ORDER BY id').fetchall()


def _fill(path: Path) -> None:
    with StateStore(path) as s:
        for n in range(3):
            rid = s.begin_rollout(
                f"apply #{n}", "inventory/fleet.yaml", f"sha{n}", {"actions": [n]}
            )
            s.record_step(
                rid,
                deployment="chat@v1",
                replica=0,
                host="h1",
                action="create",
                container=f"c{n}",
                outcome="ok",
            )
            s.record_revision(
                deployment="chat@v1",
                model="chat",
                version="v1",
                spec_hash=f"h{n}",
                spec={"n": n},
                image="img:1",
                image_digest=None,
                placement=[{"host": "h1"}],
                outcome="applied",
                rollout_id=rid,
            )
            s.finish_rollout(rid, "succeeded", f"done {n}")
        s.set_hold(
            model="chat",
            version="v1",
            revision=2,
            spec={"n": 1},
            inventory_version="v1",
            rollout_id=rid,
            command="rollback chat@v1",
        )
        # A gap in the ids, as a deleted hold leaves: ids are kept, not renumbered.
        s.set_hold(
            model="embed",
            version="1",
            revision=1,
            spec={},
            inventory_version="1",
            rollout_id=None,
            command="rollback embed@1",
        )
        s.delete_hold("chat")
    now = time.time()
    memory = {("chat@v1", 0): Memory(verdict="ok", since=now - 60, checked_at=now)}
    HealthMemory(path, "f").update(
        lambda old: (
            memory,
            [Event(now, "chat@v1", 0, "h1", "verdict", "ok", "new -> ok", 12.5)],
            None,
        )
    )


def test_migrate_copies_every_table_with_ids_and_refuses_a_non_empty_target(
    tmp_path: Path, postgres_server: Any
) -> None:
    source = tmp_path / "state" / "fleetctl.db"
    _fill(source)
    url = postgres_server.url(postgres_server.new_database())
    done = _fleetctl("state", "migrate", "--state", str(source), "--to", url, "--output", "json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    schema = json.loads(
        (Path(__file__).resolve().parents[2] / "docs/schemas/state-migrate.schema.json").read_text()
    )
    problems = [e.message for e in Draft202012Validator(schema).iter_errors(out)]
    assert not problems, problems
    assert out["from"] == str(source) and out["format_version"] == 1
    assert out["rows"] == {
        "rollout": 3,
        "rollout_step": 3,
        "revision": 3,
        "hold": 1,
        "health_streak": 1,
        "health_event": 1,
        "known_host": 0,
    }
    assert postgres_server.password not in done.stdout + done.stderr
    target = parse_state_location(url)
    assert isinstance(target, DatabaseURL)
    for table in TABLES:
        assert [tuple(r) for r in _pg_rows(target, table)] == _sqlite_rows(source, table), table
    with StateStore(
        target
    ) as s:  # the store reads it back, and new ids continue after the copied ones
        assert [r.summary for r in s.rollouts()] == ["done 2", "done 1", "done 0"]
        assert [h.model for h in s.holds()] == ["embed"]
        rid = s.begin_rollout("apply", "inventory/fleet.yaml", "sha", {})
        assert rid == 4
        assert (
            s.set_hold(
                model="x",
                version="1",
                revision=1,
                spec={},
                inventory_version="1",
                rollout_id=rid,
                command="c",
            ).model
            == "x"
        )
    assert _pg_rows(target, "hold")[-1][0] == 3  # after the copied id 2
    again = _fleetctl("state", "migrate", "--state", str(source), "--to", url)
    assert (
        again.returncode == 1 and again.stderr.count("\n") == 1 and "is not empty" in again.stderr
    ), again.stderr
    assert "Traceback" not in again.stderr


def test_migrate_refuses_a_path_target_and_a_missing_source(
    tmp_path: Path, postgres_server: Any
) -> None:
    to_path = _fleetctl(
        "state", "migrate", "--state", str(tmp_path / "none.db"), "--to", str(tmp_path / "other.db")
    )
    assert to_path.returncode == 1 and "needs a postgresql:// URL" in to_path.stderr
    missing = _fleetctl(
        "state",
        "migrate",
        "--state",
        str(tmp_path / "none.db"),
        "--to",
        postgres_server.url("postgres"),
    )
    assert missing.returncode == 1 and "nothing to migrate" in missing.stderr
    assert not (tmp_path / "none.db").exists()


def test_the_password_comes_from_pgpassword_and_is_never_printed(
    tmp_path: Path, postgres_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "s.db"
    _fill(source)
    db = postgres_server.new_database()
    bare = f"postgresql://{postgres_server.user}@{postgres_server.host}:{postgres_server.port}/{db}"
    env = dict(os.environ, PGPASSWORD=postgres_server.password)
    done = _fleetctl("state", "migrate", "--state", str(source), "--to", bare, env=env)
    assert done.returncode == 0, done.stderr
    assert bare in done.stdout and postgres_server.password not in done.stdout + done.stderr
    history = _fleetctl("history", "--state", bare, "--output", "json", env=env)
    assert history.returncode == 0 and len(json.loads(history.stdout)["rollouts"]) == 3, (
        history.stdout
    )
    wrong = _fleetctl(
        "history", "--state", bare, env=dict(os.environ, PGPASSWORD="not-the-password")
    )
    assert (
        wrong.returncode == 1
        and wrong.stderr.count("\n") == 1
        and "password authentication failed" in wrong.stderr
    )
    assert "Traceback" not in wrong.stderr and "not-the-password" not in wrong.stderr
    # Nothing the state holds names the password either.
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    with connect(parse_state_location(bare), autocommit=True) as conn:  # type: ignore[arg-type]
        for table in TABLES:
            assert postgres_server.password not in str(
                conn.execute(f'SELECT * FROM "{table}"').fetchall()
            )
