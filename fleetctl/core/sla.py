"""The load and latency model placement uses to decide which replicas may share a GPU.

A replica's p95 latency grows as the GPU's compute is taken by its neighbours:

    p95 = latency_alone / (1 - sum of the neighbours' utilisation)

so a GPU whose tenants' utilisations sum to U keeps tenant m within its SLA exactly when

    U <= 1 - latency_m / sla_m + util_m        (m's "util budget")

Placement caches the smallest budget per GPU, which turns every SLA check into one
comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fleetctl.core.fleet import Deployment, GpuSpec

# Tolerance for sums of floats that sit exactly on a limit (two 40 GB models on an 80 GB
# GPU, two 0.5 utilisations under a 1.0 budget) so that they are accepted.
EPS = 1e-9


def util_of(d: Deployment, gpu: GpuSpec) -> float:
    """Share of `gpu`'s compute one replica of `d` takes on each of its GPUs.

    Without a declared `gpu_util` the memory share stands in for it: a model that fills
    half the memory of a GPU is assumed to take about half its compute.
    """
    if d.gpu_util is not None:
        return d.gpu_util
    if gpu.memory_gb <= 0:
        return math.inf
    return d.memory_per_gpu_gb / gpu.memory_gb


def latency_of(d: Deployment) -> float | None:
    """p95 latency of `d` alone on a GPU: declared, else half the SLA, else unknown."""
    if d.latency_ms is not None:
        return d.latency_ms
    if d.sla_ms is not None:
        return d.sla_ms / 2
    return None


def p95_with_load(latency_ms: float, others_util: float) -> float:
    """Predicted p95 of a replica whose neighbours take `others_util` of the GPU."""
    free = 1.0 - others_util
    if free <= EPS:  # float residue of a saturated GPU is saturation, not a huge figure
        return math.inf
    return latency_ms / free


def predicted_p95(d: Deployment, gpu: GpuSpec, others: Sequence[Deployment]) -> float:
    """Predicted p95 of `d` on `gpu` beside `others` (inf when they leave no compute).

    A deployment with neither a latency nor an SLA has nothing to predict: 0.0.
    """
    latency = latency_of(d)
    if latency is None:
        return 0.0
    return p95_with_load(latency, sum(util_of(o, gpu) for o in others))


def util_slack(d: Deployment) -> float:
    """How much the neighbours of `d` may take before its SLA breaks (inf without SLA).

    Adding `util_of(d, gpu)` gives the largest total utilisation of a GPU that keeps `d`
    within its SLA; a negative slack means the SLA is out of reach even alone.
    """
    latency = latency_of(d)
    if d.sla_ms is None or latency is None:
        return math.inf
    return 1.0 - latency / d.sla_ms


def fmt_ms(value: float) -> str:
    """Milliseconds as the messages print them: one decimal, 'inf' when saturated."""
    return "inf" if math.isinf(value) else f"{value:.1f}"


def fmt_num(value: float) -> str:
    """A declared figure (an SLA, a size) as the user wrote it: 20, 12.5."""
    return f"{value:g}"
