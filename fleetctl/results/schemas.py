"""The published JSON Schemas of the commands' `--output json` documents (docs/schemas/).

Generated from the result types, never written by hand: `fleetctl schema --results
docs/schemas` rewrites them, and a unit test fails when a file is not current.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path("docs/schemas")


def documents() -> dict[str, tuple[Any, str]]:
    """File stem -> (result type, title), one per command that prints JSON."""
    from fleetctl.results import decide, fleet, health, plan

    return {
        "plan": (plan.PlanResult, "fleetctl plan --output json"),
        "validate": (plan.ValidateResult, "fleetctl validate --output json"),
        "status": (fleet.StatusResult, "fleetctl status --output json"),
        "health": (health.HealthResult, "fleetctl health --output json"),
        "health-history": (
            health.HealthHistoryResult,
            "fleetctl health --history NAME --output json",
        ),
        "history": (fleet.HistoryResult, "fleetctl history [NAME@VERSION] --output json"),
        "apply": (fleet.ApplyResult, "fleetctl apply --output json"),
        "rollback": (fleet.RollbackResult, "fleetctl rollback --output json"),
        "down": (fleet.DownResult, "fleetctl down --output json"),
        "release": (fleet.ReleaseResult, "fleetctl release --output json"),
        "pins": (fleet.PinsResult, "fleetctl pins --output json"),
        "report": (decide.ReportResult, "fleetctl report --output json"),
        "advise": (decide.AdviseResult, "fleetctl advise [MODEL] --output json"),
        "state-migrate": (fleet.MigrateResult, "fleetctl state migrate --output json"),
    }


def schema_text(stem: str) -> str:
    from fleetctl.results import result_schema

    tp, title = documents()[stem]
    return json.dumps(result_schema(tp, title), indent=2, sort_keys=True) + "\n"


def write_schemas(folder: Path) -> list[Path]:
    """Write every document's schema into `folder` as STEM.schema.json (atomically)."""
    from fleetctl.fsutil import atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for stem in documents():
        path = folder / f"{stem}.schema.json"
        atomic_write_text(path, schema_text(stem))
        out.append(path)
    return out
