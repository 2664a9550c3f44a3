"""The NIM profile a replica runs, read from its start-up log (pure).

A NIM names its choice in one line, `Selected profile: <id> (<name>)`. The expected
profile is the inventory's `nim.model_profile` (an id or a name) when it is set, else
"an optimized profile": one whose engine is not a generic one. A NIM that finds no
optimized profile for its GPUs falls back to a generic engine (vLLM, SGLang) and warns;
it then serves, slower and with other memory needs than planned: degraded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SELECTED = re.compile(r"Selected profile:\s*(?P<id>\S+)\s*\((?P<name>[^)]*)\)")
FALLBACK = re.compile(r"no optimized profile|falling back to a generic", re.IGNORECASE)
GENERIC_ENGINES = ("vllm", "sglang")
# Lines of the log head read for the profile: real NIMs name it within their first hundred.
HEAD_LINES = 300


@dataclass(frozen=True)
class Profile:
    """The NIM profile a replica's start-up log names, against the expected one."""

    id: str | None
    name: str | None
    expected: str | None  # nim.model_profile, or None: "an optimized profile"
    fallback_warning: bool = False  # the log says it fell back to a generic profile

    @property
    def found(self) -> bool:
        return self.id is not None

    @property
    def problem(self) -> str | None:
        return profile_problem(self)


def parse_profile(log_head: str, expected: str | None) -> Profile:
    """The profile the log names (the first selection in it: the log head of one run)."""
    m = SELECTED.search(log_head)
    fallback = bool(FALLBACK.search(log_head))
    if m is None:
        return Profile(None, None, expected, fallback)
    return Profile(m.group("id"), m.group("name").strip(), expected, fallback)


def is_generic(name: str) -> bool:
    engine = name.lower().split("-", 1)[0]
    return engine in GENERIC_ENGINES


def profile_problem(p: Profile) -> str | None:
    """Why the profile makes the replica degraded; None when it is the one expected (or
    the log does not name one: nothing to judge)."""
    if p.id is None or p.name is None:
        return None
    shown = f"{p.name} ({p.id[:12]})" if p.name and p.name != p.id else p.id[:64]
    if p.expected:
        if p.expected in (p.id, p.name):
            return None
        return f"profile {shown}, expected {p.expected} (nim.model_profile)"
    if is_generic(p.name):
        return f"fallback profile {shown}: a generic engine, not an optimized profile"
    if p.fallback_warning:
        return f"profile {shown}: the start-up log says no optimized profile fits"
    return None
