"""Co-located Triton models share one Triton server (pure).

Triton is a multi-model server: its explicit model control loads, unloads and reloads
one model without touching the others, and keeps the old version serving when a reload
fails. So the Triton deployments that can share a server (same image, same server
settings, same host selector and GPU models, GPU count and replica count, no pin, not
`dedicated`) are grouped into one *server deployment* before placement. Placement then puts the whole
group on one GPU set (its memory is the sum of its members'), and each replica of the
group is one Triton container with every member's models.

The server's identity is its group: image, server settings and repositories. Its
members (which models it holds) and its memory are not part of its container's spec, so
adding, removing or changing a member never restarts it: the plan loads, unloads or
reloads that model in the running server (`model_actions`). A new image or a new model
repository is a new container, rolled start-first like any other.

Members that could not share a GPU under their SLAs (the rule of fleetctl.core.sla
applied inside the group) are split into several servers.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fleetctl.core.fleet import Deployment, GpuSpec, HostSpec
from fleetctl.core.observed import ObservedContainer
from fleetctl.core.sla import util_of, util_slack

SERVER_KEY = "triton_server"  # the settings key that marks a server deployment
MODEL_PREFIX = "triton-"
# Server-level settings: they must agree for deployments to share a server.
SERVER_FIELDS = ("server_binary", "backend_directory", "args", "shm_size")
REPO_ROOT = "/models"


@dataclass(frozen=True)
class Member:
    """One deployment served by a shared server: its models, where they come from, and
    the part of their Triton configuration the inventory sets (`config_overrides`)."""

    deployment: str
    models: tuple[str, ...]
    repository: str
    config_json: str = "{}"  # canonical JSON of the overrides (hashable)

    @property
    def config(self) -> dict[str, Any]:
        return dict(json.loads(self.config_json))

    def identity(self) -> str:
        """What a loaded model records of the member that loaded it (its config's
        `fleetctl.member` parameter): the deployment and a hash of its definition."""
        blob = json.dumps(
            [self.deployment, self.repository, self.config_json], separators=(",", ":")
        )
        return f"{self.deployment}/{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def config_overrides(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The inventory's per-model Triton settings as fields of Triton's model
    configuration (JSON), merged into the model's own configuration when it is loaded."""
    out: dict[str, Any] = {}
    if cfg.get("instance_count"):
        out["instance_group_count"] = int(cfg["instance_count"])
    batching = cfg.get("dynamic_batching")
    if batching is not None:
        out["dynamic_batching"] = {
            "max_queue_delay_microseconds": int(batching.get("max_queue_delay_us") or 0),
            "preferred_batch_size": list(batching.get("preferred_batch_sizes") or []),
        }
    policy = cfg.get("version_policy")
    if policy is not None:
        if policy.get("latest") is not None:
            out["version_policy"] = {"latest": {"num_versions": int(policy["latest"])}}
        elif policy.get("specific") is not None:
            out["version_policy"] = {"specific": {"versions": [int(v) for v in policy["specific"]]}}
        else:
            out["version_policy"] = {"all": {}}
    return out


