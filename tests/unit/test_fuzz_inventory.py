"""A fuzzer over the loader and the planner: whatever the file holds, fleetctl answers with
its own errors (`FleetctlError`: one line, a documented exit code), never a traceback,
and never hangs.

Three generators: arbitrary bytes; a valid inventory's YAML text with characters that
mean something to YAML (anchors, aliases, tags, flow brackets) spliced in; and a valid
inventory's values replaced by hostile ones (infinities, NaN, text for numbers, huge
numbers, nulls, empty and odd strings, nested lists) before it is written out. What
loads is planned offline, as `fleetctl plan --offline` does.

Bounded for CI: FLEETCTL_FUZZ_EXAMPLES examples per generator (default 200; the count is
in docs/reliability.md), each with a deadline that turns a hang into a failure.
"""

from __future__ import annotations

import copy
import os
from datetime import timedelta
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetctl.core.loader import parse_yaml
from fleetctl.core.observed import ObservedFleet
from fleetctl.errors import FleetctlError
from fleetctl.ops.planning import build_plan
from fleetctl.runtimes.inventory import load_text

EXAMPLES = int(os.environ.get("FLEETCTL_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(
        seconds=10
    ),  # generous on a loaded 2-core machine: this catches hangs, not slowness
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize="FLEETCTL_FUZZ_EXAMPLES" not in os.environ,  # the same examples in every CI run
)

BASE: dict[str, Any] = {
    "fleet": "fuzz",
    "front_door": {"port": 20999},
    "hosts": [
        {
            "name": "h1",
            "docker": "unix:///run/a.sock",
            "simulated": True,
            "gpus": {"count": 2, "memory_gb": 80},
            "ports": "20000-20999",
            "labels": {"zone": "a"},
        },
        {
            "name": "h2",
            "docker": "ssh://ops@gpu2",
            "simulated": True,
            "gpus": {"count": 4, "memory_gb": 40},
            "reserve_gb": 2,
            "address": "10.0.0.2",
        },
    ],
    "models": [
        {
            "name": "chat",
            "version": "v2",
            "runtime": "nim",
            "image": "nim:2",
            "gpu_memory_gb": 30,
            "replicas": 2,
            "sla_ms": 200,
            "latency_ms": 120,
            "gpu_util": 0.5,
            "env": {"LOG": "info"},
            "nim": {"served_model_name": "chat", "passthrough_args": "--max-num-seqs 8"},
            "pins": [
                {"version": "v1", "image": "nim:1", "customers": ["acme"], "gpu_memory_gb": 20}
            ],
        },
        {
            "name": "embed",
            "version": "1",
            "runtime": "triton",
            "image": "triton:1",
            "gpu_memory_gb": 4,
            "gpus": 1,
            "exclusive": False,
            "hosts": {"zone": "a"},
            "triton": {
                "model_repository": "/srv/models",
                "models": ["embed"],
                "args": ["--log-verbose=0"],
            },
        },
    ],
}
BASE_TEXT = yaml.safe_dump(BASE, sort_keys=False)

HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "",
            " ",
            "true",
            "no",
            "4",
            "1e9",
            "-1",
            "nan",
            "inf",
            "0-0",
            "1-65536",
            "20000-19999",
            "unix://",
            "ssh://",
            "tcp://:1",
            "::1",
            "[::1]",
            "é",
            "a" * 300,
            "\u202e",
            "\x85",
            "~",
        ]
    ),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [path] + [p for k, v in value.items() for p in _leaves(v, path + (k,))]
    if isinstance(value, list):
        return [path] + [p for i, v in enumerate(value) for p in _leaves(v, path + (i,))]
    return [path]


PATHS = _leaves(BASE)[1:]


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        doc = doc[part]
    doc[path[-1]] = value


def _plan_if_loads(text: str) -> None:
    """Load and, if the inventory is valid, plan offline; only fleetctl's own errors may come out."""
    try:
        loaded = load_text(text, "fuzz.yaml", known_runtimes=["nim", "triton"])
    except FleetctlError as exc:
        assert exc.message and all(
            line.startswith("fuzz.yaml:") for line in exc.message.splitlines()
        ), exc.message
        return
    observed = ObservedFleet.empty([h.name for h in loaded.inventory.hosts])
    try:
        plan = build_plan(loaded, observed)
    except FleetctlError:
        return
    for a in plan.placement.assignments:  # an invariant worth re-checking on strange input
        assert a.host in {h.name for h in loaded.inventory.hosts}


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise_anything_but_an_inventory_error(data: bytes) -> None:
    try:
        from fleetctl.core.yaml_input import _decode

        text = _decode(data, "fuzz.yaml")
    except FleetctlError:
        return
    _plan_if_loads(text)


SPLICE = st.sampled_from(
    [
        "&a ",
        "*a",
        "*b",
        "&b [*a, *a] ",
        "!x ",
        "!!str ",
        "!!binary ",
        "? ",
        ": ",
        "[",
        "]",
        "{",
        "}",
        "- ",
        "\n",
        "\t",
        "#",
        "'",
        '"',
        "<<: *a\n",
        "~",
        "%YAML 1.1\n",
        "---\n",
        "\x00",
        ".inf",
        ".nan",
        "'true'",
        ", ",
        "|\n",
        ">-\n",
    ]
)


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=len(BASE_TEXT)), SPLICE),
        min_size=1,
        max_size=6,
    )
)
def test_yaml_text_with_syntax_spliced_in_never_raises_anything_else(
    splices: list[tuple[int, str]],
) -> None:
    text = BASE_TEXT
    for at, piece in sorted(splices, reverse=True):
        text = text[:at] + piece + text[at:]
    _plan_if_loads(text)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(PATHS), HOSTILE), min_size=1, max_size=4))
def test_hostile_values_never_raise_anything_else(
    changes: list[tuple[tuple[Any, ...], Any]],
) -> None:
    doc = copy.deepcopy(BASE)
    for path, value in changes:
        try:
            _set(doc, path, value)
        except (KeyError, IndexError, TypeError):  # an earlier change replaced a parent
            continue
    _plan_if_loads(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def test_the_base_inventory_of_the_fuzzer_is_valid_and_plans() -> None:
    """Otherwise the value fuzzer would only ever test refusals."""
    loaded = load_text(BASE_TEXT, "fuzz.yaml", known_runtimes=["nim", "triton"])
    plan = build_plan(loaded, ObservedFleet.empty(["h1", "h2"]))
    assert plan.placement.feasible
    data, _ = parse_yaml(BASE_TEXT, "fuzz.yaml")
    assert data == BASE
