"""GPU discovery where NVML cannot load (no NVIDIA driver): a clear error, not a crash."""

from __future__ import annotations

import pytest

from fleetctl.adapters.gpus import discover_local_gpus
from fleetctl.errors import FleetctlError


def test_discovery_without_a_driver_says_what_to_do() -> None:
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        pytest.skip("this machine has a working NVIDIA driver; discovery succeeds here")
    except Exception:
        pass
    with pytest.raises(FleetctlError) as exc:
        discover_local_gpus()
    assert "NVML" in exc.value.message and "declare gpus" in exc.value.message
