"""Co-located Triton models share one Triton server, and change in it without a restart
(fleetctl.core.triton_servers): the real Triton 2.51 server of the test bed, behind a
real front door."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx

from fleetctl.errors import ExitCode

TEXT = {"inputs": [{"name": "TEXT", "shape": [1], "datatype": "BYTES", "data": ["hello"]}]}


def _shared(fleet: Any) -> Any:
    fleet.extra = {"triton_servers": "shared"}
    return fleet


def _servers(fleet: Any) -> dict[str, str]:
    return {n: i for n, i in fleet.ids().items() if "-triton-" in n}


def _started(testbed: Any, name: str) -> tuple[str, str]:
    info = testbed.client().api.inspect_container(name)
    return info["Id"], info["State"]["StartedAt"]


def _ready(fleet: Any, model: str) -> bool:
    r = httpx.get(f"{fleet.front_door_url()}/v2/models/{model}/ready", timeout=5)
    return r.status_code == 200


def _changes(r: Any) -> list[tuple[str, str]]:
    plan = json.loads(r.stdout)
    return sorted((a["kind"], a.get("model", "")) for a in plan["actions"] if a["kind"] != "keep")


def test_three_models_share_one_server_and_leave_and_rejoin_it_without_a_restart(
    fleet: Any, testbed: Any, steady_load: Any
) -> None:
    _shared(fleet)
    for name in ("embeddings", "reranker", "safety-guard"):
        fleet.triton(name)
    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    (server,) = _servers(fleet)
    assert set(fleet.ids()) == {server}, fleet.ids()
    before = _started(testbed, server)
    assert all(_ready(fleet, m) for m in ("embeddings", "reranker", "safety-guard"))
    status = fleet.status()
    (row,) = [d for d in status["deployments"] if d["runtime"] == "triton"]
    assert row["running"] == 1

    door = fleet.front_door_url()
    reranker = fleet.models.pop(1)
    with (
        steady_load(f"{door}/v2/models/embeddings/infer", TEXT) as emb,
        steady_load(f"{door}/v2/models/safety-guard/infer", TEXT) as guard,
    ):
        fleet.write()
        assert _changes(fleet.cli("plan", "--output", "json")) == [("unload", "reranker")]
        r = fleet.apply()
        assert r.returncode == 0, r.stdout + r.stderr
        assert not _ready(fleet, "reranker")
        assert _started(testbed, server) == before
        fleet.models.insert(1, reranker)
        fleet.write()
        assert _changes(fleet.cli("plan", "--output", "json")) == [("load", "reranker")]
        r = fleet.apply()
        assert r.returncode == 0, r.stdout + r.stderr
        assert _ready(fleet, "reranker")
    assert _started(testbed, server) == before
    assert set(fleet.ids()) == {server}
    assert emb.ok > 10 and guard.ok > 10, (emb.ok, guard.ok)
    assert emb.failures == [] and guard.failures == [], (emb.failures[:3], guard.failures[:3])
    assert _changes(fleet.cli("plan", "--output", "json")) == []


def test_a_failing_reload_leaves_the_old_version_serving_and_exits_7(
    fleet: Any, testbed: Any, tmp_path: Path
) -> None:
    _shared(fleet)
    repo = tmp_path / "models"
    shutil.copytree(testbed.model_repository, repo)
    for name in ("embeddings", "reranker"):
        fleet.triton(name)["triton"]["model_repository"] = str(repo)
    assert fleet.apply().returncode == 0
    (server,) = _servers(fleet)
    before = _started(testbed, server)
    # Version 2 of the reranker ships files that cannot load.
    model_py = repo / "reranker" / "1" / "model.py"
    model_py.write_text(
        model_py.read_text().replace(
            "class TritonPythonModel:\n",
            "class TritonPythonModel:\n    def initialize(self, args):\n        raise RuntimeError('broken weights')\n\n",
            1,
        )
    )
    fleet.models[1]["version"] = "2"
    fleet.write()
    assert _changes(fleet.cli("plan", "--output", "json")) == [("reload", "reranker")]
    r = fleet.apply()
    assert r.returncode == ExitCode.ROLLOUT_FAILED, r.stdout + r.stderr
    assert (
        "Triton did not reload reranker" in r.stdout + r.stderr
        and "broken weights" in r.stdout + r.stderr
    )
    assert _ready(fleet, "reranker") and _ready(fleet, "embeddings")
    query = {
        "inputs": [
            {"name": "QUERY", "shape": [1], "datatype": "BYTES", "data": ["red fox"]},
            {"name": "PASSAGES", "shape": [1], "datatype": "BYTES", "data": ["a red fox"]},
        ]
    }
    served = httpx.post(
        f"{fleet.front_door_url()}/v2/models/reranker/infer", json=query, timeout=10
    )
    assert served.status_code == 200, served.text  # the old version, still loaded
    assert _started(testbed, server) == before


def test_a_dedicated_model_gets_a_server_of_its_own(fleet: Any, testbed: Any) -> None:
    _shared(fleet)
    fleet.triton("embeddings")["triton"]["dedicated"] = True
    fleet.triton("reranker")
    fleet.triton("safety-guard")
    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(_servers(fleet)) == 2, fleet.ids()
    servers = [d for d in fleet.status()["deployments"] if d.get("members")]
    assert sorted([m["deployment"] for m in d["members"]] for d in servers) == [
        ["embeddings@1"],
        ["reranker@1", "safety-guard@1"],
    ]
    assert all(_ready(fleet, m) for m in ("embeddings", "reranker", "safety-guard"))


def test_per_model_settings_reach_triton_through_the_config_override_without_a_restart(
    fleet: Any, testbed: Any
) -> None:
    import tritonclient.http as tc

    _shared(fleet)
    fleet.triton("embeddings")["triton"]["instance_count"] = 2
    fleet.triton("reranker")
    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    (server,) = _servers(fleet)
    before = _started(testbed, server)
    client = tc.InferenceServerClient(
        fleet.deployment("embeddings@1")["replicas"][0]["endpoint"].removeprefix("http://")
    )
    assert [g["count"] for g in client.get_model_config("embeddings")["instance_group"]] == [2]
    assert _changes(fleet.cli("plan", "--output", "json")) == []
    fleet.models[0]["triton"]["instance_count"] = 3
    fleet.models[0]["triton"]["version_policy"] = {"latest": 1}
    fleet.write()
    assert _changes(fleet.cli("plan", "--output", "json")) == [("reload", "embeddings")]
    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    config = client.get_model_config("embeddings")
    assert [g["count"] for g in config["instance_group"]] == [3]
    assert config["version_policy"] == {"latest": {"num_versions": 1}}
    assert _started(testbed, server) == before
    assert _changes(fleet.cli("plan", "--output", "json")) == []


def test_health_checks_every_model_of_a_shared_server(fleet: Any, testbed: Any) -> None:
    import tritonclient.http as tc

    _shared(fleet)
    for name in ("embeddings", "reranker"):
        fleet.triton(name)
    assert fleet.apply().returncode == 0
    healthy = fleet.cli("health", "--output", "json", "--state", str(fleet.state))
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    (server,) = _servers(fleet)
    endpoint = fleet.deployment("reranker@1")["replicas"][0]["endpoint"]
    tc.InferenceServerClient(endpoint.removeprefix("http://")).unload_model("reranker")
    testbed.wait_until(lambda: not _ready(fleet, "reranker"), 30, what="reranker unloaded")
    sick = fleet.cli("health", "--output", "json", "--state", str(fleet.state), "--failures", "1")
    assert sick.returncode in (ExitCode.UNHEALTHY, ExitCode.DEGRADED), sick.stdout + sick.stderr
    assert "reranker" in sick.stdout
    healed = fleet.cli(
        "health", "--heal", "--failures", "1", "--output", "json", "--state", str(fleet.state)
    )
    assert _ready(fleet, "reranker"), healed.stdout + healed.stderr
    assert set(_servers(fleet)) == {server}
