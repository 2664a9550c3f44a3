"""The state store against real SQLite files and a real PostgreSQL 15 server.

`db_path` is a fresh state on each backend in turn (the `state_location` fixture);
`sqlite_path` is for what only SQLite has (files, modes, pragmas, BEGIN IMMEDIATE), and
those tests have PostgreSQL counterparts where the property exists there.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import SQLModel

from fleetctl.errors import FleetctlError
from fleetctl.state import models
from fleetctl.state.db import open_engine, reader, resolve_state_path
from fleetctl.state.migrations import MIGRATIONS, latest_version
from fleetctl.state.paths import DatabaseURL, parse_state_location
from fleetctl.state.store import StateStore

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "nvapi-s3cr3t-T0KEN-value"
PRAGMAS = ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")  # synchronous 2 is FULL


@pytest.fixture
def db_path(state_location: Any) -> Any:
    """A fresh state, once on SQLite and once on PostgreSQL."""
    return state_location


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "fleetctl.db"


@pytest.fixture
def pg_url(postgres_server: Any) -> DatabaseURL:
    return parse_state_location(postgres_server.url(postgres_server.new_database()))  # type: ignore[return-value]


@pytest.fixture
def store(db_path: Any) -> Iterator[StateStore]:
    with StateStore(db_path) as s:
        yield s


@pytest.fixture
def sqlite_store(sqlite_path: Path) -> Iterator[StateStore]:
    with StateStore(sqlite_path) as s:
        yield s


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _revision(store: StateStore, rollout_id: int, **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "deployment": "chat-llm@v3",
        "model": "chat-llm",
        "version": "v3",
        "spec_hash": "aaaa",
        "spec": {"image": "nvcr.io/nim/llama:1.0", "env": {"NIM_MAX_BATCH": "8"}},
        "image": "nvcr.io/nim/llama:1.0",
        "image_digest": None,
        "placement": [{"replica": 0, "host": "gpu-a", "gpus": [0, 1], "port": 8000}],
        "outcome": "applied",
        "rollout_id": rollout_id,
    }
    fields.update(overrides)
    return store.record_revision(**fields)


def _query(db_path: Any, sql: str) -> list[Any]:
    """Read the state with plain sqlite3 or psycopg, bypassing the store."""
    if isinstance(db_path, DatabaseURL):
        from fleetctl.state.pg import connect

        with connect(db_path, autocommit=True) as pg:
            cur = pg.execute(sql)
            return cur.fetchall() if cur.description else []
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute(sql).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def _in_threads(n: int, work: Callable[[int], None]) -> None:
    """Run work(0..n-1) in n threads released together; re-raise the first failure."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]


def _rollout(store: StateStore, command: str = "apply") -> int:
    return store.begin_rollout(command, "inventory/fleet.yaml", "sha256:abc", {"actions": []})


# -- paths, files, pragmas -----------------------------------------------------------


def test_resolve_state_path_prefers_option_then_env_then_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLEETCTL_STATE", raising=False)
    assert (
        resolve_state_path(None) == Path.cwd() / "state/fleetctl.db"
    )  # beside inventory/fleet.yaml
    monkeypatch.setenv("FLEETCTL_STATE", "/tmp/elsewhere.db")
    assert resolve_state_path(None) == Path("/tmp/elsewhere.db")
    assert resolve_state_path("mine.db") == Path("mine.db")
    monkeypatch.setenv("FLEETCTL_STATE", "postgresql://fleet@db.internal:5432/fleet")
    assert resolve_state_path(None) == DatabaseURL("postgresql://fleet@db.internal:5432/fleet")


