"""Triton's model repository API on a running server, through tritonclient: load,
reload and unload one model without touching the others.

A model fleetctl loads records the member that loaded it in its own configuration (the
`fleetctl.member` parameter), so that observation can tell which version a server
holds, the way container labels tell it for containers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from fleetctl.adapters.probes import MEMBER_PARAMETER


class TritonControlError(Exception):
    """Triton refused a repository call; the message is Triton's reason."""


def _client(endpoint: str, timeout_s: float) -> Any:
    import tritonclient.http as tc

    url = endpoint.split("://", 1)[-1].rstrip("/")
    return tc.InferenceServerClient(url, connection_timeout=timeout_s, network_timeout=timeout_s)


def _reason(exc: Exception) -> str:
    msg = getattr(exc, "message", None)
    text = msg() if callable(msg) else str(exc)
    return " ".join(str(text).split()).rstrip(";") or type(exc).__name__


def load(
    endpoint: str,
    model: str,
    member: str,
    overrides: Mapping[str, Any] | None = None,
    timeout_s: float = 300.0,
) -> None:
    """Load (or reload) `model` from the server's repositories, then load it once more
    with its configuration plus `overrides` and `member` recorded (the load API's config
    override). When a load fails Triton keeps any version already loaded serving; the
    error carries Triton's reason."""
    from tritonclient.utils import InferenceServerException

    from fleetctl.core.triton_servers import merged_config

    client = _client(endpoint, timeout_s)
    try:
        try:
            client.load_model(model)
        except InferenceServerException as exc:
            raise TritonControlError(_reason(exc)) from None
        try:
            config = merged_config(client.get_model_config(model), overrides or {})
            config.setdefault("parameters", {})[MEMBER_PARAMETER] = {"string_value": member}
            client.load_model(model, config=json.dumps(config))
            if not client.is_model_ready(model):
                raise TritonControlError(f"model {model} is not ready after loading")
        except InferenceServerException as exc:
            raise TritonControlError(_reason(exc)) from None
    finally:
        client.close()


def unload(endpoint: str, model: str, timeout_s: float = 60.0) -> None:
    from tritonclient.utils import InferenceServerException

    client = _client(endpoint, timeout_s)
    try:
        client.unload_model(model)
    except InferenceServerException as exc:
        raise TritonControlError(_reason(exc)) from None
    finally:
        client.close()


def load_declared(endpoint: str, models: Sequence[str], timeout_s: float) -> tuple[bool, str]:
    """Load each model as the repository declares it (one client) and check it is ready."""
    import tritonclient.http as tc

    client = tc.InferenceServerClient(
        urlparse(endpoint).netloc, connection_timeout=timeout_s, network_timeout=timeout_s
    )
    started = time.monotonic()
    try:
        failed = []
        for m in models:
            try:
                client.load_model(m)
                if not client.is_model_ready(m):
                    failed.append(f"{m}: not ready after load")
            except Exception as exc:
                failed.append(f"{m}: {type(exc).__name__}: {str(exc).strip()[:200]}")
    finally:
        client.close()
    if failed:
        return False, "; ".join(failed)
    return True, f"loaded and ready in {time.monotonic() - started:.1f} s"


class TritonRepository:
    """The `TritonControl` port over tritonclient's repository API."""

    def load(self, endpoint: str, model: str, member: str, overrides: Mapping[str, Any]) -> None:
        load(endpoint, model, member, overrides)

    def unload(self, endpoint: str, model: str) -> None:
        unload(endpoint, model)

    def load_declared(
        self, endpoint: str, models: Sequence[str], timeout_s: float
    ) -> tuple[bool, str]:
        return load_declared(endpoint, models, timeout_s)
