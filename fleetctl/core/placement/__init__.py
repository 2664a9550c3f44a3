"""Placement: which GPUs of which hosts each model replica runs on.

The order of work:

1. Re-admit `previous` assignments that are still valid, one by one in key order; they
   never move, so adding or removing a model leaves running replicas where they are.
2. Place the other replicas largest first (tensor-parallel ones before single-GPU ones),
   each on the feasible GPU with the least memory left after it (best fit decreasing),
   preferring a host that does not run a replica of the same deployment yet.
3. Repack: try to free the least-loaded GPUs that hold only new single-GPU replicas by
   spreading their replicas over other used GPUs and exchanging replicas until nothing
   overflows (placement.repack). It is bounded by a count of evaluated exchanges, so it
   is deterministic and stays near-linear on large fleets.
4. Retry replicas that found no room: repacking may have made some.

Hard rules, on every GPU of every plan returned: host labels match the selector; memory
used <= usable; utilisation sum <= 1; every SLA tenant's predicted p95 (sla module) is
within its SLA; an exclusive replica is alone; replicas of one deployment never share a
GPU; a tensor-parallel replica takes k distinct GPUs of one host. Repacking relaxes
memory, compute and SLA inside an attempt only, and keeps an attempt only once they hold.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Collection, Mapping, Sequence

from fleetctl.core.fleet import Assignment, Deployment, GpuSpec, HostSpec, Placement, Unplaced
from fleetctl.core.placement import exact
from fleetctl.core.placement.gpus import allows
from fleetctl.core.placement.reasons import Diagnoser, why_here
from fleetctl.core.placement.repack import improve
from fleetctl.core.placement.state import Dep, Item, State
from fleetctl.core.sla import EPS, util_of

# How far a best-fit search walks before settling; the walk continues over the whole
# index only when these windows hold nothing feasible, so no placement is ever missed.
_OPEN_WINDOW = 16
_EMPTY_WINDOW = 64
_RAW_WINDOW = 256  # entries inspected, eligible or not, before the bounded walk gives up
_TP_HOSTS = 8  # candidate hosts per index for a tensor-parallel replica

# Exchanges the repacking phase may evaluate (about half a microsecond each). A small
# fleet gets the whole thorough allowance, since one GPU is a large share of it; a large
# one gets a share per movable replica, which keeps the phase near-linear.
_REPACK_THOROUGH = 1_000_000
_REPACK_THOROUGH_UP_TO = 200  # movable replicas
_REPACK_PER_ITEM = 40


def naive_gpus(deployments: Sequence[Deployment]) -> int:
    """GPUs needed with one GPU per replica-GPU and no sharing."""
    return sum(d.replicas * d.gpus for d in deployments)


def lower_bound(deployments: Sequence[Deployment], hosts: Sequence[HostSpec]) -> int:
    """A number of GPUs no valid placement of all replicas can go below.

    Exclusive replica-GPUs each need their own GPU; the rest need at least their total
    memory over the largest GPU, their total utilisation (on the GPU size that makes it
    smallest), and as many GPUs as the widest deployment has replica-GPUs. Deployments
    that run only on some GPU models are bounded again on those GPUs alone, with every
    deployment whose GPU models are among them.
    """
    specs = [g for h in hosts for g in h.gpus]
    bound = _bound(deployments, specs)
    names = sorted({g.model for g in specs})
    allowed: dict[tuple[str, ...], frozenset[str]] = {}
    for d in deployments:
        if d.gpu_models and d.gpu_models not in allowed:
            allowed[d.gpu_models] = frozenset(n for n in names if allows(d.gpu_models, n))
    for models in sorted(set(allowed.values()), key=sorted):
        if len(models) == len(names):
            continue  # every GPU: the bound above
        within = [d for d in deployments if d.gpu_models and allowed[d.gpu_models] <= models]
        bound = max(bound, _bound(within, [g for g in specs if g.model in models]))
    return bound


def _bound(deployments: Sequence[Deployment], specs: Sequence[GpuSpec]) -> int:
    largest = max((g.usable_gb for g in specs), default=0.0)
    # util_of depends on a GPU only through its size: one GPU per size is enough.
    one_per_size = sorted({g.memory_gb: g for g in specs}.values(), key=lambda g: g.memory_gb)
    exclusive = 0
    memory = 0.0
    compute = 0.0
    widest = 0
    for d in deployments:
        n = d.replicas * d.gpus
        if n <= 0:
            continue
        if d.exclusive:
            exclusive += n
            continue
        memory += d.memory_per_gpu_gb * n
        if one_per_size:
            compute += n * min(util_of(d, g) for g in one_per_size)
        widest = max(widest, n)
    shared = max(widest, _ceil(compute))
    if largest > 0:
        shared = max(shared, _ceil(memory / largest))
    return exclusive + shared


DEFAULT_BUDGET = 0.2  # seconds of CP-SAT deterministic time per plan (0: heuristic only)


def place(
    deployments: Sequence[Deployment],
    hosts: Sequence[HostSpec],
    previous: Sequence[Assignment] = (),
    *,
    budget: float = DEFAULT_BUDGET,
    slots: Mapping[str, int] | None = None,
    changed: Collection[str] = (),
) -> Placement:
    """Place every replica of `deployments` on `hosts`, keeping valid `previous` ones.

    `budget`: CP-SAT's deterministic time (about seconds) to decide what the heuristic
    could not place and to improve its packing; 0 keeps the heuristic's result.
    `slots`: containers each host may run (port blocks, max_containers); a host's own
    `max_containers` applies too. `changed`: replica keys ("name@version#r") whose spec
    changed since they were started: they are re-admitted after the unchanged ones, so
    a grown replica is the one placed again, never a neighbour that still fits.
    """
    caps = dict(slots or {})
    for h in hosts:
        if h.max_containers is not None:
            caps[h.name] = min(caps.get(h.name, h.max_containers), h.max_containers)
    target = lower_bound(deployments, hosts)
    st, items, unplaced = _heuristic(deployments, hosts, caps, previous, changed, target)

    search = "heuristic"
    proven: dict[str, tuple[str, ...]] = {}
    if budget > 0 and (unplaced or st.n_used > target):
        search, bound, proven = exact.run(st, list(items.values()), unplaced, budget)
        if bound is not None:
            target = max(target, bound)
        unplaced = [it for it in unplaced if not it.gids]

    assignments: list[Assignment] = []
    reasons: dict[str, str] = {}
    failures: list[Unplaced] = []
    summaries: dict[str, tuple[str, ...]] = {}
    diagnoser = Diagnoser(st, len({it.dep.name for it in unplaced}))
    for key in sorted(items, key=lambda k: (items[k].dep.name, items[k].replica)):
        it = items[key]
        if it.gids:
            gs = [st.gpus[gid] for gid in it.gids]
            # A kept replica keeps its GPU tuple as given, order included.
            gpus = tuple(g.index for g in gs) if it.fixed else tuple(sorted(g.index for g in gs))
            assignments.append(Assignment(it.dep.name, it.replica, gs[0].host_name, gpus))
            reasons[key] = why_here(st, it)
        else:
            # Replicas of one deployment fail for the same reasons; summarising is a
            # scan of every GPU, so it is done once per deployment.
            if it.dep.name not in summaries:
                summaries[it.dep.name] = diagnoser.reasons(it.dep) + proven.get(it.dep.name, ())
            failures.append(Unplaced(it.dep.name, it.replica, summaries[it.dep.name]))
    return Placement(
        tuple(assignments), tuple(failures), reasons, lower_bound=target, search=search
    )


# -- phases ----------------------------------------------------------------------------


def _heuristic(
    deployments: Sequence[Deployment],
    hosts: Sequence[HostSpec],
    caps: Mapping[str, int],
    previous: Sequence[Assignment],
    changed: Collection[str],
    target: int,
) -> tuple[State, dict[str, Item], list[Item]]:
    """Re-admit, place, repack and retry; the state, every replica, those without room."""
    st = State(hosts, caps)
    deps: dict[str, Dep] = {}
    for d in sorted(deployments, key=lambda d: d.name):
        deps.setdefault(d.name, Dep.of(d))
    items = {
        f"{dep.name}#{r}": Item(dep, r) for dep in deps.values() for r in range(dep.spec.replicas)
    }
    _readmit(st, items, previous, set(changed))

    pending = sorted(
        (it for it in items.values() if not it.fixed), key=lambda it: _order_key(st, it)
    )
    unplaced = _place_all(st, pending)
    movable = [it for it in pending if it.gids and it.movable]
    freed = 0
    if movable:
        n = len(movable)
        repack_budget = (
            _REPACK_THOROUGH * min(n, _REPACK_THOROUGH_UP_TO) // n + _REPACK_PER_ITEM * n
        )
        freed = improve(st, movable, repack_budget, target)
    if unplaced and freed:
        unplaced = _place_all(st, unplaced)  # the freed GPUs may take some
    return st, items, unplaced


def _readmit(
    st: State, items: dict[str, Item], previous: Sequence[Assignment], changed: set[str]
) -> None:
    """Keep every previous assignment that is still valid, checked as it is re-added:
    unchanged replicas first, so a changed one that no longer fits is the one to move."""
    order = sorted(
        previous,
        key=lambda a: (
            f"{a.deployment}#{a.replica}" in changed,
            a.deployment,
            a.replica,
            a.host,
            a.gpus,
        ),
    )
    for a in order:
        it = items.get(f"{a.deployment}#{a.replica}")
        if it is None or it.fixed:
            continue  # deployment gone, replica index beyond `replicas`, or a duplicate
        dep = it.dep
        if len(a.gpus) != dep.k or len(set(a.gpus)) != dep.k:
            continue
        host = st.host_index.get(a.host)
        gids = [st.gpu_at.get((a.host, i)) for i in a.gpus]
        if host is None or not st.eligible(dep.sel)[host]:
            continue
        if any(gid is None or not st.fits(dep, st.gpus[gid]) for gid in gids):
            continue
        it.fixed = True
        it.how = "kept"
        for gid in gids:
            assert gid is not None
            st.add(it, gid)


def _order_key(st: State, it: Item) -> tuple[int, int, float, str, int]:
    dep = it.dep
    share = dep.mem / st.max_usable if st.max_usable > 0 else 0.0
    util = dep.fixed_util if dep.fixed_util is not None else share
    return (-dep.k, 0 if dep.exclusive else 1, -max(share, util), dep.name, it.replica)


def _place_all(st: State, items: list[Item]) -> list[Item]:
    """Place in order; return those that found no room."""
    failed: list[Item] = []
    # While only adding, a deployment's feasible GPUs only shrink, so once one replica
    # fails the later ones need not search.
    hopeless: set[str] = set()
    for it in items:
        if it.dep.name in hopeless or not _place_item(st, it):
            hopeless.add(it.dep.name)
            failed.append(it)
    return failed


def _place_item(st: State, it: Item) -> bool:
    if it.dep.k == 1:
        found = _find_single(st, it.dep)
        if found is None:
            return False
        gid, how = found
        st.add(it, gid)
    else:
        multi = _find_multi(st, it.dep)
        if multi is None:
            return False
        gids, how = multi
        for gid in gids:
            st.add(it, gid)
    it.how = how
    return True


# -- search ----------------------------------------------------------------------------


Entry = tuple[float, int]  # (free memory, gid), the sort key of every index
Fallback = tuple[int, Entry]  # (replicas of the deployment on the GPU's host, entry)


def _walk(
    st: State, index: list[Entry], i: int, dep: Dep, window: int | None, stop: Entry | None = None
) -> tuple[Entry | None, Fallback | None]:
    """Walk `index` from position `i` (up to `stop`, exclusive).

    Returns the first feasible GPU on a host without a replica of `dep`, and the first
    feasible one on a host with the fewest replicas of it (the fallback when spreading
    over new hosts is impossible: replicas then even out, max - min <= 1).
    """
    ok = st.eligible(dep.sel)
    kinds = st.kind_ok(dep.models) if dep.models else None
    spread = st.dep_hosts.get(dep.name)
    gpus = st.gpus
    n = len(index)
    end = n if window is None else min(n, i + _RAW_WINDOW)
    budget = n if window is None else window
    fallback: Fallback | None = None
    while i < end and budget > 0:
        entry = index[i]
        if stop is not None and entry >= stop:
            break
        g = gpus[entry[1]]
        i += 1
        if not ok[g.host] or (kinds is not None and not kinds[g.kind]):
            continue
        budget -= 1
        if not st.fits(dep, g):
            continue
        if spread:
            here = spread.get(g.host, 0)
            if here:
                if fallback is None or here < fallback[0]:
                    fallback = (here, entry)
                continue
        return entry, fallback
    return None, fallback


def _find_single(st: State, dep: Dep) -> tuple[int, str] | None:
    open_fb: Fallback | None = None
    empty_fb: Fallback | None = None
    key = (dep.mem - EPS, -1)
    # Every GPU in use is considered before an idle one is opened: a bounded walk of the
    # open buckets, then (when it found nothing) all of them.
    for window in (_OPEN_WINDOW, None) if not dep.exclusive else ():
        best: Entry | None = None
        for bucket in st.buckets_for(dep):
            i = bisect_left(bucket, key)
            if i == len(bucket) or (best is not None and bucket[i] >= best):
                continue  # nothing here beats what another bucket offers
            hit, fb = _walk(st, bucket, i, dep, window, best)
            if hit is not None:
                best = hit
            if fb is not None and (open_fb is None or fb < open_fb):
                open_fb = fb
        if best is not None:
            return best[1], "best fit"
    for window in (_EMPTY_WINDOW, None):
        i = bisect_left(st.empty_idx, key)
        hit, fb = _walk(st, st.empty_idx, i, dep, window)
        if hit is not None:
            return hit[1], "new GPU"
        if fb is not None and (empty_fb is None or fb < empty_fb):
            empty_fb = fb
    # Every feasible host has a replica already: the one with the fewest, a used GPU
    # before an idle one when they tie.
    if open_fb is not None and (empty_fb is None or open_fb[0] <= empty_fb[0]):
        return open_fb[1][1], "best fit"
    if empty_fb is not None:
        return empty_fb[1][1], "new GPU"
    return None


def _find_multi(st: State, dep: Dep) -> tuple[list[int], str] | None:
    ok = st.eligible(dep.sel)
    hosts: list[int] = []
    seen: set[int] = set()
    for index in (st.open_idx, st.empty_idx):
        found = 0
        i = bisect_left(index, (dep.mem - EPS, -1))
        end = min(len(index), i + _RAW_WINDOW)
        while i < end and found < _TP_HOSTS:
            h = st.gpus[index[i][1]].host
            i += 1
            if ok[h] and h not in seen:
                seen.add(h)
                hosts.append(h)
                found += 1
    best = _best_host(st, dep, hosts)
    if best is None:
        best = _best_host(st, dep, [h for h in range(len(st.hosts)) if ok[h] and h not in seen])
    if best is None:
        return None
    gids, opened = best
    return gids, "new GPUs" if opened == len(gids) else "best fit"


def _best_host(st: State, dep: Dep, hosts: list[int]) -> tuple[list[int], int] | None:
    """The host whose k tightest feasible GPUs fit best; spreading over hosts first."""
    best: tuple[tuple[int, int, float, int, int], list[int], int] | None = None
    for h in hosts:
        gpus = [st.gpus[gid] for gid in st.host_gpus[h]]
        cands = sorted((g.free, g.gid) for g in gpus if st.fits(dep, g))
        if len(cands) < dep.k:
            continue
        chosen = cands[: dep.k]
        opened = sum(1 for _, gid in chosen if not st.gpus[gid].tenants)
        idle_left = sum(1 for g in gpus if not g.tenants) - opened
        score = (
            st.siblings_on_host(dep, h),
            opened,
            sum(free for free, _ in chosen) - dep.k * dep.mem,
            idle_left,
            h,
        )
        if best is None or score < best[0]:
            best = (score, [gid for _, gid in chosen], opened)
    return None if best is None else (best[1], best[2])


def _ceil(x: float) -> int:
    return max(0, math.ceil(x - 1e-9))
