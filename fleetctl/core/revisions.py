"""Revisions: what a deployment's recorded spec is, its identity, and the number it is
recorded under (pure; the state store and its read-only peek both number by this rule)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

from fleetctl.core.fleet import Deployment


def deployment_record(d: Deployment) -> dict[str, Any]:
    """The deployment as a revision records it (fleetctl.core.holds rebuilds it)."""
    rec = asdict(d)
    rec["selector"] = dict(d.selector)
    rec["customers"] = list(d.customers)
    return rec


def deployment_hash(d: Deployment) -> str:
    """The identity of a deployment's spec for revisions (placement excluded)."""
    blob = json.dumps(deployment_record(d), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def revision_number(
    spec_hash: str, latest_applied: tuple[int, str] | None, highest: int | None
) -> tuple[int, bool]:
    """The number a deployment's spec is recorded under, and whether that revision exists
    already: re-applying the spec of the latest applied revision (`(number, spec_hash)`)
    reuses its number; any other spec takes one past the `highest` number so far."""
    if latest_applied is not None and latest_applied[1] == spec_hash:
        return latest_applied[0], True
    return (highest or 0) + 1, False
