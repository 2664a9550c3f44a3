"""fleetctl: a control plane for a fleet of GPU inference models on Docker hosts.

The version is written once, in pyproject.toml: `importlib.metadata.version("fleetctl")`
(or `fleetctl --version`) reads it from the installed package.
"""
