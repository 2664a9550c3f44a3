"""How long replicas of a deployment took to become ready, read with `sqlite3`.

Used to tell, before asking, for about how long a stop-first replacement leaves a replica
out of service: the median of its last successful starts. Read-only and cheap, like
`fleetctl.state.peek`.
"""

from __future__ import annotations

import sqlite3
import statistics
from datetime import datetime
from pathlib import Path

RECENT = 5


def start_seconds(state_path: Path, deployments: list[str]) -> dict[str, float]:
    """deployment -> median seconds of its last successful create or recreate steps."""
    if not deployments or not Path(state_path).exists():
        return {}
    uri = f"file:{Path(state_path).resolve()}?mode=ro"
    out: dict[str, float] = {}
    try:
        with sqlite3.connect(uri, uri=True, timeout=5) as conn:
            for dep in deployments:
                rows = conn.execute(
                    "SELECT started_at, finished_at FROM rollout_step WHERE deployment = ? AND outcome = 'ok' "
                    "AND action IN ('create', 'recreate') ORDER BY id DESC LIMIT ?",
                    (dep, RECENT),
                ).fetchall()
                took = [(datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() for a, b in rows]
                if took:
                    out[dep] = statistics.median(took)
    except sqlite3.OperationalError:
        return {}  # no tables yet
    return out
