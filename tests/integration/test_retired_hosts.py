"""A host taken out of the inventory: the state remembers it, so its containers are still
found, moved or removed, and `down` clears it too."""

from __future__ import annotations

import json
from typing import Any


def test_a_replica_on_a_host_removed_from_the_inventory_moves_and_the_host_is_cleared(
    make_fleet: Any, testbed: Any
) -> None:
    fleet = make_fleet({"host-a": testbed.host_a, "host-b": testbed.host_b})
    fleet.nim("chat", testbed.images.nim_standin, memory=10, hosts={"name": "host-b"})
    assert fleet.apply().returncode == 0
    assert list(fleet.ids("b")) == [fleet.container("chat@1")]

    del fleet.hosts["host-b"]
    fleet.models[0].pop("hosts")
    plan = json.loads(fleet.cli("plan", "--output", "json", "--state", str(fleet.state)).stdout)
    moves = [
        (a["kind"], a["host"], a["container_host"])
        for a in plan["actions"]
        if a["deployment"] == "chat@1"
    ]
    assert moves == [("recreate", "host-a", "host-b")], plan["actions"]
    assert any(d["host"] == "host-b" and d["kind"] == "remove" for d in plan["front_doors"]), plan[
        "front_doors"
    ]

    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    assert fleet.ids("b") == {} and fleet.ids("b", front_door=True) == {}
    assert list(fleet.ids("a")) == [fleet.container("chat@1")]
    again = fleet.apply()
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout


def test_down_removes_the_containers_of_a_host_no_longer_listed(
    make_fleet: Any, testbed: Any
) -> None:
    fleet = make_fleet({"host-a": testbed.host_a, "host-b": testbed.host_b})
    fleet.nim("here", testbed.images.nim_standin, memory=10, hosts={"name": "host-a"})
    fleet.nim("there", testbed.images.nim_standin, memory=10, hosts={"name": "host-b"})
    assert fleet.apply().returncode == 0
    del fleet.hosts["host-b"]
    fleet.models.pop()
    down = fleet.cli("down", "--yes", "--state", str(fleet.state))
    assert down.returncode == 0, down.stdout + down.stderr
    assert fleet.ids("a") == {} and fleet.ids("b") == {}
    assert fleet.ids("b", front_door=True) == {}
