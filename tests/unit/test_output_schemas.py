"""Every command's --output json is a document of a published schema (docs/schemas/).

The schemas are generated from the result types; these tests fail when a committed
schema is not current, and validate the JSON the offline commands print against them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from test_cli import SEED, _seed_state, fleetctl

from fleetctl.results import FORMAT_VERSION
from fleetctl.results.schemas import documents, schema_text

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "docs" / "schemas"


def validate(stem: str, text: str) -> dict[str, Any]:
    """The document, after checking it against docs/schemas/STEM.schema.json."""
    schema = json.loads((SCHEMAS / f"{stem}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    data = json.loads(text)
    errors = sorted(Draft202012Validator(schema).iter_errors(data), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
    assert data["format_version"] == FORMAT_VERSION
    return data


@pytest.mark.parametrize("stem", sorted(documents()))
def test_published_schema_is_current(stem: str) -> None:
    path = SCHEMAS / f"{stem}.schema.json"
    assert path.exists(), f"{path} missing: run `fleetctl schema --results docs/schemas`"
    assert path.read_text() == schema_text(stem), (
        f"{path} is stale: run `fleetctl schema --results docs/schemas`"
    )


def test_schema_requires_every_field_and_knows_the_version() -> None:
    plan = json.loads((SCHEMAS / "plan.schema.json").read_text())
    assert "format_version" in plan["required"] and "actions" in plan["required"]
    # The text views' fields are not part of the document.
    assert "show_all" not in plan["properties"] and "plan" not in plan["properties"]


def test_schema_rejects_a_wrong_document() -> None:
    with pytest.raises(AssertionError):
        validate("validate", json.dumps({"format_version": 1, "valid": "yes", "file": "x"}))


def test_plan_offline() -> None:
    r = fleetctl("plan", "--offline", "-f", str(SEED), "--output", "json")
    assert r.returncode == 0, r.stderr
    data = validate("plan", r.stdout)
    assert data["summary"]["gpus_used"] == 2 and data["explain"] is None


def test_plan_explain() -> None:
    r = fleetctl(
        "plan", "--offline", "-f", str(SEED), "--explain", "safety-guard", "--output", "json"
    )
    assert r.returncode == 0, r.stderr
    data = validate("plan", r.stdout)
    assert data["explain"] and data["explain"][0]["host"] == "gpu-host-1"


def test_validate_valid_and_invalid(tmp_path: Path) -> None:
    r = fleetctl("validate", "-f", str(SEED), "--output", "json")
    assert r.returncode == 0, r.stderr
    assert validate("validate", r.stdout)["valid"] is True
    bad = tmp_path / "bad.yaml"
    bad.write_text(SEED.read_text().replace("hosts:", "hostz:", 1))
    r = fleetctl("validate", "-f", str(bad), "--output", "json")
    assert r.returncode == 3
    data = validate("validate", r.stdout)
    assert data["valid"] is False and data["problems"]


def test_report() -> None:
    r = fleetctl("report", "-f", str(SEED), "--output", "json")
    assert r.returncode == 0, r.stderr
    assert validate("report", r.stdout)["gpus"]["packed"] == 2


@pytest.mark.parametrize("model", [None, "chat-llm"])
def test_advise(model: str | None) -> None:
    r = fleetctl("advise", *([model] if model else []), "-f", str(SEED), "--output", "json")
    assert r.returncode == 0, r.stderr
    data = validate("advise", r.stdout)
    assert (data["model"] is None) == (model is None)


def test_history_rollouts_and_revisions(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _seed_state(db)
    r = fleetctl("history", "-f", str(SEED), "--state", str(db), "--output", "json")
    assert r.returncode == 0, r.stderr
    assert validate("history", r.stdout)["rollouts"][0]["outcome"] == "failed"
    r = fleetctl("history", "chat-llm@v3", "-f", str(SEED), "--state", str(db), "--output", "json")
    assert r.returncode == 0, r.stderr
    data = validate("history", r.stdout)
    failed = [rev for rev in data["revisions"] if rev["failed_step"]]
    assert failed[0]["failed_step"]["action"] == "recreate"
    assert data["hold"]["deployment"] == "chat-llm@v3"


def test_pins(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _seed_state(db)
    r = fleetctl("pins", "-f", str(SEED), "--state", str(db), "--output", "json")
    assert r.returncode == 0, r.stderr
    assert [p["kind"] for p in validate("pins", r.stdout)["pins"]] == ["pin", "hold"]


def test_release(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _seed_state(db)
    r = fleetctl("release", "chat-llm", "-f", str(SEED), "--state", str(db), "--output", "json")
    assert r.returncode == 0, r.stderr
    assert validate("release", r.stdout)["released"]["model"] == "chat-llm"


def test_schema_command_writes_the_published_files(tmp_path: Path) -> None:
    r = fleetctl("schema", "--results", str(tmp_path / "s"), "--output", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["format_version"] == FORMAT_VERSION
    assert sorted(Path(f).name for f in data["files"]) == sorted(
        p.name for p in SCHEMAS.glob("*.schema.json")
    )
