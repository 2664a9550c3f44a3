"""Check a command's --output json against its published schema (docs/schemas/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def checked(stem: str, text: str) -> dict[str, Any]:
    """The JSON document `text`, after validating it against STEM.schema.json."""
    schema = json.loads((SCHEMAS / f"{stem}.schema.json").read_text())
    data = json.loads(text)
    errors = sorted(Draft202012Validator(schema).iter_errors(data), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
    return data