def test_default_state_lives_beside_the_inventory_whatever_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEETCTL_STATE", raising=False)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    # The repository's layout: inventory/demo.yaml keeps its state in the top-level state/.
    assert (
        resolve_state_path(None, REPO_ROOT / "inventory" / "demo.yaml")
        == REPO_ROOT / "state" / "fleetctl.db"
    )
    # Any other folder: state/ in the inventory's own folder.
    fleet = tmp_path / "team" / "fleet.yaml"
    assert resolve_state_path(None, fleet) == tmp_path / "team" / "state" / "fleetctl.db"
    with StateStore(resolve_state_path(None, fleet)):
        pass
    assert (tmp_path / "team" / "state" / "fleetctl.db").is_file()
    assert not (elsewhere / "state").exists()
    # A relative inventory is taken from the current directory, then made absolute.
    monkeypatch.chdir(tmp_path)
    assert (
        resolve_state_path(None, Path("team/fleet.yaml"))
        == tmp_path / "team" / "state" / "fleetctl.db"
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("postgresql://fleet@db:5432/fleet", DatabaseURL("postgresql://fleet@db:5432/fleet")),
        (
            "postgres://fleet@db/fleet?sslmode=require",
            DatabaseURL("postgresql://fleet@db/fleet?sslmode=require"),
        ),
        ("postgresql+psycopg://fleet@db/fleet", DatabaseURL("postgresql://fleet@db/fleet")),
        ("sqlite:///relative/s.db", Path("relative/s.db")),
        ("sqlite:////abs/s.db", Path("/abs/s.db")),
        ("state/fleetctl.db", Path("state/fleetctl.db")),
        ("./postgresql:weird", Path("postgresql:weird")),
    ],
)
def test_state_locations_parse(text: str, expected: Any) -> None:
    assert parse_state_location(text) == expected


@pytest.mark.parametrize(
    "text, needle",
    [
        ("mysql://root@db/fleet", "neither a path nor a supported database URL"),
        ("redis://cache:6379", "neither a path nor a supported database URL"),
        ("postgresql://fleet:hunter2-pass@db/fleet", "must not carry a password"),
        ("postgresql://fleet@db/fleet?password=hunter2-pass", "must not carry a password"),
        ("postgresql://fleet@db:notaport/fleet", "not a valid URL"),
        ("sqlite://", "a SQLite URL names a file"),
    ],
)
def test_unsupported_or_secret_bearing_locations_are_refused_with_exit_3(
    text: str, needle: str
) -> None:
    from fleetctl.errors import ExitCode

    with pytest.raises(FleetctlError) as info:
        parse_state_location(text)
    assert needle in info.value.message and "\n" not in info.value.message
    assert info.value.exit_code is ExitCode.INVENTORY
    assert "hunter2" not in info.value.message


