"""The exact phase of placement: CP-SAT decides what the heuristic could not place and
improves the heuristic's packing, within one deterministic budget.

1. Replicas left unplaced: the solver gets the GPUs those deployments may use (the whole
   fleet when small enough) with every replica on them free to move (a running replica
   only where it must, by the objective). A solution is applied; a proof of
   infeasibility names the rule families and deployments that conflict.
2. Packing: a fleet small enough to model whole is solved whole, warm-started from the
   heuristic; a larger one, given a budget above REGIONS_FROM, region by region (groups
   of its least-loaded used GPUs), each region a share of the budget. Only new single-GPU replicas and replicas not yet placed
   move here; running ones stay.

The lower bound reported is CP-SAT's bound on GPUs where the whole fleet was modelled
with nothing running, else the counting bound of `placement.lower_bound`.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleetctl.core.placement.solver import (
    FAMILY_TEXT,
    MAX_VARS,
    Outcome,
    apply_outcome,
    solve_region,
)
from fleetctl.core.placement.state import Item, State
from fleetctl.core.sla import EPS

_REGIONS = 4  # regions an improvement pass of a large fleet solves, at most
_REGION_GPUS = 16  # GPUs per region
# Regions are solved only with a budget above this (the default plan budget is not),
# so `plan` of a large fleet stays at the heuristic's speed unless asked for more.
REGIONS_FROM = 0.5


def run(
    st: State, items: list[Item], unplaced: list[Item], budget: float
) -> tuple[str, int | None, dict[str, tuple[str, ...]]]:
    """Returns how the search ended, a lower bound on GPUs (or None) and, per
    deployment proven impossible, the reasons."""
    proven: dict[str, tuple[str, ...]] = {}
    search = "heuristic"
    bound: int | None = None
    if unplaced:
        share = budget if not _packable(st, items) else budget / 2
        search, proven = _decide(st, items, unplaced, share)
        budget -= share
    if budget <= 0 or any(not it.gids and _possible(st, it) for it in items):
        return search, bound, proven
    whole = _var_count(st, items, range(len(st.gpus)))
    if whole <= MAX_VARS:
        s, bound = _improve_whole(st, items, budget)
        return (s if search == "heuristic" else search), bound, proven
    if budget <= REGIONS_FROM:
        return search, bound, proven  # a plan's default budget: large fleets keep the heuristic
    _improve_regions(st, items, budget)
    return ("regions" if search == "heuristic" else search), bound, proven


def _possible(st: State, it: Item) -> bool:
    """Can the replica go on some GPU of the fleet alone (structurally)?"""
    dep = it.dep
    ok = st.eligible(dep.sel)
    if dep.slack < -EPS:
        return False
    n_ok = 0
    for h, gids in enumerate(st.host_gpus):
        if not ok[h] or st.host_cap[h] <= 0:
            continue
        fit = sum(
            1
            for g in gids
            if dep.mem <= st.gpus[g].usable + EPS
            and dep.util(st.gpus[g]) <= 1 + EPS
            and st.type_ok(dep, st.gpus[g])
        )
        if fit >= dep.k:
            n_ok += 1
    return n_ok > 0


def _packable(st: State, items: list[Item]) -> bool:
    return any(it.movable for it in items)


def _var_count(st: State, items: list[Item], gids: Iterable[int]) -> int:
    region = set(gids)
    hosts_sel: dict[object, int] = {}
    total = 0
    for it in items:
        if it.gids and not all(g in region for g in it.gids):
            continue
        n = hosts_sel.get(it.dep.sel)
        if n is None:
            ok = st.eligible(it.dep.sel)
            n = hosts_sel[it.dep.sel] = sum(1 for g in region if ok[st.gpus[g].host])
        total += n
        if total > MAX_VARS:
            return total
    return total


def _decide(
    st: State, items: list[Item], unplaced: list[Item], budget: float
) -> tuple[str, dict[str, tuple[str, ...]]]:
    todo = [it for it in unplaced if _possible(st, it)]
    if not todo:
        return "heuristic", {}
    # The whole fleet when it is small enough; else the GPUs the failing deployments may
    # use and those their current tenants may use, roomiest first, cut to the model limit.
    region: list[int] = list(range(len(st.gpus)))
    if _var_count(st, items, region) > MAX_VARS:
        near = {g.gid for it in todo for g in st.gpus if st.eligible(it.dep.sel)[g.host]}
        sels = {t.dep.sel for gid in near for t in st.gpus[gid].tenants}
        near |= {g.gid for sel in sels for g in st.gpus if st.eligible(sel)[g.host]}
        region = sorted(near, key=lambda gid: (-st.gpus[gid].free, gid))
        while region and _var_count(st, items, region) > MAX_VARS:
            region = region[: len(region) // 2]
    whole = len(region) == len(st.gpus)
    inside = set(region)
    free = [it for it in items if (it.gids and all(g in inside for g in it.gids)) or it in todo]
    stay = {id(it): list(it.gids) for it in free if it.gids}
    out = solve_region(st, region, free, budget, hint=stay, stay=stay, explain=True)
    if out.status in ("optimal", "feasible") and apply_outcome(st, free, out):
        for it in free:
            if stay.get(id(it)) != it.gids:
                it.fixed = False
                it.how = "solver"
        return "solved", {}
    if out.status == "infeasible" and whole:
        return "infeasible", _proof(out, todo)
    note = "the exact search found no placement within --placement-budget; a larger budget may " + (
        "find one" if whole else "find one (the fleet was too large to search whole)"
    )
    return "unknown", {it.dep.name: (note,) for it in todo}


def _proof(out: Outcome, todo: list[Item]) -> dict[str, tuple[str, ...]]:
    rules = ", ".join(FAMILY_TEXT[f] for f in out.families) or "the selectors and GPU models"
    names = [d for d in out.deployments]
    reasons: dict[str, tuple[str, ...]] = {}
    for it in todo:
        others = [n for n in names if n != it.dep.name]
        with_ = (
            f" together with {', '.join(others[:5])}{', ...' if len(others) > 5 else ''}"
            if others
            else ""
        )
        reasons[it.dep.name] = (
            f"proven infeasible by the exact search: {rules}{with_} admit no placement",
        )
    return reasons


def _improve_whole(st: State, items: list[Item], budget: float) -> tuple[str, int | None]:
    free = [it for it in items if it.gids and not it.fixed]
    if not free:
        return "heuristic", None
    before = st.n_used
    hint = {id(it): list(it.gids) for it in free}
    out = solve_region(st, range(len(st.gpus)), free, budget, hint=hint)
    bound = None
    nothing_runs = all(not it.fixed for it in items)
    if out.bound is not None and nothing_runs and len(free) == len(items):
        bound = int(-(-out.bound // 1) if out.bound % 1 > 1e-6 else round(out.bound))
    if (
        out.status in ("optimal", "feasible")
        and out.objective is not None
        and out.objective < before - 0.5
    ):
        snapshot = {id(it): list(it.gids) for it in free}
        if apply_outcome(st, free, out):
            for it in free:
                if snapshot[id(it)] != it.gids:
                    it.how = "solver"
    return out.status, bound


def _improve_regions(st: State, items: list[Item], budget: float) -> None:
    """Solve groups of the least-loaded used GPUs with their movable replicas."""
    share = budget / _REGIONS
    tried: set[int] = set()
    for _ in range(_REGIONS):
        used = [
            g
            for g in st.gpus
            if g.tenants and g.gid not in tried and all(t.movable for t in g.tenants)
        ]
        if len(used) < 2:
            return
        used.sort(key=lambda g: (max(g.used / g.usable if g.usable > 0 else 1.0, g.util), g.gid))
        region = [g.gid for g in used[:_REGION_GPUS]]
        tried.update(region)
        inside = set(region)
        free = [it for it in items if it.movable and it.gids and all(g in inside for g in it.gids)]
        if _var_count(st, free, region) > MAX_VARS:
            continue
        before = sum(1 for gid in region if st.gpus[gid].tenants)
        hint = {id(it): list(it.gids) for it in free}
        out = solve_region(st, region, free, share, hint=hint)
        if (
            out.status in ("optimal", "feasible")
            and out.objective is not None
            and out.objective < before - 0.5
        ):
            if apply_outcome(st, free, out):
                for it in free:
                    if hint[id(it)] != it.gids:
                        it.how = "solver"
