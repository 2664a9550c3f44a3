"""fleetctl: a control plane for a fleet of GPU inference models on Docker hosts."""

__version__ = "0.1.0"
