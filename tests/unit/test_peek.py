"""The fast read of revision numbers agrees with the numbers the store assigns, on both
backends (plain sqlite3, or psycopg without SQLAlchemy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleetctl.state.peek import next_numbers, revision_keys
from fleetctl.state.store import StateStore


def record(store: StateStore, rid: int, dep: str, spec_hash: str, outcome: str = "applied") -> int:
    return store.record_revision(
        deployment=dep,
        model=dep.split("@")[0],
        version=dep.split("@")[1],
        spec_hash=spec_hash,
        spec={"h": spec_hash},
        image="img",
        image_digest=None,
        placement=[],
        outcome=outcome,
        rollout_id=rid,
    ).number


def test_missing_database_means_first_revisions(tmp_path: Path) -> None:
    assert revision_keys(tmp_path / "none.db") == {}
    assert next_numbers({}, {"a@1": "h1"}) == {"a@1": 1}


def test_an_unmigrated_database_means_first_revisions(postgres_server: Any) -> None:
    from fleetctl.state.paths import parse_state_location
    from fleetctl.state.peek import read_holds, start_seconds

    empty = parse_state_location(postgres_server.url(postgres_server.new_database()))
    assert (
        revision_keys(empty) == {}
        and read_holds(empty) == []
        and start_seconds(empty, ["a@1"]) == {}
    )


def test_predictions_match_the_store(state_location: Any) -> None:
    db = state_location
    with StateStore(db) as store:
        rid = store.begin_rollout("apply", "fleet.yaml", "d", {})
        sequence = [
            ("a@1", "h1", "applied"),
            ("a@1", "h1", "applied"),
            ("a@1", "h2", "failed"),
            ("a@1", "h2", "applied"),
            ("a@1", "h1", "applied"),
            ("b@1", "x", "failed"),
        ]
        for dep, h, outcome in sequence:
            predicted = next_numbers(revision_keys(db), {dep: h})[dep]
            assert record(store, rid, dep, h, outcome) == predicted
    keys = revision_keys(db)
    assert [k.number for k in keys["a@1"]] == [4, 3, 2, 1]
