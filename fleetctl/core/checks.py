"""Checks that need the whole inventory (pydantic validates one field at a time)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from fleetctl.core.fleet import Deployment
from fleetctl.core.host_checks import host_problems, replica_blocks
from fleetctl.core.inventory import Host, Inventory
from fleetctl.core.placement.gpus import allows
from fleetctl.core.resolve import deployments_of
from fleetctl.core.secret_checks import secret_problems

if TYPE_CHECKING:
    from fleetctl.core.yaml_input import Positions


def _duplicates(names: Iterable[str]) -> set[str]:
    return {n for n, c in Counter(names).items() if c > 1}


class _Eligibility:
    """What the hosts matching one selector offer, computed once per distinct selector
    and set of GPU models.

    Large inventories have thousands of models but few distinct selectors; scanning
    every host for every model made validation quadratic.
    """

    def __init__(self, hosts: list[Host]) -> None:
        self.hosts = hosts
        self._cache: dict[
            tuple[tuple[tuple[str, str], ...], tuple[str, ...]], tuple[int, bool, float, int]
        ] = {}
        self._blocks: dict[tuple[tuple[str, str], ...], int] = {}
        self._matching: dict[tuple[tuple[str, str], ...], list[Host]] = {}

    def matching(self, selector: dict[str, str]) -> list[Host]:
        key = tuple(sorted(selector.items()))
        if key not in self._matching:
            self._matching[key] = [
                h for h in self.hosts if all(h.labels.get(k) == v for k, v in key)
            ]
        return self._matching[key]

    def blocks(self, inv: Inventory, selector: dict[str, str]) -> int:
        """Replica port blocks of the hosts matching `selector`, counted once per selector."""
        key = tuple(sorted(selector.items()))
        if key not in self._blocks:
            self._blocks[key] = sum(replica_blocks(inv, h) for h in self.matching(selector))
        return self._blocks[key]

    def of(
        self, selector: dict[str, str], models: tuple[str, ...] = ()
    ) -> tuple[int, bool, float, int]:
        """(matching hosts, all have declared GPUs, largest usable GPU GB, most GPUs on one
        host), counting only GPUs of `models` when given."""
        key = (tuple(sorted(selector.items())), models)
        if key not in self._cache:
            matching = [h for h in self.hosts if all(h.labels.get(k) == v for k, v in key[0])]
            declared = [h for h in matching if h.gpus != "auto"]
            largest = max(
                (
                    g.memory_gb - h.reserve_gb
                    for h in declared
                    for g in h.gpu_groups
                    if allows(models, g.model)
                ),
                default=0.0,
            )
            most = max(
                (sum(g.count for g in h.gpu_groups if allows(models, g.model)) for h in declared),
                default=0,
            )
            self._cache[key] = (len(matching), len(declared) == len(matching), largest, most)
        return self._cache[key]


def semantic_problems(
    inv: Inventory, pos: Positions, known_runtimes: Iterable[str] | None = None
) -> list[str]:
    problems: list[str] = []

    host_names = [h.name for h in inv.hosts]
    model_names = [m.name for m in inv.models]
    for kind, names in (("host", host_names), ("model", model_names)):
        dups = _duplicates(names)
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in dups and name in seen:
                problems.append(
                    pos.problem((f"{kind}s", i, "name"), f"duplicate {kind} name {name!r}")
                )
            seen.add(name)

    problems.extend(host_problems(inv, pos))
    problems.extend(secret_problems(inv, pos))
    runtimes = set(known_runtimes) if known_runtimes is not None else None
    eligibility = _Eligibility(inv.hosts)
    for i, m in enumerate(inv.models):
        if runtimes is not None and m.runtime not in runtimes:
            known = ", ".join(sorted(runtimes))
            problems.append(
                pos.problem(
                    ("models", i, "runtime"), f"unknown runtime {m.runtime!r} (known: {known})"
                )
            )
        versions = [m.version] + [p.version for p in m.pins]
        for j, p in enumerate(m.pins):
            if versions.count(p.version) > 1:
                problems.append(
                    pos.problem(
                        ("models", i, "pins", j, "version"),
                        f"version {p.version!r} is declared twice",
                    )
                )

        models = tuple(m.gpu_models)
        matching, all_declared, largest, most = eligibility.of(m.hosts, models)
        if not matching:
            sel = ",".join(f"{k}={v}" for k, v in sorted(m.hosts.items()))
            problems.append(pos.problem(("models", i, "hosts"), f"selector {sel} matches no host"))
            continue
        if models and all_declared and most == 0:
            problems.append(_gpu_model_problem(m.gpu_models, eligibility.matching(m.hosts), i, pos))
            continue
        if not all_declared:  # sizes of `gpus: auto` hosts are only known once discovered
            for j, d in enumerate(deployments_of(m)):
                late = _latency_problem(
                    d, ("models", i) if j == 0 else ("models", i, "pins", j - 1), pos
                )
                problems.extend([late] if late else [])
            continue
        for j, d in enumerate(deployments_of(m)):
            path = ("models", i) if j == 0 else ("models", i, "pins", j - 1)
            if d.memory_per_gpu_gb > largest + 1e-9:
                problems.append(
                    pos.problem(
                        path + ("gpu_memory_gb",),
                        f"{d.name} needs {d.memory_per_gpu_gb:g} GB per GPU but the largest usable "
                        f"{'/'.join(models) + ' ' if models else ''}GPU of its hosts has {largest:g} GB",
                    )
                )
                continue
            if d.gpus > most:
                problems.append(
                    pos.problem(
                        path + ("gpus",),
                        f"{d.name} needs {d.gpus} GPUs on one host; its hosts have at most {most}",
                    )
                )
                continue
            problems.extend(
                _capacity_problems(
                    d, eligibility.matching(m.hosts), eligibility.blocks(inv, m.hosts), path, pos
                )
            )
    return problems


def _gpu_model_problem(wanted: list[str], hosts: list[Host], i: int, pos: Positions) -> str:
    names = sorted({g.model or "(no model name)" for h in hosts for g in h.gpu_groups})
    return pos.problem(
        ("models", i, "gpu_models"),
        f"gpu_models {', '.join(wanted)} match no GPU of its hosts (their GPUs: {', '.join(names)}): "
        "no host can ever run it",
    )


def _latency_problem(d: Deployment, path: tuple[str | int, ...], pos: Positions) -> str | None:
    if d.sla_ms is not None and d.latency_ms is not None and d.latency_ms >= d.sla_ms:
        return pos.problem(
            path + ("latency_ms",),
            f"{d.name} answers in {d.latency_ms:g} ms alone on a GPU, at or above its SLA of {d.sla_ms:g} ms: "
            "no placement can meet it",
        )
    return None


def gpu_capacity(d: Deployment, hosts: list[Host], enough: int | None = None) -> int:
    """The most replicas of `d` its hosts' GPUs could hold with nothing else placed.

    With `enough`, counting stops once that many fit (validation only asks whether the
    replicas fit; counting every host for every model made it quadratic).
    """
    total = 0
    for h in hosts:
        if enough is not None and total >= enough:
            break
        on_host = 0
        for g in h.gpu_groups:
            if not allows(d.gpu_models, g.model):
                continue
            usable = g.memory_gb - h.reserve_gb
            per_gpu = (
                1
                if d.exclusive
                else int((usable + 1e-9) // d.memory_per_gpu_gb)
                if d.memory_per_gpu_gb > 0 and d.memory_per_gpu_gb <= usable + 1e-9
                else 0
            )
            on_host += g.count * per_gpu
        total += on_host // d.gpus
    return total


def _capacity_problems(
    d: Deployment, hosts: list[Host], blocks: int, path: tuple[str | int, ...], pos: Positions
) -> list[str]:
    out: list[str] = []
    late = _latency_problem(d, path, pos)
    if late is not None:
        out.append(late)
    if d.replicas == 0:
        return out
    capacity = gpu_capacity(d, hosts, enough=d.replicas)
    if d.replicas > capacity:
        out.append(
            pos.problem(
                path + ("replicas",),
                f"{d.name} wants {d.replicas} replicas but the GPUs of its hosts could hold at most {capacity}",
            )
        )
    if d.replicas > blocks:
        out.append(
            pos.problem(
                path + ("replicas",),
                f"{d.name} wants {d.replicas} replicas but the port ranges of its hosts hold only {blocks} replica port blocks",
            )
        )
    return out
