"""Build, Triton or NIM: rank the ways to serve each model for this team.

The arithmetic: each option has a baseline score per dimension (0-5, higher is better);
an option's score is the weighted sum, shown also divided by the weight total (0-5).
Facts about the model then override the arithmetic, each with a printed reason: some
rule an option out, some add a bonus. Where NIM stays in, its licence for the GPUs the
model holds in the plan is priced against the engineering weeks it saves.

A fact the inventory does not state (`origin` or `api` left "unknown") earns no bonus and
rules nothing out; the advice then says, per value it could take, what it would change.

Everything here is pure: values in, values out.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fleetctl.core.inventory import Costs, Model
from fleetctl.decide.holdings import Holding, licence_usd_per_year
from fleetctl.decide.weights import DIMENSIONS, Weights

OPTIONS: tuple[str, ...] = ("build", "triton", "nim")
LABELS: Mapping[str, str] = {"build": "build (roll your own)", "triton": "Triton", "nim": "NIM"}

BASELINE: Mapping[str, Mapping[str, float]] = {
    "build": {"control": 5, "time_to_prod": 1, "eng_cost": 1, "lock_in_freedom": 5},
    "triton": {"control": 4, "time_to_prod": 3, "eng_cost": 3, "lock_in_freedom": 4},
    "nim": {"control": 2, "time_to_prod": 5, "eng_cost": 5, "lock_in_freedom": 2},
}

# Bonuses are in points of the 0-5 scale; they are multiplied by the weight total before
# being added to the weighted sum, so that they weigh the same whatever the weights'
# magnitude (weights 1,3,2,1 and 10,30,20,10 give the same ranking).
NIM_STOCK_OPENAI_BONUS = 0.5
BUILD_CUSTOM_QUANTIZATION_BONUS = 1.0
BUILD_CUSTOM_TOPOLOGY_BONUS = 1.0

# Engineer-weeks from a model's weights to a production endpoint (batching, health,
# metrics, an API, packaging). Build writes the server; Triton needs a model repository
# and a client contract; NIM is configured, not written.
WEEKS_TO_PRODUCTION: Mapping[str, float] = {"build": 10.0, "triton": 4.0, "nim": 1.0}

Kind = Literal["exclude", "bonus", "note"]

UNKNOWN = "unknown"
# The values a fact left unknown could turn out to have, in the order they are told.
OPEN_FACT_VALUES: Mapping[str, tuple[str, ...]] = {
    "origin": ("catalog", "lora", "custom"),
    "api": ("openai", "custom"),
}


@dataclass(frozen=True)
class Adjustment:
    """One fact's effect on one option."""

    option: str
    kind: Kind
    reason: str
    points: float = 0.0  # 0-5 scale; only for bonuses


@dataclass(frozen=True)
class Term:
    dimension: str
    baseline: float
    weight: float

    @property
    def value(self) -> float:
        return self.baseline * self.weight


@dataclass(frozen=True)
class OptionScore:
    option: str
    terms: tuple[Term, ...]
    bonus: float  # in weighted-sum units
    weight_total: float
    excluded: bool = False

    @property
    def weighted(self) -> float:
        return sum(t.value for t in self.terms)

    @property
    def score(self) -> float:
        return self.weighted + self.bonus

    @property
    def normalised(self) -> float:
        return self.score / self.weight_total


@dataclass(frozen=True)
class Pricing:
    """NIM's licence for the model's GPUs against the engineering weeks it saves."""

    gpus: float
    licence_per_year_usd: float
    alternative: str  # the best non-NIM option, what NIM is compared with
    weeks_saved: float
    engineering_saved_usd: float
    larger: Literal["licence", "engineering", "equal"]
    verdict: str
    gpu_note: str


@dataclass(frozen=True)
class Outcome:
    """What one value of an unknown fact would do (over every value of the other
    unknown facts, where some are unknown too)."""

    value: str
    effect: str  # "would add NIM's +0.5 bonus with api openai", "would change nothing"
    winners: tuple[str, ...]  # the winner it would give; several where the others decide
    changes: bool  # some exclusion, bonus or winner would change
    decides: bool  # the winner would change


