"""Repacking: free whole GPUs by moving new replicas between GPUs already in use.

Best fit decreasing leaves some GPUs part-empty. An attempt picks a lightly loaded GPU
whose replicas may all move and puts each of them on one of the roomiest used GPUs even
where that GPU then overflows. A GPU's overflow is its memory beyond usable (as a share
of usable) plus its utilisation beyond its cap (1, or less where a tenant's SLA needs
headroom), so memory, compute and every SLA are one measure that is zero exactly when
they all hold. Exchanges of up to two replicas between an overflowing GPU and another
one then lower the total overflow or, with a short tabu memory, keep it while handing it
on. At zero the target GPU is free for good; otherwise every move is undone from the
state's journal. Selectors, exclusivity and replica anti-affinity hold at every step.

Only new single-GPU, non-exclusive replicas move. Work is bounded by a count of
evaluated exchanges rather than a clock, so the result is the same on any machine.
"""

from __future__ import annotations

import math
from itertools import combinations

from fleetctl.core.placement.state import Gpu, Item, State
from fleetctl.core.sla import EPS

_RECEIVERS = 64  # the roomiest used GPUs an attempt may move replicas between
_TARGET_TRIES = 6  # least-loaded GPUs tried before the phase gives up
_STEPS = (60, 300)  # exchanges per attempt: a short pass over the targets, then a long one
_PAIRED = 6  # only the largest movable replicas of a GPU are exchanged in pairs
_TABU = 7  # steps during which a sideways exchange may not be reversed


class _Budget:
    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


def improve(st: State, movable: list[Item], budget: int, target: int) -> int:
    """Free GPUs until `target` are used, no attempt succeeds, or `budget` is spent.

    Returns how many GPUs were freed.
    """
    start = st.n_used
    before = [(it, it.gids[0], it.how) for it in movable]
    left = _Budget(budget)
    st.journal = []
    while left.left > 0 and st.n_used > target:
        targets = _targets(st, left)[:_TARGET_TRIES]
        # Short searches on every target first: most GPUs that can be freed free fast.
        if not any(_eliminate(st, g, left, steps) for steps in _STEPS for g in targets):
            break
        st.journal.clear()
    st.journal = None
    for it, gid, how in before:
        it.how = how if it.gids == [gid] else "repacked"
    return start - st.n_used


def _load(g: Gpu) -> float:
    return max(g.used / g.usable if g.usable > 0 else 1.0, g.util)


def _targets(st: State, left: _Budget) -> list[Gpu]:
    """Used GPUs whose every replica may move, least loaded first."""
    left.left -= len(st.open_idx) // 4 + 1
    out = [st.gpus[gid] for _, gid in st.open_idx]
    out = [g for g in out if all(t.movable for t in g.tenants)]
    out.sort(key=lambda g: (_load(g), g.gid))
    return out


def _eliminate(st: State, target: Gpu, left: _Budget, steps: int) -> bool:
    if left.left <= 0:
        return False
    assert st.journal is not None
    mark = len(st.journal)
    receivers = _roomiest(st, target, left)
    if sum(g.free for g in receivers) < target.used - EPS:
        return False  # not even the memory is there
    if sum(max(0.0, g.cap - g.util) for g in receivers) < target.util - EPS:
        return False  # nor the compute (on GPUs of one size; a cheap early exit only)
    pool = sorted(target.tenants, key=lambda it: (-it.dep.mem, it.dep.name, it.replica))
    for it in list(pool):
        st.remove(it, target.gid)
    for it in pool:
        best: tuple[float, float, int] | None = None
        for g in receivers:
            if _allowed(st, g, (), (it,)):
                u = it.dep.util(g)
                rise = _overflow(
                    g, g.used + it.dep.mem, g.util + u, min(g.cap, it.dep.slack + u)
                ) - _overflow_now(g)
                if best is None or (rise, -g.free, g.gid) < best:
                    best = (rise, -g.free, g.gid)
        if best is None:
            st.undo(mark)
            return False
        st.add(it, best[2])
    if _clear_overflow(st, receivers, left, steps):
        return True
    st.undo(mark)
    return False


