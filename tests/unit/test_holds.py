"""Holds, the pure part: the deployments a held model is planned with, the notes, and
which revision a rollback restores. No state file, no Docker, no HTTP."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from fleetctl.core.fleet import Deployment
from fleetctl.core.holds import (
    Hold,
    apply_holds,
    current_deployment,
    deployment_from_record,
    hold_model,
    release_note,
    rollback_note,
)
from fleetctl.errors import NotFoundError, UnstableRevisionError
from fleetctl.ops.rollback import choose_revision, parse_target
from fleetctl.state.records import RevisionRecord

AT = datetime(2026, 12, 1, 10, 2, 3, 456789, tzinfo=UTC)


def dep(
    model: str, version: str, *, customers: tuple[str, ...] = (), replicas: int = 1, image: str = ""
) -> Deployment:
    return Deployment(
        model=model,
        version=version,
        runtime="nim",
        image=image or f"img/{model}:{version}",
        memory_gb=10,
        replicas=replicas,
        customers=customers,
        settings={"env": {"V": version}},
    )


def record(d: Deployment) -> dict[str, Any]:
    """What a revision stores (fleetctl.core.revisions.deployment_record)."""
    rec = asdict(d)
    rec["selector"] = dict(d.selector)
    rec["customers"] = list(d.customers)
    return rec


def fleet() -> list[Deployment]:
    return [
        dep("chat-llm", "v4", replicas=2),
        dep("chat-llm", "v3", customers=("acme-corp",)),
        dep("chat-llm", "v2", customers=("globex",)),
        dep("embeddings", "1"),
    ]


def hold(
    version: str = "v3", revision: int = 2, inventory_version: str = "v4", **spec: Any
) -> Hold:
    restored = replace(dep("chat-llm", version, customers=("acme-corp",)), **spec)
    return Hold(
        "chat-llm",
        version,
        revision,
        record(restored),
        inventory_version,
        AT,
        7,
        f"rollback chat-llm@{version}",
    )


def names(deps: Any) -> list[str]:
    return [d.name for d in deps]


# -- hold_model ----------------------------------------------------------------------


def test_the_restored_version_replaces_the_current_one_in_place_for_everyone() -> None:
    restored = dep("chat-llm", "v3", customers=("acme-corp",), image="img/chat-llm:v3-rev2")
    out = hold_model(fleet(), "chat-llm", restored)
    assert names(out) == ["chat-llm@v3", "chat-llm@v2", "embeddings@1"]  # v4 retired, v3's pin gone
    v3 = out[0]
    assert v3.customers == () and not v3.pinned  # current now: no longer a pin
    assert v3.replicas == 2  # carries everyone's traffic: the current version's count
    assert v3.image == "img/chat-llm:v3-rev2"  # the recorded spec, not the inventory's
    assert out[1] == fleet()[2] and out[2] == fleet()[3]  # other pins and models untouched


def test_a_version_the_inventory_no_longer_lists_can_be_restored() -> None:
    out = hold_model(fleet(), "chat-llm", dep("chat-llm", "v1"))
    assert names(out) == ["chat-llm@v1", "chat-llm@v3", "chat-llm@v2", "embeddings@1"]


def test_an_earlier_revision_of_the_current_version_replaces_it() -> None:
    out = hold_model(fleet(), "chat-llm", dep("chat-llm", "v4", image="img/old"))
    assert names(out) == ["chat-llm@v4", "chat-llm@v3", "chat-llm@v2", "embeddings@1"]
    assert out[0].image == "img/old" and out[0].replicas == 2


def test_hold_model_refuses_a_model_without_a_current_version_or_a_foreign_deployment() -> None:
    with pytest.raises(ValueError, match="no current version"):
        hold_model(fleet(), "reranker", dep("reranker", "1"))
    with pytest.raises(ValueError, match="not a version of chat-llm"):
        hold_model(fleet(), "chat-llm", dep("embeddings", "2"))


def test_deployment_from_record_is_the_inverse_of_the_record() -> None:
    d = replace(dep("chat-llm", "v3", customers=("acme-corp", "initech")), selector={"gpu": "h100"})
    assert deployment_from_record(record(d)) == d


# -- apply_holds ---------------------------------------------------------------------


def test_a_hold_in_force_builds_the_model_as_the_rollback_did_and_says_so() -> None:
    h = hold()
    out = apply_holds(fleet(), [h])
    assert list(out.deployments) == hold_model(fleet(), "chat-llm", deployment_from_record(h.spec))
    assert out.held == ("chat-llm",) and out.lifted == ()
    assert out.notes == (
        "chat-llm held at v3 (revision 2) by rollback at 2026-12-01T10:02:03Z; the inventory asks v4; "
        "`fleetctl release chat-llm` follows the inventory again",
    )


def test_a_hold_is_lifted_once_the_inventory_asks_another_version() -> None:
    inventory = [replace(fleet()[0], version="v5"), *fleet()[1:]]
    out = apply_holds(inventory, [hold()])
    assert list(out.deployments) == inventory  # the inventory speaks again
    assert out.held == () and out.lifted == ("chat-llm",)
    assert out.notes == ("hold on chat-llm lifted: the inventory now asks v5 (the hold was at v3)",)


def test_a_hold_on_a_model_gone_from_the_inventory_is_lifted() -> None:
    out = apply_holds(fleet()[3:], [hold()])
    assert names(out.deployments) == ["embeddings@1"]
    assert out.lifted == ("chat-llm",)
    assert out.notes == ("hold on chat-llm lifted: the inventory no longer has chat-llm",)


def test_no_holds_change_nothing_and_holds_apply_per_model() -> None:
    assert apply_holds(fleet(), []).deployments == tuple(fleet())
    emb = Hold(
        "embeddings", "0", 1, record(dep("embeddings", "0")), "1", AT, None, "rollback embeddings@0"
    )
    out = apply_holds(fleet(), [emb, hold()])
    assert names(out.deployments) == ["chat-llm@v3", "chat-llm@v2", "embeddings@0"]
    assert out.held == ("chat-llm", "embeddings")
    assert current_deployment(out.deployments, "embeddings") == dep("embeddings", "0")


# -- notes ---------------------------------------------------------------------------


def test_rollback_and_release_notes() -> None:
    assert rollback_note("chat-llm", "chat-llm@v3", 2, "chat-llm@v4") == (
        "chat-llm: every customer moves to chat-llm@v3 (revision 2); chat-llm@v4 is retired once v3 serves"
    )
    assert (
        rollback_note("chat-llm", "chat-llm@v4", 1, None)
        == "chat-llm: every customer gets chat-llm@v4 at revision 1"
    )
    assert release_note(hold(), fleet()) == (
        "the next apply makes chat-llm@v4 the version every customer gets again; chat-llm@v3 stays for acme-corp"
    )
    unpinned = [d for d in fleet() if d.name != "chat-llm@v3"]
    assert release_note(hold(), unpinned).endswith("chat-llm@v3 is removed")
    assert "already lifted" in release_note(hold(inventory_version="v2"), fleet())
    assert "from revision 1 to the inventory's spec" in release_note(hold("v4", 1), fleet())
    assert "no longer has chat-llm" in release_note(hold(), fleet()[3:])


# -- which revision a rollback restores -----------------------------------------------


def rev(number: int, outcome: str) -> RevisionRecord:
    return RevisionRecord(
        number,
        "chat-llm@v3",
        "chat-llm",
        "v3",
        number,
        f"h{number}",
        {},
        "img",
        None,
        [],
        outcome,
        1,
        AT,
    )


REVS = [
    rev(5, "failed"),
    rev(4, "applied"),
    rev(3, "rolled_back"),
    rev(2, "applied"),
    rev(1, "applied"),
]  # newest first


def test_the_latest_stable_revision_or_the_one_before_it() -> None:
    assert choose_revision(REVS, "chat-llm@v3", to=None, force=False, previous=False).number == 4
    assert choose_revision(REVS, "chat-llm@v3", to=None, force=False, previous=True).number == 2


def test_a_named_revision_must_exist_and_be_stable_unless_forced() -> None:
    assert choose_revision(REVS, "chat-llm@v3", to=1, force=False, previous=False).number == 1
    with pytest.raises(
        UnstableRevisionError, match="revision 3 of chat-llm@v3 is rolled_back.*--force"
    ):
        choose_revision(REVS, "chat-llm@v3", to=3, force=False, previous=False)
    assert choose_revision(REVS, "chat-llm@v3", to=5, force=True, previous=False).number == 5
    with pytest.raises(NotFoundError, match=r"no revision 9 \(known: 5 \(failed\), 4 \(applied\)"):
        choose_revision(REVS, "chat-llm@v3", to=9, force=False, previous=False)


def test_nothing_stable_to_restore() -> None:
    with pytest.raises(NotFoundError, match="no revision of chat-llm@v3"):
        choose_revision([], "chat-llm@v3", to=None, force=False, previous=False)
    with pytest.raises(NotFoundError, match="no stable revision before its current one"):
        choose_revision([rev(1, "applied")], "chat-llm@v3", to=None, force=False, previous=True)
    with pytest.raises(NotFoundError, match="no stable revision .*--force"):
        choose_revision([rev(1, "failed")], "chat-llm@v3", to=None, force=False, previous=False)
    assert (
        choose_revision(
            [rev(1, "failed")], "chat-llm@v3", to=None, force=True, previous=False
        ).number
        == 1
    )


def test_rollback_targets() -> None:
    assert parse_target("chat-llm@v3") == ("chat-llm", "v3")
    assert parse_target("chat-llm") == ("chat-llm", None)
    for bad in ("@v3", "chat-llm@", ""):
        with pytest.raises(Exception, match="MODEL or MODEL@VERSION"):
            parse_target(bad)