@dataclass(frozen=True)
class OpenFact:
    """A fact the inventory leaves unknown, and what each of its values would do."""

    fact: str
    outcomes: tuple[Outcome, ...]
    winner: str  # the winner with the fact unknown

    @property
    def decides(self) -> bool:
        """Some value of the fact would change the winner."""
        return any(o.decides for o in self.outcomes)

    @property
    def matters(self) -> bool:
        return any(o.changes for o in self.outcomes)

    def reason(self) -> str:
        told = [f"{o.value} {o.effect}" for o in self.outcomes]
        return f"{self.fact} unknown: " + ", ".join(told)


@dataclass(frozen=True)
class Advice:
    model: str
    runtime: str
    weights: Weights
    ranking: tuple[OptionScore, ...]  # best first; excluded options last
    adjustments: tuple[Adjustment, ...]
    pricing: Pricing | None
    facts: Mapping[str, Any] = field(default_factory=dict)
    open_facts: tuple[OpenFact, ...] = ()

    @property
    def winner(self) -> str:
        return self.ranking[0].option

    def reasons(self) -> list[str]:
        out = [a.reason for a in self.adjustments]
        out += [f.reason() for f in self.open_facts if f.matters]
        if self.pricing is not None:
            out.append(self.pricing.verdict)
        return out


def facts_of(model: Model) -> dict[str, Any]:
    return {
        "runtime": model.runtime,
        "framework": model.framework,
        "origin": model.origin,
        "base_model": model.base_model,
        "api": model.api,
        "portability_required": model.portability_required,
        "custom_quantization": model.custom_quantization,
        "custom_topology": model.custom_topology,
    }


def adjustments_for(model: Model) -> list[Adjustment]:
    """The facts that override the arithmetic, in the order they are printed."""
    out: list[Adjustment] = []
    if model.origin == "custom":
        out.append(
            Adjustment("nim", "exclude", "NIM out: origin custom, the model is in no NIM catalog")
        )
    if model.portability_required:
        out.append(
            Adjustment(
                "nim",
                "exclude",
                "NIM out: portability_required, it must also run off NVIDIA hardware",
            )
        )
    if model.origin == "lora":
        base = (
            f"catalog base {model.base_model}"
            if model.base_model
            else "a catalog base (base_model not declared)"
        )
        out.append(
            Adjustment(
                "nim",
                "note",
                f"NIM still possible: a LoRA adapter on {base} is served by the base model's NIM",
            )
        )
    if model.origin == "catalog" and model.api == "openai":
        out.append(
            Adjustment(
                "nim",
                "bonus",
                f"NIM +{NIM_STOCK_OPENAI_BONUS:g}: a stock catalog model behind an OpenAI API is what NIM ships ready",
                NIM_STOCK_OPENAI_BONUS,
            )
        )
    if model.custom_quantization:
        out.append(
            Adjustment(
                "build",
                "bonus",
                f"build +{BUILD_CUSTOM_QUANTIZATION_BONUS:g}: custom_quantization, the team must own the quantization",
                BUILD_CUSTOM_QUANTIZATION_BONUS,
            )
        )
    if model.custom_topology:
        out.append(
            Adjustment(
                "build",
                "bonus",
                f"build +{BUILD_CUSTOM_TOPOLOGY_BONUS:g}: custom_topology, the team must own the serving topology",
                BUILD_CUSTOM_TOPOLOGY_BONUS,
            )
        )
    return out


def _effective(model: Model) -> list[Adjustment]:
    found = adjustments_for(model)
    # A bonus or note on an option that is out would only confuse: the exclusion decides.
    out = {a.option for a in found if a.kind == "exclude"}
    return [a for a in found if a.kind == "exclude" or a.option not in out]


def score_option(option: str, weights: Weights, adjustments: Sequence[Adjustment]) -> OptionScore:
    terms = tuple(Term(d, BASELINE[option][d], weights.of(d)) for d in DIMENSIONS)
    mine = [a for a in adjustments if a.option == option]
    points = sum(a.points for a in mine if a.kind == "bonus")
    return OptionScore(
        option=option,
        terms=terms,
        bonus=points * weights.total,
        weight_total=weights.total,
        excluded=any(a.kind == "exclude" for a in mine),
    )


