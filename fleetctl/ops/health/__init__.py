"""`health`: sweeps over the fleet for cron, Prometheus and the people they page.

- `model`: the values (targets, probe results, verdicts, the report);
- `targets`: every desired replica with its container and how to probe it (pure);
- `probing`: NIM and Triton probes past "it answers" (one HTTP client per sweep);
- `profiles`: the NIM profile named in a start-up log (pure);
- `facts`: restart counts, start times and log heads, through the `ContainerInspector` port;
- `verdicts`: every decision: grace, streaks, crash loops, exit codes (pure);
- `sweeping`: one sweep, with the state's memory; `heal`: `--heal`.

The sweep's result (and its JSON) is `fleetctl.results.health`; the table is rendered in
`fleetctl.cli.render.health_text` and the Prometheus textfile in
`fleetctl.cli.health_metrics`.
"""

from fleetctl.ops.health.model import (
    DEFAULT_FAILURES,
    DEFAULT_TIMEOUT_S,
    ContainerFacts,
    DeploymentHealth,
    DeploymentState,
    FrontDoorHealth,
    HealAction,
    HealthReport,
    HostHealth,
    Probe,
    ProbeResult,
    ProbeSpec,
    Profile,
    ReplicaHealth,
    ReplicaState,
    Sample,
    Target,
    TritonDrift,
    Verdict,
)
from fleetctl.ops.health.sweeping import run_sweep, sweep
from fleetctl.ops.health.targets import targets
from fleetctl.ops.health.verdicts import classify, classify_replica, exit_code, judge

__all__ = [
    "DEFAULT_FAILURES",
    "DEFAULT_TIMEOUT_S",
    "ContainerFacts",
    "DeploymentHealth",
    "DeploymentState",
    "FrontDoorHealth",
    "HealAction",
    "HealthReport",
    "HostHealth",
    "Probe",
    "ProbeResult",
    "ProbeSpec",
    "Profile",
    "ReplicaHealth",
    "ReplicaState",
    "Sample",
    "Target",
    "TritonDrift",
    "Verdict",
    "classify",
    "classify_replica",
    "exit_code",
    "judge",
    "run_sweep",
    "sweep",
    "targets",
]
