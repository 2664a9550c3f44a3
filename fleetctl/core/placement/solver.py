"""CP-SAT over a region of the fleet: exact decisions and better packing within a budget.

The model is the placement rules written as linear constraints over booleans
x[replica, GPU] (and y[replica, host] for tensor-parallel gangs):

- every replica takes one GPU (k GPUs of one host when tensor parallel);
- memory and compute per GPU within what is usable;
- the SLA rule: for m with an SLA on GPU g, the other tenants' utilisation on g is at
  most 1 - latency_m / sla_m, enforced only when m is on g;
- an exclusive replica's GPUs hold nothing else; replicas of one deployment never share a
  GPU; a host runs at most its container slots (port blocks, `max_containers`).

Selectors, GPU models and what a replica cannot do even alone (too large, an SLA out of reach) are
settled before the model: such a GPU gets no variable.

A region is a set of GPUs; the replicas wholly on them (or not placed yet) are the
variables, everything else is fixed and counts as a constant. The whole fleet is one
region when it is small enough; a large fleet is improved region by region.

Each rule family is switched by one assumption literal, so when the region is
infeasible CP-SAT names a set of families (and of deployments) that is infeasible on its
own. Runs are deterministic: one worker, a fixed seed, and a limit in CP-SAT's
deterministic time (`max_deterministic_time`); a wall-clock limit far above it is only a
safety net. Figures are scaled to integers (millionths), and a solution is applied through
`State.fits`, so a rounding edge can only lose a solution, never break a rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fleetctl.core.placement.state import Item, State
from fleetctl.core.sla import EPS

if TYPE_CHECKING:
    from ortools.sat.python.cp_model import CpModel, CpSolver, IntVar

    from fleetctl.core.placement.state import Gpu

_SCALE = 1_000_000
# The most x variables one model may have; above it the region is cut down.
MAX_VARS = 60_000
# The safety net on wall-clock time: far above the deterministic limit.
_WALL_FACTOR = 20.0
_WALL_EXTRA = 10.0

FAMILIES = ("memory", "compute", "sla", "exclusive", "replicas", "slots")
FAMILY_TEXT = {
    "memory": "GPU memory",
    "compute": "GPU compute (utilisation sums to at most 1)",
    "sla": "latency SLAs of the tenants",
    "exclusive": "exclusive GPUs",
    "replicas": "replicas of one deployment on distinct GPUs",
    "slots": "containers per host (port range, max_containers)",
}


@dataclass
class Outcome:
    status: str  # optimal, feasible, infeasible, unknown
    placed: dict[int, list[int]] = field(default_factory=dict)  # id(item) -> gids
    bound: float | None = None  # on the region's objective (GPUs used when nothing moves)
    families: tuple[str, ...] = ()  # a sufficient set of rule families when infeasible
    deployments: tuple[str, ...] = ()  # the deployments in that infeasible set
    objective: float | None = None


def _up(x: float) -> int:
    return round(x * _SCALE)


def _down(x: float) -> int:
    return round(x * _SCALE)


def solve_region(
    st: State,
    gids: Sequence[int],
    items: Sequence[Item],
    budget: float,
    *,
    required: Sequence[Item] = (),
    hint: dict[int, list[int]] | None = None,
    stay: dict[int, list[int]] | None = None,
    explain: bool = False,
) -> Outcome:
    """Place `items` (currently on `gids` or nowhere) on `gids`, minimising GPUs used.

    `required` items must be placed (their placement is an assumption when `explain`);
    the others must be too. `stay` maps a replica to the GPUs it runs on now: moving it
    costs more than any number of GPUs, so it moves only where it must. The state is
    not changed; the caller applies `placed`.
    """
    from ortools.sat.python import cp_model

    region = sorted(set(gids))
    gpus = [st.gpus[g] for g in region]
    item_ids = {id(it) for it in items}
    # What the rest of the fleet leaves on these GPUs and hosts: the fixed tenants.
    base_mem: dict[int, int] = {}
    base_util: dict[int, int] = {}
    fixed_on: dict[int, list[Item]] = {}
    host_fixed: dict[int, int] = {}
    for g in gpus:
        fixed = [t for t in g.tenants if id(t) not in item_ids]
        fixed_on[g.gid] = fixed
        base_mem[g.gid] = sum(_up(t.dep.mem) for t in fixed)
        base_util[g.gid] = sum(_up(t.dep.util(g)) for t in fixed)
    hosts = sorted({g.host for g in gpus})
    for h in hosts:
        moving = sum(1 for it in items if any(st.gpus[x].host == h for x in it.gids))
        host_fixed[h] = st.host_count[h] - moving

    m = cp_model.CpModel()
    lit = {f: m.new_bool_var(f"rule_{f}") for f in FAMILIES}
    x: dict[tuple[int, int], IntVar] = {}
    cand: dict[int, list[int]] = {}
    for n, it in enumerate(items):
        dep = it.dep
        ok = st.eligible(dep.sel)
        mine = []
        for g in gpus:
            if (
                not ok[g.host]
                or not st.type_ok(dep, g)
                or dep.mem > g.usable + EPS
                or dep.util(g) > 1 + EPS
                or dep.slack < -EPS
            ):
                continue
            if g.excl and any(t.dep.exclusive for t in fixed_on[g.gid]):
                continue  # a fixed exclusive tenant holds it
            mine.append(g.gid)
            x[(n, g.gid)] = m.new_bool_var("")
        cand[n] = mine
    if len(x) > MAX_VARS:
        return Outcome("unknown")
    used = {g.gid: m.new_bool_var("") for g in gpus}
    host_terms: dict[int, list[IntVar]] = {}
    gang: dict[tuple[int, int], IntVar] = {}
    place_lit: dict[str, IntVar] = {}
    for n, it in enumerate(items):
        dep = it.dep
        req = None
        if explain:
            req = place_lit.get(dep.name)
            if req is None:
                req = place_lit[dep.name] = m.new_bool_var(f"place_{dep.name}")
        if not cand[n]:
            if req is None:
                return Outcome("infeasible")
            m.add(req == 0)
            continue
        if dep.k == 1:
            c = m.add(sum(x[(n, gid)] for gid in cand[n]) == 1)
            if req is not None:
                c.only_enforce_if(req)
            for gid in cand[n]:
                h = st.gpus[gid].host
                host_terms.setdefault(h, []).append(x[(n, gid)])
        else:
            ys = []
            by_host: dict[int, list[int]] = {}
            for gid in cand[n]:
                by_host.setdefault(st.gpus[gid].host, []).append(gid)
            for h, hg in sorted(by_host.items()):
                if len(hg) < dep.k:
                    for gid in hg:
                        m.add(x[(n, gid)] == 0)
                    continue
                y = m.new_bool_var("")
                ys.append(y)
                gang[(n, h)] = y
                m.add(sum(x[(n, g)] for g in hg) == dep.k * y)
                host_terms.setdefault(h, []).append(y)
            if not ys:
                if req is None:
                    return Outcome("infeasible")
                m.add(req == 0)
                continue
            c = m.add(sum(ys) == 1)
            if req is not None:
                c.only_enforce_if(req)
    for g in gpus:
        tenants = [(n, x[(n, g.gid)]) for n in range(len(items)) if (n, g.gid) in x]
        for _, v in tenants:
            m.add_implication(v, used[g.gid])
        if fixed_on[g.gid]:
            m.add(used[g.gid] == 1)
        if not tenants:
            continue
        mem = sum(_up(items[n].dep.mem) * v for n, v in tenants)
        m.add(mem <= _down(g.usable) - base_mem[g.gid]).only_enforce_if(lit["memory"])
        utils = {n: _up(items[n].dep.util(g)) for n, _ in tenants}
        total = sum(utils[n] * v for n, v in tenants)
        m.add(total <= _down(1.0) - base_util[g.gid]).only_enforce_if(lit["compute"])
        # SLA of a variable tenant, against the others (variable and fixed).
        # (The others' sum is the total less its own share, which is there when it is.)
        # One cap per GPU, lowered by every SLA tenant on it: two-term constraints
        # instead of one sum per tenant.
        limits = []
        for n, v in tenants:
            d = items[n].dep
            if math.isfinite(d.slack):
                limit = _down(d.slack) - base_util[g.gid] + utils[n]
                if limit < sum(utils.values()):
                    limits.append((limit, v))
        if limits:
            top = max(sum(utils.values()), 0)
            cap = m.new_int_var(min(0, min(lim for lim, _ in limits)), top, "")
            for limit, v in limits:
                m.add(cap <= limit).only_enforce_if([v, lit["sla"]])
            m.add(total <= cap)
        # SLA of a fixed tenant: the variable ones must stay within its slack.
        for t in fixed_on[g.gid]:
            if math.isfinite(t.dep.slack):
                others = base_util[g.gid] - _up(t.dep.util(g))
                m.add(total <= _down(t.dep.slack) - others).only_enforce_if(lit["sla"])
        # Exclusive.
        n_fixed = len(fixed_on[g.gid])
        count = sum(w for _, w in tenants)
        for n, v in tenants:
            if items[n].dep.exclusive:
                m.add(count + n_fixed == 1).only_enforce_if([v, lit["exclusive"]])
        if any(t.dep.exclusive for t in fixed_on[g.gid]):
            m.add(sum(v for _, v in tenants) == 0).only_enforce_if(lit["exclusive"])
        # Replicas of one deployment on distinct GPUs.
        by_dep: dict[str, list[IntVar]] = {}
        for n, v in tenants:
            by_dep.setdefault(items[n].dep.name, []).append(v)
        fixed_names = {t.dep.name for t in fixed_on[g.gid]}
        for name, vs in by_dep.items():
            limit = 0 if name in fixed_names else 1
            if len(vs) > limit:
                m.add(sum(vs) <= limit).only_enforce_if(lit["replicas"])
    for h in hosts:
        terms = host_terms.get(h, [])
        left = st.host_cap[h] - host_fixed[h]
        if terms and len(terms) > left:
            m.add(sum(terms) <= left).only_enforce_if(lit["slots"])

    if not stay and not explain:
        hint = _break_symmetry(m, st, gpus, items, cand, x, used, fixed_on, hint)

    # Objective: GPUs used, with a move of a running replica costing more than all of them.
    heavy = len(gpus) + 1
    forced = 0  # replicas that cannot stay however the others move
    stay_vars: list[tuple[Item, IntVar]] = []
    for n, it in enumerate(items):
        now = (stay or {}).get(id(it))
        if not now:
            continue
        keep = [x[(n, g)] for g in now if (n, g) in x]
        if len(keep) < len(now):
            forced += 1
            continue
        stays = m.new_bool_var("")
        stay_vars.append((it, stays))
        for v in keep:
            m.add_implication(stays, v)
    terms = [*used.values(), *(v for _, v in stay_vars)]
    weights = [1] * len(used) + [-heavy] * len(stay_vars)
    moves = forced + len(stay_vars)  # less each one that stays
    m.minimize(cp_model.LinearExpr.weighted_sum(terms, weights) + heavy * moves)
    if hint:
        # A complete hint (every variable), so the search starts from a solution.
        busy = {gid for gid in used if fixed_on[gid]}
        for n, it in enumerate(items):
            on = set(hint.get(id(it), ()))
            busy |= on
            for gid in cand[n]:
                m.add_hint(x[(n, gid)], gid in on)
        for gid, v in used.items():
            m.add_hint(v, gid in busy)
        for it, v in stay_vars:
            m.add_hint(v, sorted(hint.get(id(it), ())) == sorted((stay or {}).get(id(it), ())))
        for (n, h), y in gang.items():
            m.add_hint(y, any(st.gpus[g].host == h for g in hint.get(id(items[n]), ())))
    # Assumptions only where a proof must name rules: they hold back presolve and hints.
    assumptions = list(lit.values()) + list(place_lit.values()) if explain else []
    for v in assumptions:
        m.add_assumption(v)
    if not explain:
        for v in lit.values():
            m.add(v == 1)
    solver = cp_model.CpSolver()
    p = solver.parameters
    p.num_workers = 1
    p.random_seed = 0
    p.max_deterministic_time = max(budget, 0.01)
    p.max_time_in_seconds = max(budget, 0.01) * _WALL_FACTOR + _WALL_EXTRA
    code = solver.solve(m)
    name = {
        cp_model.OPTIMAL: "optimal",
        cp_model.FEASIBLE: "feasible",
        cp_model.INFEASIBLE: "infeasible",
    }.get(code, "unknown")
    out = Outcome(name)
    if name in ("optimal", "feasible"):
        for n, it in enumerate(items):
            out.placed[id(it)] = [g for g in cand[n] if solver.value(x[(n, g)])]
        out.bound = solver.best_objective_bound
        out.objective = solver.objective_value
    elif name == "infeasible" and explain:
        core = _smallest_core(m, solver, assumptions, budget)
        out.families = tuple(f for f in FAMILIES if lit[f].index in core)
        out.deployments = tuple(sorted(d for d, v in place_lit.items() if v.index in core))
    return out


def _smallest_core(
    m: CpModel, solver: CpSolver, assumptions: list[IntVar], budget: float
) -> set[int]:
    """A set of assumptions that is infeasible and loses that with any one left out.

    CP-SAT's own core is sufficient, not minimal; each candidate is dropped in turn
    and the rest solved again (a few solves on the small models this is asked of).
    """
    from ortools.sat.python import cp_model

    core = [
        v for v in assumptions if v.index in set(solver.sufficient_assumptions_for_infeasibility())
    ]
    share = max(budget / max(1, len(core)), 0.01)
    # Later families first, so the most structural rule (memory) is the one kept when
    # two would each do; deployments before families, so the set of them is smallest.
    for v in list(reversed(core)):
        rest = [w for w in core if w is not v]
        m.clear_assumptions()
        m.add_assumptions(rest)
        again = cp_model.CpSolver()
        again.parameters.num_workers = 1
        again.parameters.random_seed = 0
        again.parameters.max_deterministic_time = share
        again.parameters.max_time_in_seconds = share * _WALL_FACTOR + _WALL_EXTRA
        if again.solve(m) == cp_model.INFEASIBLE:
            core = rest
    return {v.index for v in core}


def apply_outcome(st: State, items: Sequence[Item], out: Outcome) -> bool:
    """Move `items` to where `out` puts them, through the state's own checks.

    Returns False (the state unchanged) when a check refuses, a rounding edge only.
    """
    journal = st.journal
    st.journal = []
    ok = True
    for it in items:
        for gid in list(it.gids):
            st.remove(it, gid)
    for it in sorted(items, key=lambda it: (-it.dep.k, it.dep.name, it.replica)):
        want = out.placed.get(id(it), [])
        if len(want) != it.dep.k or not all(st.fits(it.dep, st.gpus[g]) for g in want):
            ok = False
            break
        for g in want:
            st.add(it, g)
    if not ok:
        st.undo(0)
    st.journal = journal
    return ok


def _break_symmetry(
    m: CpModel,
    st: State,
    gpus: list[Gpu],
    items: Sequence[Item],
    cand: dict[int, list[int]],
    x: dict[tuple[int, int], IntVar],
    used: dict[int, IntVar],
    fixed_on: dict[int, list[Item]],
    hint: dict[int, list[int]] | None,
) -> dict[int, list[int]] | None:
    """Order interchangeable GPUs, and return the hint relabelled to match.

    GPUs are interchangeable when they have the same size and model, nothing fixed on them, and
    hosts with the same labels and no binding container cap, and no replica of the model
    is tensor parallel (gangs tie GPUs to hosts). Within such a class, used GPUs come
    first and replica j (in model order) may only take one of the first j+1 GPUs: any
    solution can be relabelled to meet both, so no packing is lost, and the solver no
    longer explores copies of one packing.
    """
    if any(it.dep.k > 1 for it in items):
        return hint
    n_items = len(items)
    classes: dict[tuple[object, ...], list[int]] = {}
    for g in gpus:
        h = st.hosts[g.host]
        if fixed_on[g.gid] or st.host_cap[g.host] - st.host_count[g.host] < n_items:
            continue
        key = (g.usable, g.memory_gb, g.kind, tuple(sorted(h.labels.items())))
        classes.setdefault(key, []).append(g.gid)
    # The model order of replicas: by name, so the same input gives the same model.
    order = sorted(range(n_items), key=lambda n: (items[n].dep.name, items[n].replica))
    rank = {n: r for r, n in enumerate(order)}
    new_hint = dict(hint) if hint else None
    for gids in classes.values():
        if len(gids) < 2:
            continue
        for a, b in zip(gids, gids[1:]):
            m.add(used[a] >= used[b])
        pos = {gid: i for i, gid in enumerate(gids)}
        for n in range(n_items):
            for gid in cand[n]:
                if gid in pos and pos[gid] > rank[n]:
                    m.add(x[(n, gid)] == 0)
        if new_hint is not None:
            # Relabel: the class's used GPUs, by their first replica, onto its first GPUs.
            first: dict[int, int] = {}
            for n, it in enumerate(items):
                for gid in (hint or {}).get(id(it), ()):
                    if gid in pos:
                        first[gid] = min(first.get(gid, n_items), rank[n])
            relabel = {gid: gids[i] for i, gid in enumerate(sorted(first, key=lambda k: first[k]))}
            for it in items:
                on = new_hint.get(id(it))
                if on:
                    new_hint[id(it)] = [relabel.get(g, g) for g in on]
    return new_hint
