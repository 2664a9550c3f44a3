"""Checks that need the whole inventory (pydantic validates one field at a time)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Iterable

from fleetctl.core.inventory import Inventory
from fleetctl.core.resolve import deployments_of

if TYPE_CHECKING:
    from fleetctl.core.loader import Positions


def _duplicates(names: Iterable[str]) -> set[str]:
    return {n for n, c in Counter(names).items() if c > 1}


def semantic_problems(inv: Inventory, pos: "Positions", known_runtimes: Iterable[str] | None = None) -> list[str]:
    problems: list[str] = []

    dup_hosts = _duplicates(h.name for h in inv.hosts)
    seen: set[str] = set()
    for i, h in enumerate(inv.hosts):
        if h.name in dup_hosts and h.name in seen:
            problems.append(pos.problem(("hosts", i, "name"), f"duplicate host name {h.name!r}"))
        seen.add(h.name)

    dup_models = _duplicates(m.name for m in inv.models)
    seen = set()
    for i, m in enumerate(inv.models):
        if m.name in dup_models and m.name in seen:
            problems.append(pos.problem(("models", i, "name"), f"duplicate model name {m.name!r}"))
        seen.add(m.name)

    runtimes = set(known_runtimes) if known_runtimes is not None else None
    for i, m in enumerate(inv.models):
        if runtimes is not None and m.runtime not in runtimes:
            problems.append(
                pos.problem(("models", i, "runtime"), f"unknown runtime {m.runtime!r} (known: {', '.join(sorted(runtimes))})")
            )
        if m.runtime == "triton" and m.triton is None:
            problems.append(pos.problem(("models", i), "runtime triton needs a 'triton:' block with model_repository"))
        versions = [m.version] + [p.version for p in m.pins]
        for j, p in enumerate(m.pins):
            if versions.count(p.version) > 1:
                problems.append(pos.problem(("models", i, "pins", j, "version"), f"version {p.version!r} is declared twice"))

        eligible = [h for h in inv.hosts if all(h.labels.get(k) == v for k, v in m.hosts.items())]
        if not eligible:
            sel = ",".join(f"{k}={v}" for k, v in sorted(m.hosts.items()))
            problems.append(pos.problem(("models", i, "hosts"), f"selector {sel} matches no host"))
            continue
        eligible_declared = [h for h in eligible if h.gpus != "auto"]
        if not eligible_declared or len(eligible_declared) < len(eligible):
            continue  # sizes of auto hosts are only known once discovered
        for j, d in enumerate(deployments_of(m)):
            path = ("models", i) if j == 0 else ("models", i, "pins", j - 1)
            largest = max(h.gpus.memory_gb - h.reserve_gb for h in eligible_declared)  # type: ignore[union-attr]
            if d.memory_per_gpu_gb > largest + 1e-9:
                field = "gpu_memory_gb"
                problems.append(
                    pos.problem(
                        path + (field,),
                        f"{d.name} needs {d.memory_per_gpu_gb:g} GB per GPU but the largest usable GPU "
                        f"of its hosts has {largest:g} GB",
                    )
                )
            most = max(h.gpus.count for h in eligible_declared)  # type: ignore[union-attr]
            if d.gpus > most:
                problems.append(
                    pos.problem(path + ("gpus",), f"{d.name} needs {d.gpus} GPUs on one host; its hosts have at most {most}")
                )
    return problems