def _roomiest(st: State, target: Gpu, left: _Budget) -> list[Gpu]:
    """The used GPUs with the most room, counting compute as well as memory.

    A GPU with free memory but no compute or SLA headroom left cannot take anything,
    so room is the smaller of its free memory share and its utilisation headroom.
    """
    left.left -= len(st.open_idx) // 4 + 1
    gpus = [st.gpus[gid] for _, gid in st.open_idx if gid != target.gid]
    gpus.sort(
        key=lambda g: (-min(g.free / g.usable if g.usable > 0 else 0.0, g.cap - g.util), g.gid)
    )
    return gpus[:_RECEIVERS]


def _overflow(g: Gpu, used: float, util: float, cap: float) -> float:
    out = 0.0
    if used > g.usable + EPS:
        out += (used - g.usable) / g.usable if g.usable > 0 else 1.0
    if util > cap + EPS:
        out += util - cap
    return out


def _overflow_now(g: Gpu) -> float:
    return _overflow(g, g.used, g.util, g.cap)


# Per subset of a GPU's movable replicas: memory, utilisation and tightest util budget
# (as they would be on a GPU of a given size), and the replicas.
Subset = tuple[float, float, float, tuple[Item, ...]]
# Per subset: what stays on its own GPU without it (memory, utilisation, cap).
Rest = tuple[float, float, float]


class _Cache:
    def __init__(self) -> None:
        self.subsets: dict[tuple[int, float], list[Subset]] = {}
        self.rests: dict[int, list[Rest]] = {}

    def forget(self, g: Gpu) -> None:
        self.subsets = {k: v for k, v in self.subsets.items() if k[0] != g.gid}
        self.rests.pop(g.gid, None)

    def subsets_of(self, g: Gpu, size_gb: float) -> list[Subset]:
        """Up to two movable replicas of `g` (the empty set first), as on `size_gb` GPUs."""
        key = (g.gid, size_gb)
        subs = self.subsets.get(key)
        if subs is None:
            mine = [t for t in g.tenants if t.movable]
            sets: list[tuple[Item, ...]] = [()]
            sets += [(t,) for t in mine]
            big = sorted(mine, key=lambda t: (-t.dep.mem, t.key))[:_PAIRED]
            sets += list(combinations(big, 2))
            subs = [_stats(s, size_gb) for s in sets]
            self.subsets[key] = subs
        return subs

    def rests_of(self, g: Gpu) -> list[Rest]:
        rests = self.rests.get(g.gid)
        if rests is None:
            rests = []
            for _, _, _, items in self.subsets_of(g, g.memory_gb):
                stay = tuple(t for t in g.tenants if not any(t is o for o in items))
                mem, util, budget, _ = _stats(stay, g.memory_gb)
                rests.append((mem, util, min(1.0, budget)))
            self.rests[g.gid] = rests
        return rests


def _stats(items: tuple[Item, ...], size_gb: float) -> Subset:
    mem = util = 0.0
    budget = math.inf
    for t in items:
        d = t.dep
        u = (
            d.fixed_util
            if d.fixed_util is not None
            else (d.mem / size_gb if size_gb > 0 else math.inf)
        )
        mem += d.mem
        util += u
        budget = min(budget, d.slack + u)
    return (mem, util, budget, items)