def merged_config(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A model's configuration (as Triton returns it) with the overrides applied."""
    out = dict(config)
    for key, value in overrides.items():
        if key == "instance_group_count":
            groups = [dict(g) for g in out.get("instance_group") or []] or [{"kind": "KIND_AUTO"}]
            out["instance_group"] = [{**g, "count": value} for g in groups]
        else:
            out[key] = value
    return out


def is_server(d: Deployment) -> bool:
    return SERVER_KEY in d.settings


def members_of(d: Deployment) -> tuple[Member, ...]:
    return tuple(
        Member(
            m["deployment"],
            tuple(m["models"]),
            m["repository"],
            json.dumps(m.get("config") or {}, sort_keys=True),
        )
        for m in (d.settings.get(SERVER_KEY) or {}).get("members", ())
    )


def repositories_of(d: Deployment) -> tuple[str, ...]:
    return tuple((d.settings.get(SERVER_KEY) or {}).get("repositories", ()))


def repository_mount(path: str) -> str:
    """Where a repository is mounted in the server: stable per host path."""
    return f"{REPO_ROOT}/{hashlib.sha256(path.encode()).hexdigest()[:8]}"


def shareable(d: Deployment) -> bool:
    """Served through a Triton server of fleetctl's (shared, or of its own when
    `dedicated`); pinned versions and exclusive ones keep a container per deployment."""
    return d.runtime == "triton" and not d.pinned and not d.exclusive and not is_server(d)


def _group_key(d: Deployment) -> str:
    cfg = d.settings.get("triton") or {}
    key = {
        # A dedicated model is a server of its own: its name keeps it apart.
        "own": d.model if cfg.get("dedicated") else None,
        "server": {f: cfg.get(f) for f in SERVER_FIELDS},
        "env": d.settings.get("env") or {},
        "secrets": d.settings.get("secrets") or {},
        "selector": dict(d.selector),
        "gpus": d.gpus,
        "replicas": d.replicas,
    }
    if d.gpu_models:  # only when set, so the servers of fleets without any keep their names
        key["gpu_models"] = sorted(d.gpu_models)
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:6]


def _slack(members: Sequence[Deployment], gpu_memory_gb: float) -> float:
    """How much compute tenants outside the group may take on its GPU while every member
    keeps its SLA: min over members of (its slack - what the other members take)."""
    gpu = GpuSpec(0, gpu_memory_gb)
    total = sum(util_of(m, gpu) for m in members)
    slacks = [(util_slack(m), m) for m in members]
    return min(
        (s - (total - util_of(m, gpu)) for s, m in slacks if s != math.inf), default=math.inf
    )


@dataclass
class _Forming:
    """A server being formed: its members and the running sums `_split` checks."""

    members: list[Deployment]
    memory_per_gpu_gb: float = 0.0
    util: float = 0.0  # the members' compute on one GPU
    ceiling: float = math.inf  # min over members with an SLA of (its slack + its util)

    def admits(self, d: Deployment, gpu: GpuSpec, capacity_gb: float) -> bool:
        u = util_of(d, gpu)
        util = self.util + u
        ceiling = min(self.ceiling, util_slack(d) + u)
        return (
            self.memory_per_gpu_gb + d.memory_per_gpu_gb <= capacity_gb + 1e-9
            and util <= 1.0 + 1e-9
            # Every member keeps its SLA: its slack covers what the others take.
            and ceiling - util >= 0
        )

    def add(self, d: Deployment, gpu: GpuSpec) -> None:
        u = util_of(d, gpu)
        self.members.append(d)
        self.memory_per_gpu_gb += d.memory_per_gpu_gb
        self.util += u
        self.ceiling = min(self.ceiling, util_slack(d) + u)


def _split(
    members: Sequence[Deployment], gpu_memory_gb: float, capacity_gb: float = math.inf
) -> list[list[Deployment]]:
    """Members in name order, each in the first server it fits: the server's memory per
    GPU within `capacity_gb` (the largest GPU its members may use), its compute within
    one GPU, and every member's SLA kept (the rule of `_slack`). Each server keeps its
    sums, so a check costs the same whatever its size."""
    gpu = GpuSpec(0, gpu_memory_gb)
    ordered = sorted(members, key=lambda d: d.name)
    # A server that cannot take even the smallest member is closed: first fit over the
    # rest gives the same servers and stays near linear when there are thousands.
    least_gb = min((d.memory_per_gpu_gb for d in ordered), default=0.0)
    least_util = min((util_of(d, gpu) for d in ordered), default=0.0)
    formed: list[_Forming] = []  # in the order they were started
    open_: list[_Forming] = []
    for d in ordered:
        for f in open_:
            if f.admits(d, gpu, capacity_gb):
                f.add(d, gpu)
                break
        else:
            f = _Forming([])
            f.add(d, gpu)  # alone it goes where placement can take it (or says why not)
            open_.append(f)
            formed.append(f)
        if f.memory_per_gpu_gb + least_gb > capacity_gb + 1e-9 or f.util + least_util > 1.0 + 1e-9:
            open_.remove(f)
    return [f.members for f in formed]


