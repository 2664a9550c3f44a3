"""Known errors and the exit codes they map to.

Every error a user can cause or fix is a `FleetctlError`; the CLI's single error
boundary prints its message on one line and exits with its code. Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # failed for the reason in the message (a traceback means a bug)
    USAGE = 2  # bad command-line usage (also used by typer/click)
    INVENTORY = 3  # the inventory file is invalid
    INFEASIBLE = 4  # some replica cannot be placed
    CHANGES_PENDING = 5  # plan --detailed-exitcode: the plan has changes
    HOST_UNREACHABLE = 6  # a host needed by the plan could not be reached
    ROLLOUT_FAILED = 7  # apply: a replica did not become ready, old one kept
    LOCKED = 8  # another fleetctl holds the state lock
    STALE_PLAN = 9  # a saved plan no longer matches the fleet
    UNHEALTHY = (
        10  # health: a replica is critical (failed --failures sweeps in a row, or crash-looping)
    )
    ABORTED = 11  # the user declined a confirmation
    NOT_FOUND = 12  # a named deployment, revision or model does not exist
    DOWNTIME_REFUSED = 13  # a replacement would stop a serving replica and nobody allowed it
    DEGRADED = 14  # health: nothing critical, but a replica is degraded or failing below --failures
    PLUGIN = 15  # a plugin was refused (duplicate runtime, import failure, other hook API version)


class FleetctlError(Exception):
    """An error with an actionable message and a documented exit code."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0])


class InventoryError(FleetctlError):
    """One or more problems in the inventory, each `FILE:LINE:COL: path: problem`."""

    exit_code = ExitCode.INVENTORY

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(problems))


class InfeasibleError(FleetctlError):
    exit_code = ExitCode.INFEASIBLE


class HostUnreachableError(FleetctlError):
    exit_code = ExitCode.HOST_UNREACHABLE


class RolloutFailedError(FleetctlError):
    exit_code = ExitCode.ROLLOUT_FAILED


class LockedError(FleetctlError):
    exit_code = ExitCode.LOCKED


class StalePlanError(FleetctlError):
    exit_code = ExitCode.STALE_PLAN


class NotFoundError(FleetctlError):
    exit_code = ExitCode.NOT_FOUND


class AbortedError(FleetctlError):
    exit_code = ExitCode.ABORTED


class UnstableRevisionError(FleetctlError):
    """A rollback asked for a revision that is not stable (failed or rolled back) without
    `--force`: it exists, so this is not NOT_FOUND; the message says how to insist."""

    exit_code = ExitCode.ERROR


class DowntimeRefusedError(FleetctlError):
    exit_code = ExitCode.DOWNTIME_REFUSED


class StateError(FleetctlError):
    """The state cannot be read or written (read-only, disk full, database unreachable):
    one line naming the state and the reason, exit 1."""

    exit_code = ExitCode.ERROR


class PluginError(FleetctlError):
    """A plugin was refused: it duplicates a runtime, a block key or a health-check kind
    of another distribution, or (when an inventory needs a runtime nobody provides) it
    failed to import or is built for another hook API version."""

    exit_code = ExitCode.PLUGIN