def _clear_overflow(st: State, gpus: list[Gpu], left: _Budget, steps: int) -> bool:
    """Exchange replicas among `gpus` until none overflows (True) or no move helps."""
    cache = _Cache()
    tabu: dict[tuple[int, int, tuple[str, ...]], int] = {}
    for step in range(steps):
        over = [(ai, _overflow_now(a)) for ai, a in enumerate(gpus)]
        over = [(ai, o) for ai, o in over if o > 0]
        if not over:
            return True
        if left.left <= 0:
            return False
        found: list[tuple[float, float, int, int, int, int]] = []
        for ai, over_a in over:
            a = gpus[ai]
            out_here = cache.subsets_of(a, a.memory_gb)
            rest_a = cache.rests_of(a)
            for bi, b in enumerate(gpus):
                if b is a or b.excl:
                    continue
                in_here = cache.subsets_of(b, b.memory_gb)
                rest_b = cache.rests_of(b)
                out_there = (
                    out_here if b.memory_gb == a.memory_gb else cache.subsets_of(a, b.memory_gb)
                )
                in_there = (
                    in_here if b.memory_gb == a.memory_gb else cache.subsets_of(b, a.memory_gb)
                )
                left.left -= len(out_here) * len(in_here)
                before = over_a + _overflow_now(b)
                # The overflow of both GPUs after each exchange, written out inline:
                # this loop is where repacking spends its time.
                a_lim, a_inv = a.usable + EPS, 1.0 / a.usable if a.usable > 0 else 1.0
                b_lim, b_inv = b.usable + EPS, 1.0 / b.usable if b.usable > 0 else 1.0
                for oi in range(1, len(out_here)):  # A gives at least one replica
                    ma, ua, ba, _ = out_there[oi]
                    rma, rua, rca = rest_a[oi]
                    for ii in range(len(in_here)):
                        mb, ub, bb, _ = in_there[ii]
                        rmb, rub, rcb = rest_b[ii]
                        x = rma + mb
                        ov = (x - a.usable) * a_inv if x > a_lim else 0.0
                        x, cap = rua + ub, (rca if rca < bb else bb)
                        if x > cap + EPS:
                            ov += x - cap
                        new_b_used = rmb + ma
                        if new_b_used > b_lim:
                            ov += (new_b_used - b.usable) * b_inv
                        x, cap = rub + ua, (rcb if rcb < ba else ba)
                        if x > cap + EPS:
                            ov += x - cap
                        gain = before - ov
                        if gain > EPS:
                            found.append((-gain, 0.0, ai, bi, oi, ii))
                        elif gain >= -EPS and ma > mb + EPS:
                            # A sideways move hands memory on; it prefers leaving the
                            # receiving GPU lightest. Equal swaps would only churn.
                            found.append((0.0, new_b_used * b_inv, ai, bi, oi, ii))
        found.sort()
        for neg_gain, _, ai, bi, oi, ii in found[:32]:
            a, b = gpus[ai], gpus[bi]
            out = cache.subsets_of(a, a.memory_gb)[oi][3]
            inn = cache.subsets_of(b, b.memory_gb)[ii][3]
            sideways = -neg_gain <= EPS
            if sideways and tabu.get((a.gid, b.gid, tuple(t.key for t in out)), -1) >= step:
                continue
            if not (_allowed(st, a, out, inn) and _allowed(st, b, inn, out)):
                continue
            for t in out:
                st.remove(t, a.gid)
            for t in inn:
                st.remove(t, b.gid)
            for t in inn:
                st.add(t, a.gid)
            for t in out:
                st.add(t, b.gid)
            cache.forget(a)
            cache.forget(b)
            if sideways:
                tabu[(b.gid, a.gid, tuple(t.key for t in out))] = step + _TABU
            break
        else:
            return False
    return False


def _allowed(st: State, g: Gpu, out: tuple[Item, ...], inn: tuple[Item, ...]) -> bool:
    """The rules overflow does not measure, for `g` with `out` replaced by `inn`."""
    tenants = [t for t in g.tenants if not any(t is o for o in out)] + list(inn)
    if any(t.dep.exclusive for t in tenants) and len(tenants) > 1:
        return False
    if len({t.dep.name for t in tenants}) != len(tenants):
        return False  # two replicas of one deployment on one GPU
    for p in inn:
        if not st.allowed(p.dep, g):
            return False
        here = sum(1 for gid in p.gids if st.gpus[gid].host == g.host)
        leaving = sum(1 for o in out if o.dep is p.dep)
        if st.siblings_on_host(p.dep, g.host) - here - leaving > 0:
            return False  # keep replicas spread: never move one beside a sibling
    return True