def _server(members: Sequence[Deployment], model: str, gpu_memory_gb: float) -> Deployment:
    first = members[0]
    cfg = dict(first.settings.get("triton") or {})
    repositories = sorted(
        {(m.settings.get("triton") or {}).get("model_repository", "") for m in members}
    )
    member_rows = [
        {
            "deployment": m.name,
            "models": list((m.settings.get("triton") or {}).get("models") or [m.model]),
            "repository": (m.settings.get("triton") or {}).get("model_repository", ""),
            "config": config_overrides(m.settings.get("triton") or {}),
        }
        for m in members
    ]
    models = [n for row in member_rows for n in row["models"]]
    cfg.update(
        models=models,
        model_repository=repositories[0] if repositories else "",
        startup_timeout_s=max(
            (m.settings.get("triton") or {}).get("startup_timeout_s") or 0 for m in members
        )
        or None,
    )
    slack = _slack(members, gpu_memory_gb)
    sla = min((m.sla_ms for m in members if m.sla_ms is not None), default=None)
    utils = [m.gpu_util for m in members]
    settings = {
        **first.settings,
        "triton": cfg,
        SERVER_KEY: {"repositories": repositories, "members": member_rows},
    }
    return Deployment(
        model=model,
        version=hashlib.sha256(first.image.encode()).hexdigest()[:6],
        runtime="triton",
        image=first.image,
        memory_gb=sum(m.memory_gb for m in members),
        gpus=first.gpus,
        replicas=first.replicas,
        sla_ms=sla,
        # Encodes the group's slack for the SLA rule: 1 - latency/sla = slack.
        latency_ms=None if sla is None or slack == math.inf else sla * (1.0 - slack),
        gpu_util=sum(u for u in utils if u is not None)
        if all(u is not None for u in utils)
        else None,
        selector=first.selector,
        settings=settings,
        gpu_models=first.gpu_models,
    )


def serve_together(
    deployments: Iterable[Deployment], hosts: Sequence[HostSpec]
) -> list[Deployment]:
    """The deployments with each group of Triton deployments that can share a server
    replaced by one server deployment. Hosts give the GPU size the SLA rule is checked
    on (the smallest: the most conservative)."""
    return grouped(deployments, hosts)[0]


def grouped(
    deployments: Iterable[Deployment], hosts: Sequence[HostSpec]
) -> tuple[list[Deployment], dict[str, tuple[Deployment, ...]]]:
    """`serve_together`, and each server deployment's members."""
    deployments = list(deployments)
    sizes = [g.memory_gb for h in hosts for g in h.gpus]
    gpu_memory_gb = min(sizes) if sizes else 80.0
    groups: dict[tuple[str, str], list[Deployment]] = {}
    out: list[Deployment] = []
    for d in deployments:
        if shareable(d):
            groups.setdefault((_group_key(d), d.image), []).append(d)
        else:
            out.append(d)
    names: dict[str, int] = {}
    members_of_server: dict[str, tuple[Deployment, ...]] = {}
    for (key, image), members in sorted(groups.items()):
        first = members[0]  # the group shares its selector and GPU count
        capacity_gb = max(
            (g.usable_gb for h in hosts if h.matches(first.selector) for g in h.gpus),
            default=math.inf,
        )
        for i, part in enumerate(_split(members, gpu_memory_gb, capacity_gb)):
            model = f"{MODEL_PREFIX}{key}" + (f"-{i + 1}" if i else "")
            # Two images with the same server settings: told apart by their image.
            if model in names:
                model += "-" + hashlib.sha256(image.encode()).hexdigest()[:4]
            names[model] = 1
            server = _server(part, model, gpu_memory_gb)
            out.append(server)
            members_of_server[server.name] = tuple(part)
    return out, members_of_server


