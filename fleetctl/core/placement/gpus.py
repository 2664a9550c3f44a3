"""GPU types: which GPU models a deployment may run on (pure).

A model's `gpu_models: [...]` names the GPU models it needs; a GPU matches when one of
the names matches its model name. Names are compared as words: case, punctuation and a
leading "NVIDIA" are ignored, and a name matches when its words appear, in order and
next to each other, among the GPU's. So `H100` matches the inventory's `H100-80GB` and
NVML's `NVIDIA H100 80GB HBM3`; `L4` never matches `L40S`; `A100-80GB` does not match
NVML's `NVIDIA A100-SXM4-80GB` (write `A100` or `A100-SXM4-80GB`). A GPU without a model
name matches no requirement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"[a-z0-9]+")


def words(name: str) -> tuple[str, ...]:
    """The words of a GPU model name, lower case, without a leading `nvidia`."""
    out = tuple(_WORD.findall(name.lower()))
    return out[1:] if out[:1] == ("nvidia",) else out


def model_matches(wanted: str, model: str) -> bool:
    """Whether the required name `wanted` matches the GPU model name `model`."""
    need = words(wanted)
    have = words(model)
    if not need or len(need) > len(have):
        return False
    n = len(need)
    return any(have[i : i + n] == need for i in range(len(have) - n + 1))


def allows(required: Iterable[str], model: str) -> bool:
    """Whether a GPU named `model` meets a deployment's `gpu_models` (empty: any GPU)."""
    required = tuple(required)
    return not required or any(model_matches(w, model) for w in required)
