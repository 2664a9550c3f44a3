"""A read-only look at revision numbers with the standard `sqlite3` module.

`apply` needs each deployment's revision number before it starts any container (the
number goes into the container's labels). Reading it here costs a few milliseconds,
so the SQLAlchemy-based store (about 0.4 s to import and open) can be opened while the
first containers start, instead of before.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RevisionKey:
    deployment: str
    number: int
    spec_hash: str
    outcome: str


def revision_keys(state_path: Path) -> dict[str, list[RevisionKey]]:
    """Every revision's (number, spec hash, outcome) per deployment, newest first."""
    if not Path(state_path).exists():
        return {}
    uri = f"file:{Path(state_path).resolve()}?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True, timeout=5) as conn:
            rows = conn.execute(
                "SELECT deployment, number, spec_hash, outcome FROM revision ORDER BY deployment, number DESC"
            ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}  # created but not migrated yet
        raise
    out: dict[str, list[RevisionKey]] = {}
    for dep, number, spec_hash, outcome in rows:
        out.setdefault(dep, []).append(RevisionKey(dep, int(number), spec_hash, outcome))
    return out


def next_numbers(keys: dict[str, list[RevisionKey]], wanted: dict[str, str]) -> dict[str, int]:
    """The number each deployment's spec will be recorded under (the store's own rule):
    the latest applied revision's number when the spec is unchanged, else max + 1."""
    out = {}
    for dep, spec_hash in wanted.items():
        revs = keys.get(dep, [])
        latest_applied = next((r for r in revs if r.outcome == "applied"), None)
        if latest_applied is not None and latest_applied.spec_hash == spec_hash:
            out[dep] = latest_applied.number
        else:
            out[dep] = max((r.number for r in revs), default=0) + 1
    return out
