"""Working state of one placement run: GPUs, their tenants and the search indexes.

Every GPU caches the sums a feasibility check needs (memory used, utilisation, and the
tightest util budget among its SLA tenants), so checking a candidate is O(1). GPUs that
may take more tenants sit in one of two lists sorted by (free memory, gid): `open_idx`
for GPUs that already hold something, `empty_idx` for idle ones. Best fit is then a
bisect plus a short walk.

On a large fleet many used GPUs have memory left but no compute (or SLA headroom) left,
and a walk by free memory alone would step over thousands of them. So open GPUs are also
filed in buckets by (compute headroom, utilisation), each a list sorted like open_idx:
a search visits only the buckets whose GPUs can take the replica's utilisation and keep
its own SLA.

Hosts are sorted by name and GPUs by index, and gids follow that order, so decisions do
not depend on the order the caller listed hosts in.

A host may also cap its containers (`slots`: its port blocks, or `max_containers`). A
replica is one container on its host however many GPUs it takes; a host at its cap has
its GPUs taken out of the indexes, so searches never step over them, and put back when
a replica leaves.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fleetctl.core.fleet import Deployment, GpuSpec, HostSpec
from fleetctl.core.placement.gpus import allows
from fleetctl.core.sla import EPS, latency_of, util_slack

SelectorKey = tuple[tuple[str, str], ...]


def selector_key(selector: Mapping[str, str]) -> SelectorKey:
    return tuple(sorted(selector.items()))


@dataclass(slots=True, eq=False)
class Dep:
    """A deployment with the figures placement reads on every check."""

    spec: Deployment
    name: str
    mem: float  # per GPU
    k: int  # GPUs per replica
    exclusive: bool
    sel: SelectorKey
    slack: float  # see sla.util_slack; inf without SLA
    latency: float | None
    sla: float | None
    fixed_util: float | None
    models: tuple[str, ...] = ()  # GPU models it may run on (empty: any)

    @classmethod
    def of(cls, d: Deployment) -> Dep:
        return cls(
            spec=d,
            name=d.name,
            mem=d.memory_per_gpu_gb,
            k=d.gpus,
            exclusive=d.exclusive,
            sel=selector_key(d.selector),
            slack=util_slack(d),
            latency=latency_of(d),
            sla=d.sla_ms,
            fixed_util=d.gpu_util,
            models=tuple(sorted(set(d.gpu_models))),
        )

    def util(self, g: Gpu) -> float:
        # Same rule as sla.util_of, without building a GpuSpec per check.
        if self.fixed_util is not None:
            return self.fixed_util
        return self.mem / g.memory_gb if g.memory_gb > 0 else math.inf


@dataclass(slots=True, eq=False)
class Item:
    """One replica: where it is (gids, empty when unplaced) and how it got there."""

    dep: Dep
    replica: int
    fixed: bool = False  # re-admitted from `previous`: never moved
    gids: list[int] = field(default_factory=list)
    how: str = ""

    @property
    def key(self) -> str:
        return f"{self.dep.name}#{self.replica}"

    @property
    def movable(self) -> bool:
        """May the repacking phase move it (new, single-GPU, shares GPUs)."""
        return not self.fixed and self.dep.k == 1 and not self.dep.exclusive


@dataclass(slots=True, eq=False)
class Gpu:
    gid: int
    host: int
    host_name: str
    index: int
    spec: GpuSpec
    memory_gb: float
    usable: float
    used: float = 0.0
    util: float = 0.0
    cap: float = 1.0  # the largest total utilisation every tenant's SLA allows
    tenants: list[Item] = field(default_factory=list)
    excl: bool = False
    entry: tuple[float, int] | None = None  # its key in open_idx or empty_idx
    entry_empty: bool = False
    bucket: int = -1  # its list in State.buckets while it is open
    kind: int = 0  # its GPU model, as an index into State.kinds

    @property
    def free(self) -> float:
        return self.usable - self.used

    @property
    def label(self) -> str:
        return f"{self.host_name} GPU {self.index}"


class State:
    def __init__(self, hosts: Sequence[HostSpec], slots: Mapping[str, int] | None = None) -> None:
        self.hosts: list[HostSpec] = sorted(hosts, key=lambda h: h.name)
        slots = slots or {}
        # Containers each host may run (a large number where nothing caps it) and runs.
        self.host_cap: list[int] = [max(0, slots.get(h.name, _NO_CAP)) for h in self.hosts]
        self.host_count: list[int] = [0] * len(self.hosts)
        self.host_index: dict[str, int] = {}
        self.gpus: list[Gpu] = []
        self.host_gpus: list[list[int]] = []
        self.gpu_at: dict[tuple[str, int], int] = {}
        self.kinds: list[str] = []  # the distinct GPU model names, in gid order
        kind_of: dict[str, int] = {}
        for hi, h in enumerate(self.hosts):
            self.host_index.setdefault(h.name, hi)
            gids: list[int] = []
            for spec in sorted(h.gpus, key=lambda s: s.index):
                if (h.name, spec.index) in self.gpu_at:
                    continue  # a duplicate index would let two GPUs share one device
                g = Gpu(
                    len(self.gpus), hi, h.name, spec.index, spec, spec.memory_gb, spec.usable_gb
                )
                g.kind = kind_of.setdefault(spec.model, len(kind_of))
                if g.kind == len(self.kinds):
                    self.kinds.append(spec.model)
                self.gpus.append(g)
                self.gpu_at[(h.name, spec.index)] = g.gid
                gids.append(g.gid)
            self.host_gpus.append(gids)
        self.open_idx: list[tuple[float, int]] = []
        self.empty_idx: list[tuple[float, int]] = []
        for g in self.gpus:
            if self.host_cap[g.host] > 0:
                g.entry, g.entry_empty = (g.usable, g.gid), True
        self.empty_idx = sorted(g.entry for g in self.gpus if g.entry is not None)
        self.buckets: dict[int, list[tuple[float, int]]] = {}
        self.max_memory_gb = max((g.memory_gb for g in self.gpus), default=0.0)
        self.dep_gpus: dict[str, dict[int, int]] = {}
        self.dep_hosts: dict[str, dict[int, int]] = {}
        self.n_used = 0
        self.journal: list[tuple[bool, Item, int]] | None = None
        self._eligible: dict[SelectorKey, bytearray] = {}
        self._kind_ok: dict[tuple[str, ...], bytearray] = {}
        self.max_usable = max((g.usable for g in self.gpus), default=0.0)

    # -- queries ---------------------------------------------------------------------

    def eligible(self, sel: SelectorKey) -> bytearray:
        """Per host index: 1 when the host's labels match the selector."""
        ok = self._eligible.get(sel)
        if ok is None:
            selector = dict(sel)
            ok = bytearray(1 if h.matches(selector) else 0 for h in self.hosts)
            self._eligible[sel] = ok
        return ok

    def kind_ok(self, models: tuple[str, ...]) -> bytearray:
        """Per GPU kind: 1 when a deployment needing `models` may run on it."""
        ok = self._kind_ok.get(models)
        if ok is None:
            ok = bytearray(1 if allows(models, k) else 0 for k in self.kinds)
            self._kind_ok[models] = ok
        return ok

    def type_ok(self, dep: Dep, g: Gpu) -> bool:
        """Whether `g` is one of the GPU models `dep` needs."""
        return not dep.models or bool(self.kind_ok(dep.models)[g.kind])

    def allowed(self, dep: Dep, g: Gpu) -> bool:
        """The rules of where, not of how much: the selector and the GPU model."""
        return bool(self.eligible(dep.sel)[g.host]) and self.type_ok(dep, g)

    def fits(self, dep: Dep, g: Gpu) -> bool:
        """Can one more GPU-share of `dep` go on `g` (every rule but the selector)?"""
        if g.excl or (dep.exclusive and g.tenants):
            return False
        if dep.models and not self.kind_ok(dep.models)[g.kind]:
            return False  # not a GPU model it runs on
        if self.host_count[g.host] >= self.host_cap[g.host]:
            return False  # no container slot (port block) left on the host
        if g.used + dep.mem > g.usable + EPS:
            return False
        u = dep.util(g)
        total = g.util + u
        if total > g.cap + EPS or total > dep.slack + u + EPS:
            return False
        on = self.dep_gpus.get(dep.name)
        return not (on and on.get(g.gid))

    def host_full(self, host: int) -> bool:
        return self.host_count[host] >= self.host_cap[host]

    def siblings_on_host(self, dep: Dep, host: int) -> int:
        on = self.dep_hosts.get(dep.name)
        return on.get(host, 0) if on else 0

    # -- changes ---------------------------------------------------------------------

    def add(self, item: Item, gid: int) -> None:
        g = self.gpus[gid]
        self._unindex(g)
        if not g.tenants:
            self.n_used += 1
        dep = item.dep
        u = dep.util(g)
        new_container = all(self.gpus[x].host != g.host for x in item.gids)
        g.tenants.append(item)
        g.used += dep.mem
        g.util += u
        g.cap = min(g.cap, dep.slack + u)
        g.excl = g.excl or dep.exclusive
        item.gids.append(gid)
        _bump(self.dep_gpus, dep.name, gid, 1)
        _bump(self.dep_hosts, dep.name, g.host, 1)
        self._index(g)
        if new_container:
            self.host_count[g.host] += 1
            if self.host_count[g.host] == self.host_cap[g.host]:
                for other in self.host_gpus[g.host]:
                    self._unindex(self.gpus[other])
        if self.journal is not None:
            self.journal.append((True, item, gid))

    def remove(self, item: Item, gid: int) -> None:
        g = self.gpus[gid]
        self._unindex(g)
        g.tenants = [t for t in g.tenants if t is not item]
        # Recomputed rather than decremented so repeated moves leave no float residue.
        g.used = sum(t.dep.mem for t in g.tenants)
        g.util = sum(t.dep.util(g) for t in g.tenants)
        g.cap = min([1.0] + [t.dep.slack + t.dep.util(g) for t in g.tenants])
        g.excl = any(t.dep.exclusive for t in g.tenants)
        if not g.tenants:
            self.n_used -= 1
        item.gids.remove(gid)
        _bump(self.dep_gpus, item.dep.name, gid, -1)
        _bump(self.dep_hosts, item.dep.name, g.host, -1)
        if all(self.gpus[x].host != g.host for x in item.gids):
            was_full = self.host_full(g.host)
            self.host_count[g.host] -= 1
            if was_full and not self.host_full(g.host):
                for other in self.host_gpus[g.host]:
                    if other != gid:
                        self._index(self.gpus[other])
        self._index(g)
        if self.journal is not None:
            self.journal.append((False, item, gid))

    def undo(self, mark: int) -> None:
        """Revert every change journaled since `mark` (a length of the journal)."""
        journal = self.journal
        assert journal is not None
        entries = journal[mark:]
        self.journal = None
        for added, item, gid in reversed(entries):
            if added:
                self.remove(item, gid)
            else:
                self.add(item, gid)
        del journal[mark:]
        self.journal = journal

    def buckets_for(self, dep: Dep) -> list[list[tuple[float, int]]]:
        """The open-GPU buckets that may hold a GPU able to take `dep`."""
        # The smallest utilisation `dep` can have on any GPU here; the same tolerance as
        # `fits` on both bounds, and _level is monotone, so no feasible GPU is left out.
        u = dep.fixed_util if dep.fixed_util is not None else dep.mem / (self.max_memory_gb or 1.0)
        low = _level(u - EPS)
        high = _level(dep.slack + EPS)
        return [
            lst
            for key, lst in self.buckets.items()
            if key // _LEVELS_1 >= low and key % _LEVELS_1 <= high
        ]

    def _unindex(self, g: Gpu) -> None:
        if g.entry is None:
            return
        if g.entry_empty:
            del self.empty_idx[bisect_left(self.empty_idx, g.entry)]
        else:
            del self.open_idx[bisect_left(self.open_idx, g.entry)]
            lst = self.buckets[g.bucket]
            del lst[bisect_left(lst, g.entry)]
        g.entry = None

    def _index(self, g: Gpu) -> None:
        if g.excl or g.entry is not None:
            return  # nothing may join an exclusive tenant
        if self.host_count[g.host] >= self.host_cap[g.host]:
            return  # nothing may join a host without a container slot
        g.entry_empty = not g.tenants
        g.entry = (g.free, g.gid)
        if g.entry_empty:
            insort(self.empty_idx, g.entry)
            return
        insort(self.open_idx, g.entry)
        g.bucket = _level(g.cap - g.util) * _LEVELS_1 + _level(g.util)
        insort(self.buckets.setdefault(g.bucket, []), g.entry)


_NO_CAP = 1 << 30
_LEVELS = 10  # bucket resolution of utilisation and headroom
_LEVELS_1 = _LEVELS + 1


def _level(x: float) -> int:
    """0.._LEVELS, rounding down (a bucket holds GPUs from its level up to the next)."""
    if x <= 0:
        return 0
    if x >= 1:
        return _LEVELS
    return int(x * _LEVELS + EPS)


def _bump(table: dict[str, dict[int, int]], name: str, key: int, delta: int) -> None:
    inner = table.setdefault(name, {})
    n = inner.get(key, 0) + delta
    if n:
        inner[key] = n
    else:
        inner.pop(key, None)
