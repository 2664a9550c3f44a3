"""Probing one replica, past "it answers": readiness, what it serves, and one timed request.

`Prober` is the sweep's probe: one HTTP client for the whole sweep (`http.SweepHTTP`,
shared by the probe threads, a replica's requests on one kept-alive connection), and a
Triton client per Triton replica (tritonclient, imported only when the inventory has a
Triton model). Every check of a replica shares one budget.

- NIM: the runtime's readiness check (`GET /v1/health/ready`; when it fails, also
  `GET /v1/health/live`, to tell a dead server from one still loading), `GET /v1/models`
  listing the served model, then one chat completion of one token, timed against the
  model's `sla_ms`.
- Triton: the runtime's checks (`GET /v2/health/ready`, each declared model ready), the
  repository index (`POST /v2/repository/index`) against the declared models (drift),
  then the inventory's `health.sample` inference, timed; without a sample, a model-ready
  call is what is timed.
- Any other runtime (plugins, front doors): the runtime's own checks, in order.

Unlike apply's gate, a failure does not stop the other readiness checks: Triton's server
readiness fails as soon as one model is not ready, and only the model checks after it say
which one.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlparse

from fleetctl.ops.health.model import ProbeResult, ProbeSpec, Sample, TritonDrift
from fleetctl.runtimes.spec import HealthCheck

NIM_LIVE = "/v1/health/live"
NIM_MODELS = "/v1/models"
NIM_CHAT = "/v1/chat/completions"
PING = {
    "messages": [{"role": "user", "content": "ping"}],
    "max_tokens": 1,
    "temperature": 0,
    "stream": False,
}


class Deadline:
    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self.at = time.monotonic() + budget_s

    @property
    def left(self) -> float:
        return self.at - time.monotonic()


class Prober:
    """Callable as `Probe`; close it (or use `with`) when the sweep is done."""

    def __init__(self) -> None:
        from fleetctl.ops.health.http import SweepHTTP

        self.http = SweepHTTP()  # one client for the whole sweep

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Prober:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, ps: ProbeSpec, timeout_s: float) -> ProbeResult:
        deadline = Deadline(timeout_s)
        if ps.runtime == "nim":
            return self._nim(ps, deadline)
        if ps.runtime == "triton":
            return self._triton(ps, deadline)
        if not any(c.kind == "triton_model" for c in ps.spec.health):
            return _result(self._checks(ps, ps.spec.health, deadline, None))
        client = _triton_client(ps, deadline)
        try:
            return _result(self._checks(ps, ps.spec.health, deadline, client))
        finally:
            _close(client)

    # -- the pieces ---------------------------------------------------------------------
    def _get(self, ps: ProbeSpec, path: str, deadline: Deadline) -> tuple[int | None, Any, str]:
        """(status, JSON body or None, what went wrong if the request itself failed)."""
        from fleetctl.ops.health.http import HTTPFailure

        left = deadline.left
        if left <= 0:
            return None, None, f"GET {path}: not reached within {deadline.budget_s:g} s"
        try:
            r = self.http.get(ps.endpoint.rstrip("/") + path, timeout=left)
        except HTTPFailure as exc:
            return None, None, f"GET {path}: {exc.kind}"
        return r.status, r.json(), ""

    def _checks(
        self, ps: ProbeSpec, checks: tuple[HealthCheck, ...], deadline: Deadline, triton: Any
    ) -> list[tuple[str, str]]:
        """Run every check within the budget; (check description, why) per failure."""
        failures: list[tuple[str, str]] = []
        for check in checks:
            what = check.description or f"{check.kind} {check.target}"
            if deadline.left <= 0:
                if not failures:  # after a failure, checks left unrun add nothing
                    failures.append((what, f"{what}: not reached within {deadline.budget_s:g} s"))
                break
            if check.kind == "http":
                status, _, err = self._get(ps, check.target, deadline)
                if err or status != 200:
                    failures.append((what, err or f"GET {check.target}: {status}"))
            elif check.kind == "triton_model":
                try:
                    ready = (
                        bool(triton.is_model_ready(check.target)) if triton is not None else False
                    )
                except Exception as exc:  # tritonclient raises several types; any means "not ready"
                    failures.append((what, f"model {check.target}: {type(exc).__name__}"))
                    continue
                if not ready:
                    failures.append((what, f"model {check.target}: not ready"))
            else:  # a kind a plugin registered, through its own probe
                from fleetctl.runtimes.registry import run_plugin_check

                result = run_plugin_check(ps.endpoint, check, deadline.left)
                if not result.ok:
                    failures.append((what, result.detail))
        return failures

    def _nim(self, ps: ProbeSpec, deadline: Deadline) -> ProbeResult:
        failures = self._checks(ps, ps.spec.health, deadline, None)
        if failures:
            # Ready implies live; only a replica that is not ready is asked whether it is
            # live at all, which tells a dead server from one still loading.
            live = HealthCheck("http", NIM_LIVE, f"GET {NIM_LIVE} answers 200")
            status, _, err = self._get(ps, NIM_LIVE, deadline)
            if err or status != 200:
                failures.insert(0, (live.description, err or f"GET {NIM_LIVE}: {status}"))
            return _result(failures)
        status, body, err = self._get(ps, NIM_MODELS, deadline)
        listed = (
            [m.get("id") for m in (body or {}).get("data", []) if isinstance(m, dict)]
            if isinstance(body, dict)
            else []
        )
        what = f"GET {NIM_MODELS} lists the served model"
        if err or status != 200:
            return _result([(what, err or f"GET {NIM_MODELS}: {status}")])
        if ps.served_model and ps.served_model not in listed:
            return _result(
                [
                    (
                        what,
                        f"GET {NIM_MODELS}: {ps.served_model} not listed (lists: {', '.join(map(str, listed)) or 'nothing'})",
                    )
                ]
            )
        if not listed:
            return _result([(what, f"GET {NIM_MODELS}: no model listed")])
        model = ps.served_model or str(listed[0])
        request = f"POST {NIM_CHAT} (1 token)"
        return self._timed(ps, deadline, request, lambda left: self._chat(ps, model, left))

    def _chat(self, ps: ProbeSpec, model: str, left: float) -> str | None:
        from fleetctl.ops.health.http import HTTPFailure

        try:
            r = self.http.post_json(
                ps.endpoint.rstrip("/") + NIM_CHAT, {"model": model, **PING}, timeout=left
            )
        except HTTPFailure as exc:
            return f"POST {NIM_CHAT}: {exc.kind}"
        return None if r.status == 200 else f"POST {NIM_CHAT}: {r.status}"

    def _triton(self, ps: ProbeSpec, deadline: Deadline) -> ProbeResult:
        client = _triton_client(ps, deadline)
        try:
            failures = self._checks(ps, ps.spec.health, deadline, client)
            drift, index_problem = (None, None)
            if deadline.left > 0:
                drift, index_problem = repository_drift(client, ps.triton_models)
            failures += [
                (f"model {m} is READY", f"drift: model {m} {why}")
                for m, why in (drift.not_ready if drift else ())
            ]
            failures += [
                (f"model {m} is READY", f"drift: model {m} is not in the repository")
                for m in (drift.missing if drift else ())
            ]
            degraded = [
                f"drift: model {m} is loaded but not declared"
                for m in (drift.extra if drift else ())
            ]
            if index_problem and not failures:  # with failed checks, those say what is wrong
                degraded.append(index_problem)
            if failures:
                return _result(_unique(failures), degraded=degraded, drift=drift)
            if ps.sample is not None:
                sample = ps.sample
                result = self._timed(
                    ps, deadline, f"infer {sample.model}", lambda left: _infer(client, sample)
                )
            else:
                first = ps.triton_models[0] if ps.triton_models else ""
                result = self._timed(
                    ps,
                    deadline,
                    f"GET /v2/models/{first}/ready (no health.sample)",
                    lambda left: _ready(client, first),
                )
            return _with(result, degraded, drift)
        finally:
            _close(client)

    def _timed(self, ps: ProbeSpec, deadline: Deadline, request: str, call: Any) -> ProbeResult:
        """Time one request; over the SLA makes the replica degraded, a failed one unhealthy."""
        left = deadline.left
        if left <= 0:
            return ProbeResult(
                True,
                "ready",
                request=request,
                degraded=(f"latency not measured: the {deadline.budget_s:g} s budget was spent",),
            )
        started = time.monotonic()
        problem = call(left)
        took = time.monotonic() - started
        if problem:
            return ProbeResult(
                False,
                problem,
                f"{request} succeeds",
                problems=(problem,),
                request=request,
                request_latency_s=took,
            )
        over = ps.sla_ms is not None and took * 1000 > ps.sla_ms
        degraded = (
            (f"latency {took * 1000:.0f} ms over the {ps.sla_ms:g} ms SLA ({request})",)
            if over
            else ()
        )
        return ProbeResult(
            True, "ready", degraded=degraded, request=request, request_latency_s=took, over_sla=over
        )


def _triton_client(ps: ProbeSpec, deadline: Deadline) -> Any:
    """A Triton client for the replica within the budget left (its calls then fail, not hang)."""
    import tritonclient.http as tc

    budget = max(deadline.left, 0.01)
    return tc.InferenceServerClient(
        urlparse(ps.endpoint).netloc, connection_timeout=budget, network_timeout=budget
    )


def _close(client: Any) -> None:
    try:
        client.close()
    except Exception:
        pass


def repository_drift(
    client: Any, declared: tuple[str, ...]
) -> tuple[TritonDrift | None, str | None]:
    """The repository index against the declared models: (drift, or why it is unknown)."""
    try:
        index = client.get_model_repository_index()
    except Exception as exc:
        return None, f"POST /v2/repository/index: {type(exc).__name__}"
    states: dict[str, list[tuple[str, str]]] = {}
    for entry in index or []:
        states.setdefault(str(entry.get("name", "")), []).append(
            (str(entry.get("state", "")), str(entry.get("reason", "")))
        )
    missing = tuple(m for m in declared if m not in states)
    not_ready = []
    for m in declared:
        seen = states.get(m)
        if seen and not any(s == "READY" for s, _ in seen):
            state, reason = seen[0]
            not_ready.append(
                (m, f"is {state or 'not loaded'}" + (f" ({reason})" if reason else ""))
            )
    extra = tuple(
        sorted(
            n
            for n, seen in states.items()
            if n not in declared and any(s == "READY" for s, _ in seen)
        )
    )
    return TritonDrift(missing, tuple(not_ready), extra), None


def _ready(client: Any, model: str) -> str | None:
    try:
        return None if client.is_model_ready(model) else f"model {model}: not ready"
    except Exception as exc:
        return f"model {model}: {type(exc).__name__}"


def _infer(client: Any, sample: Sample) -> str | None:
    """One inference with the sample's inputs (datatypes from the model's metadata)."""
    import numpy as np
    import tritonclient.http as tc
    from tritonclient.utils import triton_to_np_dtype

    try:
        meta = client.get_model_metadata(sample.model)
        types = {i["name"]: i["datatype"] for i in meta.get("inputs", [])}
        inputs = []
        for name, values in sample.inputs.items():
            dtype = types.get(name)
            if dtype is None:
                return f"infer {sample.model}: the model has no input {name}"
            if dtype == "BYTES":
                arr = np.array(values, dtype=object)
                arr = np.vectorize(
                    lambda v: v if isinstance(v, bytes) else str(v).encode(), otypes=[object]
                )(arr)
            else:
                arr = np.array(values, dtype=triton_to_np_dtype(dtype))
            item = tc.InferInput(name, list(arr.shape), dtype)
            item.set_data_from_numpy(arr)
            inputs.append(item)
        client.infer(sample.model, inputs)
    except Exception as exc:
        text = str(exc).strip().splitlines()
        return f"infer {sample.model}: {type(exc).__name__}" + (
            f": {text[0][:200]}" if text else ""
        )
    return None


def _unique(failures: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: set[str] = set()
    return [f for f in failures if not (f[1] in seen or seen.add(f[1]))]  # type: ignore[func-returns-value]


def _result(
    failures: list[tuple[str, str]],
    degraded: list[str] | None = None,
    drift: TritonDrift | None = None,
) -> ProbeResult:
    if not failures:
        return ProbeResult(True, "ready", degraded=tuple(degraded or ()), drift=drift)
    problems = tuple(why for _, why in failures)
    return ProbeResult(
        False,
        "; ".join(problems),
        failures[0][0],
        problems=problems,
        degraded=tuple(degraded or ()),
        drift=drift,
    )


def _with(result: ProbeResult, degraded: list[str], drift: TritonDrift | None) -> ProbeResult:
    from dataclasses import replace

    return replace(result, degraded=tuple(degraded) + result.degraded, drift=drift)


def preload(runtimes: set[str]) -> None:
    """Import the Triton client now if it will be needed: inside the first probe it would
    add a few hundred milliseconds to that replica's latency."""
    if "triton" in runtimes:
        import tritonclient.http  # noqa: F401