def test_a_password_comes_from_its_file_only_at_connect_time(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    url = parse_state_location(
        f"postgresql://fleet@db/fleet?password_file={secret}&sslmode=disable"
    )
    assert isinstance(url, DatabaseURL)
    secret.write_text("s3cret-from-file\n")
    conninfo, extra = url.conninfo()
    assert (
        extra["password"] == "s3cret-from-file"
        and "s3cret" not in conninfo
        and "password_file" not in conninfo
    )
    assert "sslmode=disable" in conninfo and "s3cret" not in str(url)
    secret.unlink()
    with pytest.raises(FleetctlError, match="password_file .* cannot be read"):
        url.conninfo()


def test_a_bad_state_url_from_the_environment_is_one_line_exit_3_and_creates_nothing(
    tmp_path: Path,
) -> None:
    import os

    env = dict(os.environ, FLEETCTL_STATE="mysql://root@db/fleet")
    fleetctl = str(Path(sys.executable).with_name("fleetctl"))
    done = subprocess.run(
        [fleetctl, "history"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 3, done.stderr
    assert (
        done.stderr.count("\n") == 1
        and "$FLEETCTL_STATE: mysql://" in done.stderr
        and "Traceback" not in done.stderr
    )
    assert list(tmp_path.iterdir()) == []  # no directory named "mysql:"


def test_files_are_private(sqlite_store: StateStore, sqlite_path: Path) -> None:
    store, db_path = sqlite_store, sqlite_path
    rid = _rollout(store)
    store.record_step(
        rid, deployment="d@1", replica=0, host="h", action="create", container="c", outcome="ok"
    )
    # The store is still open, so the WAL and shared-memory files exist.
    files = [db_path, db_path.with_name("fleetctl.db-wal"), db_path.with_name("fleetctl.db-shm")]
    for f in files:
        assert f.exists(), f
        assert _mode(f) == 0o600, f


def test_existing_wide_files_are_tightened(sqlite_path: Path) -> None:
    db_path = sqlite_path
    db_path.parent.mkdir(parents=True)
    db_path.touch(mode=0o644)
    db_path.chmod(0o644)
    with StateStore(db_path):
        pass
    assert _mode(db_path) == 0o600


def test_pragmas_on_every_connection(sqlite_path: Path) -> None:
    db_path = sqlite_path
    engine = open_engine(db_path)
    try:
        for eng in (engine, reader(engine)):
            with eng.connect() as conn:
                got = {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in PRAGMAS}
            assert got == {
                "journal_mode": "wal",
                "synchronous": 2,
                "foreign_keys": 1,
                "busy_timeout": 5000,
            }
    finally:
        engine.dispose()


def test_transactions_begin_immediate(sqlite_store: StateStore, sqlite_path: Path) -> None:
    db_path = sqlite_path
    engine = open_engine(db_path)
    try:
        with engine.begin():
            # No statement yet: only BEGIN IMMEDIATE can hold the write lock already.
            other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            finally:
                other.close()
    finally:
        engine.dispose()


def test_pg_write_transactions_take_the_write_lock_up_front(pg_url: DatabaseURL) -> None:
    """PostgreSQL's counterpart of BEGIN IMMEDIATE: the advisory write lock, before any statement."""
    from fleetctl.state.pg import WRITE_KEY, connect

    StateStore(pg_url).close()
    engine = open_engine(pg_url)
    try:
        with engine.begin():
            with connect(pg_url, autocommit=True) as other:
                assert (
                    other.execute("SELECT pg_try_advisory_lock(%s)", (WRITE_KEY,)).fetchone()[0]
                    is False
                )
        with engine.connect().execution_options(fleetctl_begin="DEFERRED") as conn, conn.begin():
            with connect(pg_url, autocommit=True) as other:  # reads take nothing
                assert (
                    other.execute("SELECT pg_try_advisory_lock(%s)", (WRITE_KEY,)).fetchone()[0]
                    is True
                )
    finally:
        engine.dispose()


def test_pg_reads_do_not_wait_for_a_writer(pg_url: DatabaseURL) -> None:
    from fleetctl.state.pg import WRITE_KEY, connect

    with StateStore(pg_url) as store, connect(pg_url) as other:
        _rollout(store)
        other.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_KEY,))  # a writer mid-transaction
        t0 = time.monotonic()
        assert len(store.rollouts()) == 1
        assert time.monotonic() - t0 < 1.0
        other.rollback()


def test_reads_do_not_wait_for_a_writer(sqlite_store: StateStore, sqlite_path: Path) -> None:
    store, db_path = sqlite_store, sqlite_path
    _rollout(store)
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        t0 = time.monotonic()
        assert len(store.rollouts()) == 1
        assert time.monotonic() - t0 < 1.0
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_foreign_keys_enforced(store: StateStore) -> None:
    with pytest.raises(ValueError, match="no rollout 42"):
        store.record_step(
            42, deployment="d@1", replica=0, host="h", action="create", container="c", outcome="ok"
        )
    with pytest.raises(ValueError, match="no rollout 42"):
        _revision(store, 42)


# -- migrations --------------------------------------------------------------------


def test_migrations_are_idempotent(db_path: Any) -> None:
    for _ in range(2):
        with StateStore(db_path) as s:
            assert s.schema_version == latest_version()
    versions = [
        v for (v,) in _query(db_path, "SELECT version FROM schema_migrations ORDER BY version")
    ]
    assert versions == [m.version for m in MIGRATIONS]


def test_concurrent_first_opens_migrate_once(db_path: Any) -> None:
    # Separate stores have separate engines, so they contend like separate processes.
    _in_threads(4, lambda _: StateStore(db_path).close())
    assert _query(db_path, "SELECT count(*) FROM schema_migrations") == [(len(MIGRATIONS),)]


def test_data_survives_reopen(db_path: Any) -> None:
    with StateStore(db_path) as s:
        rid = _rollout(s)
        _revision(s, rid)
    with StateStore(db_path) as s:
        assert [r.number for r in s.revisions("chat-llm@v3")] == [1]


def test_migration_versions_are_contiguous() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


def test_models_match_migrated_schema(store: StateStore, db_path: Any) -> None:
    for table in (
        models.Rollout,
        models.RolloutStep,
        models.Revision,
        models.Hold,
        models.HealthStreak,
        models.HealthEvent,
    ):
        name = str(table.__tablename__)
        if isinstance(db_path, DatabaseURL):
            rows = _query(
                db_path,
                f"SELECT column_name, is_nullable FROM information_schema.columns WHERE table_name = '{name}'",
            )
            in_db = {col: nullable == "NO" for col, nullable in rows}
        else:
            in_db = {row[1]: bool(row[3]) for row in _query(db_path, f"PRAGMA table_info({name})")}
        in_model = {c.name: not c.nullable for c in SQLModel.metadata.tables[name].columns}
        # SQLite reports INTEGER PRIMARY KEY as nullable; compare the other columns.
        in_db.pop("id")
        in_model.pop("id")
        assert in_db == in_model, name


def test_newer_schema_is_refused(db_path: Any) -> None:
    with StateStore(db_path):
        pass
    _query(db_path, "INSERT INTO schema_migrations VALUES (999, 'later')")
    with pytest.raises(FleetctlError, match="newer than this fleetctl"):
        StateStore(db_path)


# -- rollouts and steps ------------------------------------------------------------


def test_rollout_and_steps_round_trip(store: StateStore) -> None:
    plan = {
        "actions": [{"kind": "create", "deployment": "chat-llm@v3", "replica": 0}],
        "summary": {"gpus_used": 2},
    }
    rid = store.begin_rollout("apply", "inventory/fleet.yaml", "sha256:abc", plan)
    t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    s1 = store.record_step(
        rid,
        deployment="chat-llm@v3",
        replica=0,
        host="gpu-a",
        action="create",
        container="fleet-chat-llm-v3-0",
        outcome="ok",
        detail="ready in 41s",
        started_at=t0,
        finished_at=t0 + timedelta(seconds=41),
    )
    s2 = store.record_step(
        rid,
        deployment="chat-llm@v3",
        replica=1,
        host="gpu-b",
        action="recreate",
        container="fleet-chat-llm-v3-1",
        outcome="failed",
        detail="not ready after 600s",
        log_tail="CUDA out of memory\n",
    )
    running = store.rollouts()[0]
    assert running.outcome == "running" and running.finished_at is None
    store.finish_rollout(rid, "partial", "1 of 2 replicas updated")

    (r,) = store.rollouts()
    assert r == store.rollout(rid)
    assert (r.id, r.command, r.inventory_path, r.inventory_digest) == (
        rid,
        "apply",
        "inventory/fleet.yaml",
        "sha256:abc",
    )
    assert r.plan == plan
    assert r.outcome == "partial" and r.summary == "1 of 2 replicas updated"
    assert r.user
    assert (
        r.started_at.tzinfo is not None
        and r.finished_at is not None
        and r.finished_at >= r.started_at
    )

    steps = store.steps(rid)
    assert [s.id for s in steps] == [s1, s2]
    assert steps[0].started_at == t0 and steps[0].finished_at == t0 + timedelta(seconds=41)
    assert (steps[1].action, steps[1].outcome, steps[1].log_tail) == (
        "recreate",
        "failed",
        "CUDA out of memory\n",
    )
    assert steps[1].started_at == steps[1].finished_at
    with pytest.raises(dataclasses.FrozenInstanceError):
        steps[0].outcome = "ok"  # type: ignore[misc]


def test_rollouts_newest_first_and_limited(store: StateStore) -> None:
    ids = [_rollout(store, f"apply {i}") for i in range(5)]
    assert [r.id for r in store.rollouts(limit=3)] == ids[::-1][:3]


def test_abandoned_rollouts_marked_failed(store: StateStore) -> None:
    done, left = _rollout(store), _rollout(store)
    store.finish_rollout(done, "succeeded")
    assert store.fail_abandoned_rollouts() == [left]
    assert [(r.id, r.outcome) for r in store.rollouts()] == [(left, "failed"), (done, "succeeded")]
    assert store.fail_abandoned_rollouts() == []


def test_invalid_values_refused(store: StateStore) -> None:
    rid = _rollout(store)
    with pytest.raises(ValueError, match="outcome"):
        store.finish_rollout(rid, "running")
    with pytest.raises(ValueError, match="action"):
        store.record_step(
            rid,
            deployment="d@1",
            replica=0,
            host="h",
            action="restart",
            container="c",
            outcome="ok",
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        store.record_step(
            rid,
            deployment="d@1",
            replica=0,
            host="h",
            action="keep",
            container="c",
            outcome="ok",
            started_at=datetime.now(),
        )
    store.finish_rollout(rid, "noop")
    with pytest.raises(ValueError, match="already finished"):
        store.finish_rollout(rid, "failed")


# -- revisions ---------------------------------------------------------------------


def test_revision_numbering(store: StateStore) -> None:
    r1 = _revision(store, _rollout(store))
    assert (
        r1.number == 1
        and r1.spec["env"] == {"NIM_MAX_BATCH": "8"}
        and r1.placement[0]["gpus"] == [0, 1]
    )

    again = _revision(store, _rollout(store))
    assert again == r1

    r2 = _revision(
        store,
        _rollout(store),
        spec_hash="bbbb",
        spec={"image": "x", "env": {"NIM_MAX_BATCH": "16"}},
    )
    assert r2.number == 2

    other = _revision(store, _rollout(store), deployment="embed@v1", model="embed", version="v1")
    assert other.number == 1

    # A failed attempt keeps its own number and does not become the baseline...
    failed = _revision(store, _rollout(store), spec_hash="cccc", outcome="failed")
    assert failed.number == 3
    assert store.latest_revision("chat-llm@v3") == r2
    assert store.latest_revision("chat-llm@v3", outcome=None) == failed
    # ...so going back to the first spec (a rollback) is a new revision too.
    back = _revision(store, _rollout(store, "rollback chat-llm@v3"), spec_hash="aaaa")
    assert back.number == 4

    assert [r.number for r in store.revisions("chat-llm@v3")] == [4, 3, 2, 1]
    assert [(r.deployment, r.number) for r in store.revisions()] == [
        ("chat-llm@v3", 4),
        ("chat-llm@v3", 3),
        ("embed@v1", 1),
        ("chat-llm@v3", 2),
        ("chat-llm@v3", 1),
    ]
    assert store.revision("chat-llm@v3", 2) == r2
    assert store.revision("chat-llm@v3", 9) is None
    assert store.latest_revision("nope@v0") is None

    marked = store.set_revision_outcome("chat-llm@v3", 2, "rolled_back")
    assert marked.outcome == "rolled_back"
    assert store.latest_revision("chat-llm@v3", outcome="rolled_back") == marked


@pytest.mark.parametrize(
    "overrides, path",
    [
        ({"spec": {"env": {"NGC_API_KEY": SECRET}}}, "spec.env.NGC_API_KEY"),
        ({"spec": {"args": ["--token", f"Bearer {SECRET}"]}}, "spec.args[1]"),
        ({"spec": {"env": {SECRET: "x"}}}, "spec.env.<key>"),
        ({"placement": [{"replica": 0, "host": SECRET}]}, "placement[0].host"),
        ({"image_digest": SECRET}, "image_digest"),
    ],
)
def test_forbidden_values_refused_without_echo(
    store: StateStore, db_path: Any, overrides: dict[str, Any], path: str
) -> None:
    rid = _rollout(store)
    with pytest.raises(ValueError) as info:
        _revision(store, rid, forbidden_values=["", "short", SECRET], **overrides)
    message = str(info.value)
    assert path in message
    assert SECRET not in message
    assert store.revisions() == []
    if isinstance(db_path, DatabaseURL):
        assert not any(
            SECRET in str(row)
            for t in ("rollout", "revision")
            for row in _query(db_path, f"SELECT * FROM {t}")
        )
        return
    for f in db_path.parent.iterdir():
        assert SECRET.encode() not in f.read_bytes(), f


def test_short_forbidden_values_match_only_whole_strings(store: StateStore) -> None:
    rid = _rollout(store)
    rev = _revision(store, rid, spec={"port": "8000"}, forbidden_values=["80"])
    assert rev.number == 1
    with pytest.raises(ValueError, match=r"spec\.port"):
        _revision(store, rid, spec_hash="b", spec={"port": "80"}, forbidden_values=["80"])


def test_forbidden_values_in_plan_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match=r"plan\.env\.KEY") as info:
        store.begin_rollout(
            "apply", "f.yaml", "d", {"env": {"KEY": SECRET}}, forbidden_values=[SECRET]
        )
    assert SECRET not in str(info.value)
    assert store.rollouts() == []


# -- holds -------------------------------------------------------------------------


def _hold(store: StateStore, rollout_id: int | None, **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "model": "chat-llm",
        "version": "v3",
        "revision": 2,
        "spec": {"model": "chat-llm", "version": "v3", "image": "nvcr.io/nim/llama:1.0"},
        "inventory_version": "v4",
        "rollout_id": rollout_id,
        "command": "rollback chat-llm@v3",
    }
    fields.update(overrides)
    return store.set_hold(**fields)


def test_migration_3_adds_holds_to_a_database_made_before_it(sqlite_path: Path) -> None:
    db_path = sqlite_path
    from fleetctl.state.migrations import migrate

    engine = open_engine(db_path)
    try:
        with engine.begin() as conn:  # a state file as fleetctl made it before holds
            conn.exec_driver_sql(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            for m in MIGRATIONS[:2]:
                for statement in m.statements:
                    conn.exec_driver_sql(statement)
                conn.exec_driver_sql(
                    "INSERT INTO schema_migrations VALUES (?, 'then')", (m.version,)
                )
        assert _query(db_path, "SELECT name FROM sqlite_master WHERE name = 'hold'") == []
        assert migrate(engine) == latest_version() >= 3
    finally:
        engine.dispose()
    with StateStore(db_path) as s:
        assert s.holds() == []
        assert _hold(s, _rollout(s)).model == "chat-llm"


def test_hold_round_trip_one_per_model_and_delete(store: StateStore) -> None:
    rid = _rollout(store, "rollback chat-llm@v3")
    first = _hold(store, rid)
    assert (first.model, first.version, first.revision, first.inventory_version) == (
        "chat-llm",
        "v3",
        2,
        "v4",
    )
    assert first.spec["image"] == "nvcr.io/nim/llama:1.0" and first.rollout_id == rid
    assert first.created_at.tzinfo is not None and first.deployment == "chat-llm@v3"
    assert store.hold("chat-llm") == first and store.holds() == [first]

    # A new rollback of the model replaces its hold; other models keep theirs.
    second = _hold(store, None, version="v2", revision=1, command="rollback chat-llm@v2")
    other = _hold(store, rid, model="embeddings", version="1", revision=1, inventory_version="2")
    assert [h.model for h in store.holds()] == ["chat-llm", "embeddings"]
    assert store.hold("chat-llm") == second and second.rollout_id is None
    assert _query(store.path, "SELECT count(*) FROM hold") == [(2,)]

    assert store.delete_hold("chat-llm") == second
    assert store.delete_hold("chat-llm") is None
    assert store.holds() == [other]
    with pytest.raises(dataclasses.FrozenInstanceError):
        other.version = "9"  # type: ignore[misc]


def test_invalid_holds_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="no rollout 42"):
        _hold(store, 42)
    with pytest.raises(ValueError, match="revision must be >= 1"):
        _hold(store, None, revision=0)
    with pytest.raises(ValueError, match=r"spec\.env\.KEY") as info:
        _hold(store, None, spec={"env": {"KEY": SECRET}}, forbidden_values=[SECRET])
    assert SECRET not in str(info.value)
    assert store.holds() == []


def test_holds_are_read_without_sqlalchemy(store: StateStore, db_path: Any, tmp_path: Path) -> None:
    from fleetctl.state.peek import read_holds

    assert read_holds(tmp_path / "missing.db") == []
    assert read_holds(db_path) == []
    held = _hold(store, _rollout(store))
    assert read_holds(db_path) == [held]  # the same value the store hands out
    code = (
        "import sys; from fleetctl.state.paths import parse_state_location; from fleetctl.state.peek import read_holds; "
        f"hs = read_holds(parse_state_location({str(db_path)!r})); "
        "assert [h.version for h in hs] == ['v3'], hs; "
        "assert not any(m.startswith(('sqlalchemy', 'sqlmodel')) for m in sys.modules), 'imported SQLAlchemy'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_a_state_file_from_before_holds_reads_as_no_holds(sqlite_path: Path) -> None:
    db_path = sqlite_path
    from fleetctl.state.peek import read_holds

    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE revision (id INTEGER PRIMARY KEY)")
    conn.close()
    assert read_holds(db_path) == []


# -- concurrency -------------------------------------------------------------------


def test_concurrent_writes_from_threads(store: StateStore) -> None:
    rid = _rollout(store)
    per_thread = 25

    def work(t: int) -> None:
        for i in range(per_thread):
            store.record_step(
                rid,
                deployment=f"d{t}@v1",
                replica=i,
                host=f"h{t}",
                action="create",
                container=f"c-{t}-{i}",
                outcome="ok",
            )
            _revision(store, rid, spec_hash=f"{t}-{i}")
            store.rollouts(limit=1)

    _in_threads(4, work)
    assert len(store.steps(rid)) == 4 * per_thread
    numbers = sorted(r.number for r in store.revisions("chat-llm@v3"))
    assert numbers == list(range(1, 4 * per_thread + 1))


_WRITER = """
import sys
from fleetctl.state.paths import parse_state_location
from fleetctl.state.store import StateStore
with StateStore(parse_state_location(sys.argv[1])) as s:
    for i in range(int(sys.argv[2])):
        s.record_step(int(sys.argv[3]), deployment="proc@v1", replica=i, host="h", action="keep",
                      container=f"c{i}", outcome="ok")
        s.record_revision(deployment="shared@v1", model="shared", version="v1", spec_hash=f"p{i}",
                          spec={}, image="i", image_digest=None, placement=[], outcome="applied",
                          rollout_id=int(sys.argv[3]))
"""


def test_concurrent_writes_from_two_processes(store: StateStore, db_path: Any) -> None:
    rid = _rollout(store)
    n = 40
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db_path), str(n), str(rid)], cwd=REPO_ROOT
    )
    try:
        for i in range(n):
            store.record_step(
                rid,
                deployment="main@v1",
                replica=i,
                host="h",
                action="keep",
                container=f"m{i}",
                outcome="ok",
            )
            _revision(store, rid, deployment="shared@v1", spec_hash=f"m{i}")
    finally:
        assert child.wait(timeout=60) == 0
    assert len(store.steps(rid)) == 2 * n
    numbers = sorted(r.number for r in store.revisions("shared@v1"))
    assert numbers == list(range(1, 2 * n + 1))
