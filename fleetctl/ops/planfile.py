"""Saved plans: `plan -o FILE` writes one, `apply --plan FILE` checks and executes it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from fleetctl.core.plan import plan_to_json
from fleetctl.errors import FleetctlError, StalePlanError
from fleetctl.ops.planning import PlanResult

FORMAT = "fleetctl-plan/1"


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_plan(path: Path, result: PlanResult) -> None:
    doc = {
        "format": FORMAT,
        "inventory": str(Path(result.loaded.path).resolve()),
        "inventory_digest": result.inventory_digest,
        "observed_fingerprint": result.plan.observed_fingerprint,
        "offline": result.observed.offline,
        "plan": plan_to_json(result.plan),
    }
    write_atomic(Path(path), json.dumps(doc, indent=2) + "\n")


def read_plan(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FleetctlError(f"{path}: no such plan file") from None
    except json.JSONDecodeError as exc:
        raise FleetctlError(
            f"{path}:{exc.lineno}:{exc.colno}: not a plan file: {exc.msg}"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FleetctlError(f"{path}: not a fleetctl plan (expected format {FORMAT})")
    return doc


def check_fresh(doc: dict[str, Any], result: PlanResult, path: Path) -> None:
    """Refuse a saved plan when the inventory or the fleet changed since it was made."""
    if doc["inventory_digest"] != result.inventory_digest:
        raise StalePlanError(
            f"{path}: the inventory {doc['inventory']} changed since this plan was made; run `fleetctl plan` again"
        )
    if doc.get("offline"):
        raise StalePlanError(
            f"{path}: this plan was made with --offline and cannot be applied; plan without --offline"
        )
    if doc["observed_fingerprint"] != result.plan.observed_fingerprint:
        raise StalePlanError(
            f"{path}: the fleet changed since this plan was made (containers started, stopped or changed); run `fleetctl plan` again"
        )
    saved = [
        (a["kind"], a["deployment"], a["replica"], a["host"], a["gpus"])
        for a in doc["plan"]["actions"]
    ]
    now = [
        (a.kind.value, a.deployment, a.replica, a.host, list(a.gpus)) for a in result.plan.actions
    ]
    if saved != now:
        raise StalePlanError(
            f"{path}: the plan no longer matches what fleetctl would do now; run `fleetctl plan` again"
        )
