"""Why each replica of a deployment went where it went, and why not anywhere else.

The plan is replayed into a placement state; for each replica, every other GPU is
checked as if the replica were moved there, and the rules that forbid it are named.
GPUs with the same verdict are reported together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleetctl.core.fleet import Deployment, HostSpec, Placement
from fleetctl.core.placement.reasons import blockers, why_here
from fleetctl.core.placement.state import Dep, Gpu, Item, State
from fleetctl.errors import NotFoundError

_WHERE_HOSTS = 6  # hosts named in a group's one-line location before "and N more"
_MAX_GROUPS = 24  # beyond this, GPUs are grouped by the rules that block them


@dataclass(frozen=True)
class GpuGroup:
    """GPUs that share one verdict, as "host:index" labels in host and index order."""

    gpus: tuple[str, ...]
    reasons: tuple[str, ...]

    def where(self) -> str:
        by_host: dict[str, list[str]] = {}
        for label in self.gpus:
            host, _, index = label.rpartition(":")
            by_host.setdefault(host, []).append(index)
        parts = [f"{h} GPU{'s' if len(ix) > 1 else ''} {','.join(ix)}" for h, ix in by_host.items()]
        if len(parts) > _WHERE_HOSTS:
            parts = parts[:_WHERE_HOSTS] + [f"and {len(parts) - _WHERE_HOSTS} more hosts"]
        return "; ".join(parts)


@dataclass(frozen=True)
class ReplicaExplanation:
    deployment: str
    replica: int
    host: str | None  # None when the replica could not be placed
    gpus: tuple[int, ...]
    why: tuple[str, ...]  # the reason for its place, or why it has none
    elsewhere: tuple[GpuGroup, ...]  # every other GPU, grouped by verdict

    @property
    def key(self) -> str:
        return f"{self.deployment}#{self.replica}"

    def render(self) -> str:
        if self.host is None:
            head = f"{self.key}: not placed"
        else:
            head = f"{self.key} -> {self.host} GPU{'s' if len(self.gpus) > 1 else ''} {','.join(map(str, self.gpus))}"
        lines = [head] + [f"  {w}" for w in self.why]
        if self.elsewhere:
            lines.append("  elsewhere:")
            lines += [f"    {g.where()}: {'; '.join(g.reasons)}" for g in self.elsewhere]
        return "\n".join(lines)


def explain(
    deployment_name: str,
    deployments: Sequence[Deployment],
    hosts: Sequence[HostSpec],
    placement: Placement,
) -> list[ReplicaExplanation]:
    """Explain every replica of `deployment_name` (name@version, or a model: all versions)."""
    targets = sorted(
        (d for d in deployments if d.name == deployment_name or d.model == deployment_name),
        key=lambda d: d.name,
    )
    if not targets:
        raise NotFoundError(f"no deployment or model named {deployment_name!r}")
    st, items = _replay(deployments, hosts, placement)
    failed = {f"{u.deployment}#{u.replica}": u.reasons for u in placement.unplaced}
    out: list[ReplicaExplanation] = []
    for d in targets:
        dep = Dep.of(d)
        for r in range(d.replicas):
            key = f"{d.name}#{r}"
            it = items.get(key)
            if it is not None:
                gs = [st.gpus[gid] for gid in it.gids]
                here = (placement.reasons.get(key) or why_here(st, it),)
                indexes = tuple(sorted(g.index for g in gs))
                out.append(
                    ReplicaExplanation(
                        d.name, r, gs[0].host_name, indexes, here, _elsewhere(st, it.dep, it)
                    )
                )
            else:
                why = failed.get(key, ("not in the plan",))
                out.append(ReplicaExplanation(d.name, r, None, (), why, _elsewhere(st, dep, None)))
    return out


def _replay(
    deployments: Sequence[Deployment], hosts: Sequence[HostSpec], placement: Placement
) -> tuple[State, dict[str, Item]]:
    """The state the plan describes: every assignment on its GPUs, without checks."""
    st = State(hosts)
    deps: dict[str, Dep] = {}
    for d in sorted(deployments, key=lambda d: d.name):
        deps.setdefault(d.name, Dep.of(d))
    items: dict[str, Item] = {}
    for a in sorted(placement.assignments, key=lambda a: (a.deployment, a.replica)):
        dep = deps.get(a.deployment)
        gids = [st.gpu_at.get((a.host, i)) for i in a.gpus]
        if dep is None or not gids or any(gid is None for gid in gids):
            continue
        # The reason starts with how the replica got there ("best fit on ...", "kept on ...").
        how = placement.reasons.get(f"{a.deployment}#{a.replica}", "placed").split(" on ", 1)[0]
        it = Item(dep, a.replica, how=how)
        for gid in gids:
            assert gid is not None
            st.add(it, gid)
        items[it.key] = it
    return st, items


def _elsewhere(st: State, dep: Dep, it: Item | None) -> tuple[GpuGroup, ...]:
    """Every other GPU's verdict; GPUs with the same reasons share a group.

    On a large fleet the figures (free memory, latencies) differ from GPU to GPU, so when
    there would be too many groups, GPUs are grouped by which rules block them instead,
    and the figures of the group's first GPU stand for all.
    """
    chosen = [st.gpus[gid] for gid in it.gids] if it is not None else []
    verdicts: list[tuple[tuple[str, ...], tuple[str, ...], str]] = []
    for g in st.gpus:
        if any(g is c for c in chosen):
            continue
        found = blockers(st, dep, g, ignore=it)
        if found:
            kinds = tuple(b.kind for b in found)
            texts = tuple(b.text for b in found)
        else:
            note = _fits_note(st, dep, it, g, chosen)
            kinds, texts = (note,), (note,)
        verdicts.append((kinds, texts, f"{g.host_name}:{g.index}"))
    exact: dict[tuple[str, ...], list[str]] = {}
    for _, texts, label in verdicts:
        exact.setdefault(texts, []).append(label)
    if len(exact) <= _MAX_GROUPS:
        return tuple(GpuGroup(tuple(labels), texts) for texts, labels in exact.items())
    by_kind: dict[tuple[str, ...], tuple[tuple[str, ...], list[str], set[tuple[str, ...]]]] = {}
    for kinds, texts, label in verdicts:
        _, labels, seen = by_kind.setdefault(kinds, (texts, [], set()))
        labels.append(label)
        seen.add(texts)
    groups = []
    for first, labels, seen in by_kind.values():
        vary: tuple[str, ...] = ()
        if len(seen) > 1:
            vary = (f"(figures for {labels[0].replace(':', ' GPU ')}; they vary over these GPUs)",)
        groups.append(GpuGroup(tuple(labels), first + vary))
    return tuple(groups)


def _fits_note(st: State, dep: Dep, it: Item | None, g: Gpu, chosen: list[Gpu]) -> str:
    """Why a GPU every rule allows was not the one picked."""
    if it is None:
        if dep.k > 1:
            return f"fits one of its {dep.k} GPUs, but no host had {dep.k} such GPUs when placement ran"
        return "fits now, but did not when placement ran"
    if it.how == "kept":
        return "fits, but the replica already runs elsewhere and running replicas are not moved"
    here = chosen[0]
    own = len(it.gids)
    if st.siblings_on_host(dep, g.host) > (own if g.host == here.host else 0):
        if st.siblings_on_host(dep, here.host) <= own:
            return "fits, but another replica runs on this host (replicas are spread over hosts)"
    if not g.tenants:
        if it.how.startswith("new GPU"):
            return "fits too; of the idle GPUs the first in host and index order was taken"
        return "fits, but it is idle and a GPU already in use was preferred (best fit)"
    if g.free - dep.mem > min(c.free for c in chosen) + 1e-9:
        return "fits, but a fuller GPU was preferred (best fit)"
    return "fits now, but was not the best fit when this replica was placed (placement order)"
