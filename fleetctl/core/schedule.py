"""The order in which a plan's actions run (pure).

A plan says what changes; the schedule says in which order, so that no change takes a
model away from its clients:

1. removals that retire nothing a client still needs (a replica no longer wanted, a
   leftover container, a model gone from the inventory) run first and free their GPUs;
2. every deployment's own changes form one **unit**: new replicas, then replacements one
   batch of `max_surge` at a time, each health-gated, reverted as a whole on a failure;
3. removals of a model's older versions (a version switch, a pin dropped) run last, and
   only once every unit of that model succeeded: the old version serves until then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fleetctl.core.fleet import Deployment
from fleetctl.core.plan import Action, ActionKind


@dataclass(frozen=True)
class RolloutPolicy:
    """How one model's replicas are replaced (the inventory's `rollout:` block)."""

    max_surge: int = 1  # replacements in flight at once
    max_unavailable: int = 0  # replicas that may be down at once (0: start-first only)
    allow_downtime: bool = False  # stop-first permitted when no GPU can hold both


@dataclass(frozen=True)
class Unit:
    """One deployment's changes, run in order by one worker."""

    deployment: str
    model: str
    creates: tuple[Action, ...] = ()
    replacements: tuple[Action, ...] = ()
    policy: RolloutPolicy = field(default_factory=RolloutPolicy)
    new_deployment: bool = False  # nothing of it runs yet: on failure, nothing of it stays

    @property
    def actions(self) -> tuple[Action, ...]:
        return self.creates + self.replacements

    def batches(self) -> list[tuple[Action, ...]]:
        n = max(1, self.policy.max_surge)
        return [self.replacements[i : i + n] for i in range(0, len(self.replacements), n)]


@dataclass(frozen=True)
class Schedule:
    first: tuple[Action, ...]
    units: tuple[Unit, ...]
    retiring: Mapping[str, tuple[Action, ...]]  # model -> removals of its older versions

    def units_of(self, model: str) -> list[Unit]:
        return [u for u in self.units if u.model == model]


def model_of(deployment: str) -> str:
    return deployment.rpartition("@")[0] or deployment


def schedule(
    actions: Sequence[Action],
    deployments: Sequence[Deployment],
    policies: Mapping[str, RolloutPolicy] | None = None,
) -> Schedule:
    """Group the runnable (mutating, not blocked) actions; `policies` by model name."""
    policies = policies or {}
    wanted = {d.name: d for d in deployments}
    models = {d.model for d in deployments}
    runnable = [a for a in actions if a.mutating and not a.blocked]
    running_now = {
        a.deployment for a in actions if a.kind in (ActionKind.KEEP, ActionKind.RECREATE)
    }
    first: list[Action] = []
    retiring: dict[str, list[Action]] = {}
    by_deployment: dict[str, list[Action]] = {}
    for a in runnable:
        if a.kind is ActionKind.REMOVE:
            model = model_of(a.deployment)
            if a.deployment not in wanted and model in models:
                retiring.setdefault(model, []).append(a)
            else:
                first.append(a)
        else:
            by_deployment.setdefault(a.deployment, []).append(a)
    units = []
    for name in sorted(by_deployment):
        acts = sorted(by_deployment[name], key=lambda a: a.replica)
        model = wanted[name].model if name in wanted else model_of(name)
        units.append(
            Unit(
                deployment=name,
                model=model,
                creates=tuple(a for a in acts if a.kind is ActionKind.CREATE),
                replacements=tuple(a for a in acts if a.kind is ActionKind.RECREATE),
                policy=policies.get(model, RolloutPolicy()),
                new_deployment=name not in running_now,
            )
        )
    return Schedule(tuple(first), tuple(units), {m: tuple(v) for m, v in sorted(retiring.items())})
