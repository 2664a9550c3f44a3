"""The team's weights over the four dimensions `advise` scores, and their parsing."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from fleetctl.core.inventory import TeamWeights
from fleetctl.errors import ExitCode, FleetctlError

DIMENSIONS: tuple[str, ...] = ("control", "time_to_prod", "eng_cost", "lock_in_freedom")


@dataclass(frozen=True)
class Weights:
    control: float = 1.0
    time_to_prod: float = 3.0
    eng_cost: float = 2.0
    lock_in_freedom: float = 1.0
    # Where the figures came from, so that a reader of the advice knows what to edit.
    source: str = "default"

    def of(self, dimension: str) -> float:
        return float(getattr(self, dimension))

    @property
    def total(self) -> float:
        return sum(self.of(d) for d in DIMENSIONS)

    def as_dict(self) -> dict[str, float]:
        return {d: self.of(d) for d in DIMENSIONS}

    def describe(self) -> str:
        return ",".join(f"{d}={self.of(d):g}" for d in DIMENSIONS)


def from_team(team: TeamWeights) -> Weights:
    return Weights(
        control=team.control,
        time_to_prod=team.time_to_prod,
        eng_cost=team.eng_cost,
        lock_in_freedom=team.lock_in_freedom,
        source="inventory team.weights",
    )


def _usage(message: str) -> FleetctlError:
    example = "control=1,time_to_prod=3,eng_cost=2,lock_in_freedom=1"
    return FleetctlError(
        f"--weights: {message} (expected e.g. {example})", exit_code=ExitCode.USAGE
    )


def parse_weights(text: str, base: Weights) -> Weights:
    """Apply `name=value,...` on top of `base`: a dimension not named keeps its weight.

    Partial overrides are allowed so that a team can ask "what if lock-in mattered 10"
    without restating the other three.
    """
    if not text.strip():
        raise _usage("no weights given")
    known = {f.name for f in fields(Weights)} - {"source"}
    seen: dict[str, float] = {}
    for part in text.split(","):
        item = part.strip()
        if not item:
            raise _usage(f"empty item in {text!r}")
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep:
            raise _usage(f"{item!r} is not NAME=NUMBER")
        if name not in known:
            raise _usage(f"unknown dimension {name!r} (known: {', '.join(DIMENSIONS)})")
        if name in seen:
            raise _usage(f"{name} is given twice")
        try:
            value = float(raw.strip())
        except ValueError:
            raise _usage(f"{name}={raw.strip()!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise _usage(f"{name} must be a finite number >= 0, not {raw.strip()}")
        seen[name] = value
    weights = replace(base, source="--weights", **seen)
    if weights.total <= 0:
        raise _usage("the weights add up to 0: nothing would be scored")
    return weights


def resolve_weights(option: str | None, team: TeamWeights) -> Weights:
    """The weights in force: the inventory's, with the command-line option on top."""
    base = from_team(team)
    if option is None:
        if base.total <= 0:
            raise FleetctlError(
                "team.weights add up to 0: give at least one weight above 0",
                exit_code=ExitCode.INVENTORY,
            )
        return base
    return parse_weights(option, base)