def rank(scores: Sequence[OptionScore]) -> tuple[OptionScore, ...]:
    """Best first; excluded options after every allowed one; ties keep OPTIONS order.

    Ties go to the option listed first (build, triton, nim): on equal scores the one
    that keeps more control and less lock-in.
    """
    order = {o: i for i, o in enumerate(OPTIONS)}
    return tuple(sorted(scores, key=lambda s: (s.excluded, -round(s.score, 9), order[s.option])))


def price_nim(ranking: Sequence[OptionScore], holding: Holding, costs: Costs) -> Pricing:
    alternative = next(s.option for s in ranking if s.option != "nim")
    licence = licence_usd_per_year(holding.gpus, costs)
    weeks = WEEKS_TO_PRODUCTION[alternative] - WEEKS_TO_PRODUCTION["nim"]
    saved = weeks * costs.engineer_week_usd
    gpus = f"{holding.gpus:.2f}".rstrip("0").rstrip(".")
    head = (
        f"licence {usd(licence)}/year ({gpus} GPU x {usd(costs.nim_license_per_gpu_year_usd)}) vs "
        f"{weeks:g} engineer-weeks saved over {LABELS[alternative]} ({usd(saved)})"
    )
    if abs(licence - saved) < 0.005:
        larger: Literal["licence", "engineering", "equal"] = "equal"
        verdict = f"{head}: they are equal, a year of licence costs what the weeks saved are worth"
    elif saved > licence:
        larger = "engineering"
        years = f", it pays {saved / licence:.1f} years of licence" if licence > 0 else ""
        verdict = f"{head}: the engineering saved is larger{years}"
    else:
        larger = "licence"
        times = f", {licence / saved:.1f}x the weeks saved, every year" if saved > 0 else ""
        verdict = f"{head}: the licence is larger{times}"
    return Pricing(
        gpus=holding.gpus,
        licence_per_year_usd=licence,
        alternative=alternative,
        weeks_saved=weeks,
        engineering_saved_usd=saved,
        larger=larger,
        verdict=verdict,
        gpu_note=holding.note,
    )


# What decides an advice: the facts adjustments_for reads. Fleets of thousands of models
# have a handful of distinct combinations, so each is scored once per command.
FactKey = tuple[str, str, bool, bool, bool, str | None]


def _fact_key(model: Model) -> FactKey:
    return (
        model.origin,
        model.api,
        model.portability_required,
        model.custom_quantization,
        model.custom_topology,
        model.base_model if model.origin == "lora" else None,
    )


@dataclass
class Memo:
    """Scores and open facts per combination of facts, for one set of weights."""

    weights: Weights
    scored: dict[FactKey, tuple[tuple[Adjustment, ...], tuple[OptionScore, ...]]] = field(
        default_factory=dict
    )
    open: dict[FactKey, tuple[OpenFact, ...]] = field(default_factory=dict)

    def score(self, model: Model) -> tuple[tuple[Adjustment, ...], tuple[OptionScore, ...]]:
        key = _fact_key(model)
        found = self.scored.get(key)
        if found is None:
            adjustments = tuple(_effective(model))
            ranking = rank([score_option(o, self.weights, adjustments) for o in OPTIONS])
            found = self.scored[key] = (adjustments, ranking)
        return found

    def open_facts(self, model: Model) -> tuple[OpenFact, ...]:
        key = _fact_key(model)
        found = self.open.get(key)
        if found is None:
            found = self.open[key] = _open_facts(model, self)
        return found


def _changes(base: Sequence[OptionScore], other: Sequence[OptionScore]) -> list[str]:
    """What `other` changes against `base`: options ruled out, bonuses added."""
    was = {s.option: s for s in base}
    out = []
    for s in sorted(other, key=lambda s: OPTIONS.index(s.option)):
        before = was[s.option]
        if s.excluded and not before.excluded:
            out.append(f"would rule {LABELS[s.option]} out")
        elif not s.excluded and s.bonus > before.bonus + 1e-9:
            points = (s.bonus - before.bonus) / s.weight_total
            out.append(f"would add {LABELS[s.option]}'s +{points:g} bonus")
    return out


