"""Labels are the contract with Docker: who owns a container and what it is.

Every managed container carries these; observation is a label-filtered list, and a
container without `io.fleetctl.owner` is never touched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from fleetctl.core.observed import ObservedContainer, ObservedFrontDoor
from fleetctl.core.recovery import OLD_SUFFIX, TEMP_SUFFIX  # noqa: F401 (re-exported: the names' contract)
from fleetctl.core.triton_servers import parse_member_labels

PREFIX = "io.fleetctl."
OWNER = PREFIX + "owner"
OWNER_VALUE = "fleetctl"
FLEET = PREFIX + "fleet"
DEPLOYMENT = PREFIX + "deployment"
MODEL = PREFIX + "model"
VERSION = PREFIX + "version"
REPLICA = PREFIX + "replica"
REVISION = PREFIX + "revision"
GPUS = PREFIX + "gpus"
GPUS_SIMULATED = PREFIX + "gpus-simulated"
SPEC_HASH = PREFIX + "spec-hash"
IMAGE = PREFIX + "image"
PORT = PREFIX + "port"
ENDPOINT = PREFIX + "endpoint"
RUNTIME = PREFIX + "runtime"
ROLE = PREFIX + "role"
ROLE_FRONT_DOOR = "front-door"
# A shared Triton server: the members it started with (`model=deployment/hash,…`); the
# models fleetctl loads later record their member in their own config.
TRITON_MEMBERS = PREFIX + "triton-members"

OWNER_FILTER = f"{OWNER}={OWNER_VALUE}"


def fleet_filter(fleet: str) -> list[str]:
    return [OWNER_FILTER, f"{FLEET}={fleet}"]


def container_name(deployment: str, replica: int, fleet: str = "default") -> str:
    """A Docker-safe, stable name: `fleetctl-chat-llm-v4-0` (`fleetctl-FLEET-…` for a named fleet)."""
    safe = re.sub(r"[^a-zA-Z0-9_.-]+", "-", deployment.replace("@", "-"))
    prefix = "fleetctl" if fleet == "default" else f"fleetctl-{fleet}"
    return f"{prefix}-{safe}-{replica}"


def managed_labels(
    *,
    fleet: str,
    deployment: str,
    model: str,
    version: str,
    runtime: str,
    replica: int,
    gpus: tuple[int, ...],
    simulated: bool,
    spec_hash: str,
    image: str,
    port: int | None,
    endpoint: str,
    revision: int | None,
) -> dict[str, str]:
    labels = {
        OWNER: OWNER_VALUE,
        FLEET: fleet,
        DEPLOYMENT: deployment,
        MODEL: model,
        VERSION: version,
        RUNTIME: runtime,
        REPLICA: str(replica),
        GPUS: ",".join(str(g) for g in gpus),
        GPUS_SIMULATED: "true" if simulated else "false",
        SPEC_HASH: spec_hash,
        IMAGE: image,
        ENDPOINT: endpoint,
    }
    if port is not None:
        labels[PORT] = str(port)
    if revision is not None:
        labels[REVISION] = str(revision)
    return labels


def front_door_name(fleet: str = "default") -> str:
    return "fleetctl-front-door" if fleet == "default" else f"fleetctl-{fleet}-front-door"


def front_door_labels(
    *, fleet: str, spec_hash: str, image: str, port: int, url: str
) -> dict[str, str]:
    return {
        OWNER: OWNER_VALUE,
        FLEET: fleet,
        ROLE: ROLE_FRONT_DOOR,
        SPEC_HASH: spec_hash,
        IMAGE: image,
        PORT: str(port),
        ENDPOINT: url,
    }


def is_front_door(labels: Mapping[str, str]) -> bool:
    return labels.get(OWNER) == OWNER_VALUE and labels.get(ROLE) == ROLE_FRONT_DOOR


def observed_front_door(
    host: str,
    cid: str,
    name: str,
    state: str,
    image: str,
    labels: Mapping[str, str],
    routes_hash: str | None,
) -> ObservedFrontDoor:
    return ObservedFrontDoor(
        host=host,
        id=cid,
        name=name.lstrip("/"),
        state=state,
        image=image,
        spec_hash=labels.get(SPEC_HASH, ""),
        port=_int(labels.get(PORT)),
        url=labels.get(ENDPOINT, ""),
        routes_hash=routes_hash,
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def observed_from(
    host: str, cid: str, name: str, state: str, image: str, labels: Mapping[str, str]
) -> ObservedContainer | None:
    """Read one container's labels; None when it is not fully ours (never touched)."""
    if labels.get(OWNER) != OWNER_VALUE or DEPLOYMENT not in labels:
        return None
    replica = _int(labels.get(REPLICA))
    if replica is None:
        return None
    gpus = tuple(int(g) for g in labels.get(GPUS, "").split(",") if g.strip().isdigit())
    return ObservedContainer(
        host=host,
        id=cid,
        name=name.lstrip("/"),
        deployment=labels[DEPLOYMENT],
        replica=replica,
        gpus=gpus,
        spec_hash=labels.get(SPEC_HASH, ""),
        state=state,
        image=image,
        labeled_image=labels.get(IMAGE, ""),
        port=_int(labels.get(PORT)),
        revision=_int(labels.get(REVISION)),
        # Labels cannot change after creation, so a rollout's successor (not yet gated)
        # and its parked predecessor are known by their names (fleetctl.core.recovery).
        temporary=name.lstrip("/").endswith(TEMP_SUFFIX),
        parked=name.lstrip("/").endswith(OLD_SUFFIX),
        endpoint=labels.get(ENDPOINT, ""),
        runtime=labels.get(RUNTIME, ""),
        triton_members=parse_member_labels(labels[TRITON_MEMBERS])
        if TRITON_MEMBERS in labels
        else None,
    )
