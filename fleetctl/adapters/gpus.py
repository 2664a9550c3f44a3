"""GPU discovery with NVML, for hosts that declare `gpus: auto`."""

from __future__ import annotations

from fleetctl.core.fleet import GpuSpec
from fleetctl.errors import FleetctlError


def discover_local_gpus(reserve_gb: float = 0.0) -> tuple[GpuSpec, ...]:
    """The GPUs of this machine through NVML; a clear error where NVML cannot load."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ImportError
        raise FleetctlError(
            f"gpus: auto needs NVML (the NVIDIA driver) on this machine, which is not available: {exc}; "
            "declare gpus: {count, memory_gb} instead"
        ) from None
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
            gpus.append(
                GpuSpec(
                    index=i, memory_gb=round(mem.total / 1e9, 1), reserve_gb=reserve_gb, model=name
                )
            )
        return tuple(gpus)
    finally:
        pynvml.nvmlShutdown()
