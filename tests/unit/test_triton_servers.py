"""Shared Triton servers, the pure part: grouping, the server's spec hash, model changes."""

from __future__ import annotations

from fleetctl.core.fleet import Deployment, GpuSpec, HostSpec
from fleetctl.core.observed import ObservedContainer
from fleetctl.core.plan import spec_hash
from fleetctl.core.triton_servers import Member, grouped, is_server, members_of, model_changes, serve_together

HOSTS = [HostSpec("h", (GpuSpec(0, 80.0), GpuSpec(1, 80.0)))]


def triton(name: str, *, memory: float = 2, sla: float | None = None, latency: float | None = None, util: float | None = None,
           repo: str = "/repo", **cfg: object) -> Deployment:
    settings = {"triton": {"model_repository": repo, "models": [name], "server_binary": "tritonserver", **cfg}, "env": {}}
    return Deployment(name, "1", "triton", "tritonserver:2.51", memory, sla_ms=sla, latency_ms=latency, gpu_util=util, settings=settings)


def test_compatible_models_share_one_server_and_others_keep_their_own() -> None:
    nim = Deployment("chat", "1", "nim", "nim:1", 40)
    out, members = grouped([triton("a"), triton("b"), triton("c", dedicated=True), nim], HOSTS)
    servers = [d for d in out if is_server(d)]
    assert len(servers) == 1 and servers[0].memory_gb == 4
    assert [m.name for m in members[servers[0].name]] == ["a@1", "b@1"]
    assert {d.name for d in out if not is_server(d)} == {"c@1", "chat@1"}
    assert [m.models for m in members_of(servers[0])] == [("a",), ("b",)]


def test_members_that_would_break_an_sla_beside_each_other_get_separate_servers() -> None:
    # Each takes 0.5 of the GPU; beside the other, a's p95 would be 10 / 0.5 = 20 > 15.
    out = serve_together([triton("a", sla=15, latency=10, util=0.5), triton("b", util=0.5)], HOSTS)
    assert sum(is_server(d) for d in out) == 2


def test_the_server_keeps_its_spec_hash_when_members_come_and_go() -> None:
    (three,) = serve_together([triton("a"), triton("b"), triton("c")], HOSTS)
    (two,) = serve_together([triton("a"), triton("c")], HOSTS)
    assert three.name == two.name
    assert spec_hash(three, "h", (1,), 20000) == spec_hash(two, "h", (1,), 20000)
    (moved,) = serve_together([triton("a", repo="/other"), triton("c")], HOSTS)
    assert spec_hash(moved, "h", (1,), 20000) != spec_hash(two, "h", (1,), 20000)  # a new repository: a new container


def _running(ready: tuple[str, ...], members: dict[str, str]) -> ObservedContainer:
    return ObservedContainer("h", "id", "s", "triton-x@1", 0, (1,), "hash", "running", "img", triton_ready=ready, triton_members=members)


def test_model_changes_load_the_missing_reload_the_changed_and_unload_the_rest() -> None:
    (server,) = serve_together([triton("a"), triton("b")], HOSTS)
    a, b = members_of(server)
    stale = Member("b@0", ("b",), "/repo").identity()
    changes = model_changes(server, _running(("b", "old"), {"b": stale, "old": "old@1/x"}))
    assert [(c.kind, c.model) for c in changes] == [("load", "a"), ("reload", "b"), ("unload", "old")]
    assert model_changes(server, _running(("a", "b"), {"a": a.identity(), "b": b.identity()})) == []
    assert model_changes(server, _running(None, {})) == []  # readiness unknown: nothing to decide  # type: ignore[arg-type]