def server_spec_view(d: Deployment) -> dict[str, Any]:
    """The part of a server deployment that its container is made from: not its members
    nor its memory, which change without a restart."""
    cfg = d.settings.get("triton") or {}
    return {
        # What every member shares (the grouping key), not any member's own settings.
        "env": d.settings.get("env") or {},
        "secrets": d.settings.get("secrets") or {},
        "triton": {f: cfg.get(f) for f in SERVER_FIELDS},
        SERVER_KEY: {"repositories": repositories_of(d)},
    }


# -- what a running server holds, and what to change in it ---------------------------------


@dataclass(frozen=True)
class ModelChange:
    kind: str  # "load", "reload" or "unload"
    model: str
    member: str  # the member deployment (unload: the one that had it, if known)
    identity: str  # load/reload: what the loaded model will record
    reason: str


def model_changes(d: Deployment, c: ObservedContainer) -> list[ModelChange]:
    """What to load, reload and unload in the running server `c` so that it holds
    exactly the models of `d`'s members (nothing while its readiness is unknown)."""
    if c.triton_ready is None:
        return []
    loaded: Mapping[str, str] = c.triton_members or {}
    ready = set(c.triton_ready)
    out: list[ModelChange] = []
    wanted: dict[str, Member] = {}
    for m in members_of(d):
        for name in m.models:
            wanted.setdefault(name, m)
    for name in sorted(wanted):
        m = wanted[name]
        if name not in ready:
            out.append(
                ModelChange(
                    "load", name, m.deployment, m.identity(), f"load {name} ({m.deployment})"
                )
            )
        elif name not in loaded and m.config:
            out.append(
                ModelChange(
                    "reload",
                    name,
                    m.deployment,
                    m.identity(),
                    f"reload {name}: apply its configuration",
                )
            )
        elif loaded.get(name) not in (None, m.identity()):
            was = loaded[name].partition("/")[0]
            why = (
                f"reload {name}: {was} -> {m.deployment}"
                if was != m.deployment
                else f"reload {name} ({m.deployment} changed)"
            )
            out.append(ModelChange("reload", name, m.deployment, m.identity(), why))
    for name in sorted(ready - set(wanted)):
        was = (loaded.get(name) or "").partition("/")[0]
        out.append(
            ModelChange(
                "unload",
                name,
                was,
                "",
                f"unload {name}" + (f" ({was} left the inventory)" if was else " (not declared)"),
            )
        )
    return out


def member_labels(d: Deployment) -> str:
    """The members a server starts with, for its container's label: `model=identity,…`.
    A member with configuration overrides starts from the repository's configuration,
    so it is not listed: `configure_at_start` reloads it with its own."""
    return ",".join(f"{n}={m.identity()}" for m in members_of(d) if not m.config for n in m.models)


def configure_at_start(d: Deployment) -> list[ModelChange]:
    """A new server loads its models from the repository (--load-model); the members
    whose configuration the inventory sets are reloaded with it once the server is up."""
    return [
        ModelChange("reload", n, m.deployment, m.identity(), f"reload {n}: apply its configuration")
        for m in members_of(d)
        if m.config
        for n in m.models
    ]


def parse_member_labels(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in value.split(","):
        name, sep, ident = part.partition("=")
        if sep and name:
            out[name] = ident
    return out


def with_observed_members(
    c: ObservedContainer, configs: Mapping[str, str | None], initial: Mapping[str, str]
) -> ObservedContainer:
    """`c` with, per ready model, the member that loaded it: its config's parameter when
    fleetctl loaded it, else the server's starting members (loaded by --load-model)."""
    members = {name: configs.get(name) or initial.get(name, "") for name in c.triton_ready or ()}
    return replace(c, triton_members={k: v for k, v in members.items() if v})
