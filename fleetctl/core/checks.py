"""Checks that need the whole inventory (pydantic validates one field at a time)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Iterable

from fleetctl.core.inventory import GpuDecl, Host, Inventory
from fleetctl.core.resolve import deployments_of

if TYPE_CHECKING:
    from fleetctl.core.loader import Positions


def _duplicates(names: Iterable[str]) -> set[str]:
    return {n for n, c in Counter(names).items() if c > 1}


class _Eligibility:
    """What the hosts matching one selector offer, computed once per distinct selector.

    Large inventories have thousands of models but few distinct selectors; scanning
    every host for every model made validation quadratic.
    """

    def __init__(self, hosts: list[Host]) -> None:
        self.hosts = hosts
        self._cache: dict[tuple[tuple[str, str], ...], tuple[int, bool, float, int]] = {}

    def of(self, selector: dict[str, str]) -> tuple[int, bool, float, int]:
        """(matching hosts, all have declared GPUs, largest usable GPU GB, most GPUs on one host)."""
        key = tuple(sorted(selector.items()))
        if key not in self._cache:
            matching = [h for h in self.hosts if all(h.labels.get(k) == v for k, v in key)]
            declared = [h.gpus for h in matching if isinstance(h.gpus, GpuDecl)]
            largest = max((h.gpus.memory_gb - h.reserve_gb for h in matching if isinstance(h.gpus, GpuDecl)), default=0.0)
            most = max((g.count for g in declared), default=0)
            self._cache[key] = (len(matching), len(declared) == len(matching), largest, most)
        return self._cache[key]


def semantic_problems(inv: Inventory, pos: "Positions", known_runtimes: Iterable[str] | None = None) -> list[str]:
    problems: list[str] = []

    for kind, items in (("host", inv.hosts), ("model", inv.models)):
        dups = _duplicates(x.name for x in items)
        seen: set[str] = set()
        for i, x in enumerate(items):
            if x.name in dups and x.name in seen:
                problems.append(pos.problem((f"{kind}s", i, "name"), f"duplicate {kind} name {x.name!r}"))
            seen.add(x.name)

    runtimes = set(known_runtimes) if known_runtimes is not None else None
    eligibility = _Eligibility(inv.hosts)
    for i, m in enumerate(inv.models):
        if runtimes is not None and m.runtime not in runtimes:
            known = ", ".join(sorted(runtimes))
            problems.append(pos.problem(("models", i, "runtime"), f"unknown runtime {m.runtime!r} (known: {known})"))
        if m.runtime == "triton" and m.triton is None:
            problems.append(pos.problem(("models", i), "runtime triton needs a 'triton:' block with model_repository"))
        versions = [m.version] + [p.version for p in m.pins]
        for j, p in enumerate(m.pins):
            if versions.count(p.version) > 1:
                problems.append(pos.problem(("models", i, "pins", j, "version"), f"version {p.version!r} is declared twice"))

        matching, all_declared, largest, most = eligibility.of(m.hosts)
        if not matching:
            sel = ",".join(f"{k}={v}" for k, v in sorted(m.hosts.items()))
            problems.append(pos.problem(("models", i, "hosts"), f"selector {sel} matches no host"))
            continue
        if not all_declared:
            continue  # sizes of `gpus: auto` hosts are only known once discovered
        for j, d in enumerate(deployments_of(m)):
            path = ("models", i) if j == 0 else ("models", i, "pins", j - 1)
            if d.memory_per_gpu_gb > largest + 1e-9:
                problems.append(
                    pos.problem(
                        path + ("gpu_memory_gb",),
                        f"{d.name} needs {d.memory_per_gpu_gb:g} GB per GPU but the largest usable GPU "
                        f"of its hosts has {largest:g} GB",
                    )
                )
            if d.gpus > most:
                problems.append(
                    pos.problem(path + ("gpus",), f"{d.name} needs {d.gpus} GPUs on one host; its hosts have at most {most}")
                )
    return problems