def _open_facts(model: Model, memo: Memo) -> tuple[OpenFact, ...]:
    """For each fact left unknown, what each of its values would do, against the fact
    left unknown. Where another fact is unknown too, every value of it is tried, and an
    effect that needs one is told with it ("with api openai")."""
    unknown = [f for f in OPEN_FACT_VALUES if getattr(model, f) == UNKNOWN]
    winner = memo.score(model)[1][0].option
    out = []
    for fact in unknown:
        others = [f for f in unknown if f != fact]
        combos = list(itertools.product(*(OPEN_FACT_VALUES[f] for f in others)))
        outcomes = []
        for value in OPEN_FACT_VALUES[fact]:
            # What the value changes, per combination of the other unknown facts.
            seen: dict[tuple[tuple[str, ...], str | None], list[str]] = {}
            winners: set[str] = set()
            for combo in combos:
                given = dict(zip(others, combo))
                _, before = memo.score(model.model_copy(update=given))
                _, after = memo.score(model.model_copy(update={**given, fact: value}))
                new = after[0].option
                winners.add(new)
                said = (tuple(_changes(before, after)), new if new != before[0].option else None)
                told = " and ".join(f"{f} {v}" for f, v in given.items())
                seen.setdefault(said, []).append(told)
            outcomes.append(_outcome(value, seen, winners, len(combos)))
        out.append(OpenFact(fact, tuple(outcomes), winner))
    return tuple(out)


def _outcome(
    value: str,
    seen: Mapping[tuple[tuple[str, ...], str | None], list[str]],
    winners: set[str],
    combos: int,
) -> Outcome:
    parts = []
    for (changes, new_winner), when in seen.items():
        said = list(changes) + ([f"make {LABELS[new_winner]} the winner"] if new_winner else [])
        if not said:
            continue
        text = " and ".join(said)
        if len(when) < combos:  # it depends on another unknown fact
            text += " with " + " or ".join(when)
        parts.append(text)
    decides = any(w is not None for _, w in seen)
    ordered = tuple(o for o in OPTIONS if o in winners)
    if not parts:
        return Outcome(value, "would change nothing", ordered, False, False)
    return Outcome(value, "; ".join(parts), ordered, True, decides)


def advise_model(
    model: Model, weights: Weights, costs: Costs, holding: Holding, memo: Memo | None = None
) -> Advice:
    memo = memo if memo is not None and memo.weights == weights else Memo(weights)
    adjustments, ranking = memo.score(model)
    nim_out = next(s for s in ranking if s.option == "nim").excluded
    pricing = None if nim_out else price_nim(ranking, holding, costs)
    return Advice(
        model=model.name,
        runtime=model.runtime,
        weights=weights,
        ranking=ranking,
        adjustments=adjustments,
        pricing=pricing,
        facts=facts_of(model),
        open_facts=memo.open_facts(model),
    )


def advise_all(
    models: Sequence[Model], weights: Weights, costs: Costs, holdings: Mapping[str, Holding]
) -> list[Advice]:
    memo = Memo(weights)
    return [
        advise_model(m, weights, costs, holdings.get(m.name, Holding.none()), memo) for m in models
    ]


def usd(value: float) -> str:
    # Cents only where they matter: a GPU-hour price, not a monthly bill.
    if abs(value) < 100 and round(value, 2) != round(value):
        return f"${value:,.2f}"
    return f"${value:,.0f}"


def ranking_text(advice: Advice) -> str:
    """`nim 4.64 > triton 3.29 > build 2.14`, excluded options as `(nim out)`."""
    allowed = [f"{s.option} {s.normalised:.2f}" for s in advice.ranking if not s.excluded]
    out = " > ".join(allowed)
    dropped = [s.option for s in advice.ranking if s.excluded]
    return out + "".join(f" ({o} out)" for o in dropped)
