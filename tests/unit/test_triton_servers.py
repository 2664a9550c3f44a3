"""Shared Triton servers, the pure part: grouping, the server's spec hash, model changes."""

from __future__ import annotations

from dataclasses import replace

from fleetctl.core.fleet import Deployment, GpuSpec, HostSpec
from fleetctl.core.observed import ObservedContainer
from fleetctl.core.plan import spec_hash
from fleetctl.core.triton_servers import (
    Member,
    configure_at_start,
    grouped,
    is_server,
    member_labels,
    members_of,
    merged_config,
    model_changes,
    serve_together,
)

HOSTS = [HostSpec("h", (GpuSpec(0, 80.0), GpuSpec(1, 80.0)))]


def triton(
    name: str,
    *,
    memory: float = 2,
    sla: float | None = None,
    latency: float | None = None,
    util: float | None = None,
    repo: str = "/repo",
    **cfg: object,
) -> Deployment:
    settings = {
        "triton": {
            "model_repository": repo,
            "models": [name],
            "server_binary": "tritonserver",
            **cfg,
        },
        "env": {},
    }
    return Deployment(
        name,
        "1",
        "triton",
        "tritonserver:2.51",
        memory,
        sla_ms=sla,
        latency_ms=latency,
        gpu_util=util,
        settings=settings,
    )


def test_compatible_models_share_one_server_and_others_keep_their_own() -> None:
    nim = Deployment("chat", "1", "nim", "nim:1", 40)
    out, members = grouped([triton("a"), triton("b"), triton("c", dedicated=True), nim], HOSTS)
    servers = sorted((d for d in out if is_server(d)), key=lambda d: -d.memory_gb)
    assert len(servers) == 2 and servers[0].memory_gb == 4
    assert [m.name for m in members[servers[0].name]] == ["a@1", "b@1"]
    assert [m.name for m in members[servers[1].name]] == ["c@1"]  # dedicated: a server of its own
    assert {d.name for d in out if not is_server(d)} == {"chat@1"}
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
    first = replace(
        triton("a"),
        settings={**triton("a").settings, "framework": "onnx", "health": {"interval_s": 9}},
    )
    (other_first,) = serve_together([first, triton("c")], HOSTS)
    assert spec_hash(other_first, "h", (1,), 20000) == spec_hash(
        two, "h", (1,), 20000
    )  # members' own settings stay out
    (moved,) = serve_together([triton("a", repo="/other"), triton("c")], HOSTS)
    assert spec_hash(moved, "h", (1,), 20000) != spec_hash(
        two, "h", (1,), 20000
    )  # a new repository: a new container


def _running(ready: tuple[str, ...], members: dict[str, str]) -> ObservedContainer:
    return ObservedContainer(
        "h",
        "id",
        "s",
        "triton-x@1",
        0,
        (1,),
        "hash",
        "running",
        "img",
        triton_ready=ready,
        triton_members=members,
    )


def test_model_changes_load_the_missing_reload_the_changed_and_unload_the_rest() -> None:
    (server,) = serve_together([triton("a"), triton("b")], HOSTS)
    a, b = members_of(server)
    stale = Member("b@0", ("b",), "/repo").identity()
    changes = model_changes(server, _running(("b", "old"), {"b": stale, "old": "old@1/x"}))
    assert [(c.kind, c.model) for c in changes] == [
        ("load", "a"),
        ("reload", "b"),
        ("unload", "old"),
    ]
    assert model_changes(server, _running(("a", "b"), {"a": a.identity(), "b": b.identity()})) == []
    assert model_changes(server, _running(None, {})) == []  # readiness unknown: nothing to decide  # type: ignore[arg-type]


def test_per_model_settings_become_config_overrides_applied_after_the_server_starts() -> None:
    (server,) = serve_together(
        [triton("a", instance_count=2, version_policy={"latest": 2}), triton("b")], HOSTS
    )
    a, b = members_of(server)
    assert (
        a.config == {"instance_group_count": 2, "version_policy": {"latest": {"num_versions": 2}}}
        and b.config == {}
    )
    assert [(c.kind, c.model) for c in configure_at_start(server)] == [("reload", "a")]
    assert (
        member_labels(server) == f"b={b.identity()}"
    )  # a starts from the repository's configuration
    # Running with a's configuration unknown: reloaded with it; with it recorded: nothing to do.
    assert [
        (c.kind, c.model) for c in model_changes(server, _running(("a", "b"), {"b": b.identity()}))
    ] == [("reload", "a")]
    assert model_changes(server, _running(("a", "b"), {"a": a.identity(), "b": b.identity()})) == []
    (changed,) = serve_together([triton("a", instance_count=3), triton("b")], HOSTS)
    assert spec_hash(changed, "h", (1,), 20000) == spec_hash(server, "h", (1,), 20000)  # no restart
    assert members_of(changed)[0].identity() != a.identity()  # but a reload


def test_merged_config_sets_the_instance_count_on_every_group_and_replaces_the_rest() -> None:
    config = {
        "name": "a",
        "instance_group": [{"name": "a_0", "kind": "KIND_CPU", "count": 1}],
        "version_policy": {"all": {}},
    }
    merged = merged_config(
        config, {"instance_group_count": 3, "version_policy": {"latest": {"num_versions": 1}}}
    )
    assert merged["instance_group"] == [{"name": "a_0", "kind": "KIND_CPU", "count": 3}]
    assert (
        merged["version_policy"] == {"latest": {"num_versions": 1}}
        and config["instance_group"][0]["count"] == 1
    )


def test_a_server_never_outgrows_the_largest_gpu_nor_one_gpus_compute() -> None:
    # Three 30 GB models on 80 GB GPUs: two fit one server, the third starts another.
    out, members = grouped(
        [triton("a", memory=30), triton("b", memory=30), triton("c", memory=30)], HOSTS
    )
    sizes = sorted(d.memory_gb for d in out if is_server(d))
    assert sizes == [30, 60]
    assert sorted(len(m) for m in members.values()) == [1, 2]
    # Declared compute counts too: 0.6 + 0.6 is more than one GPU.
    out, _ = grouped([triton("a", util=0.6), triton("b", util=0.6)], HOSTS)
    assert len([d for d in out if is_server(d)]) == 2


def test_a_group_too_big_for_one_gpu_becomes_servers_that_each_fit() -> None:
    # Ten 21 GB models (210 GB): three to a server on 80 GB GPUs, and the rest in a fourth.
    out, members = grouped([triton(f"m{i}", memory=21) for i in range(10)], HOSTS)
    assert sorted(len(m) for m in members.values()) == [1, 3, 3, 3]
    assert all(d.memory_gb <= 80 for d in out)
    # The SLA rule still splits within the memory: a tight SLA keeps its model alone.
    tight = triton("t", memory=5, sla=10, latency=9.5)
    out, members = grouped([tight, triton("u", memory=5, util=0.2)], HOSTS)
    assert sorted(len(m) for m in members.values()) == [1, 1]
