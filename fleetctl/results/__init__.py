"""What commands return: typed, frozen result values, and their one JSON encoding.

Every command's JSON document is a value of a type in this package, encoded by
`to_jsonable` (a field's name is its JSON key; enums are their values; tuples are
lists). The JSON Schemas in docs/schemas/ are generated from the same types
(`result_schema`, `fleetctl schema --results DIR`), so the documents and their schemas
cannot drift apart. A field marked `hidden()` travels with the value for the text views
(the plan, the report itself) and is in neither the JSON nor the schema.

Nothing here renders text or imports the CLI; building a result is pure.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

# Bumped when a field of a published document is renamed, removed or changes meaning;
# adding a field keeps the version.
FORMAT_VERSION = 1

_HIDDEN = "fleetctl.hidden"
_JSON_NAME = "fleetctl.json_name"


def _skip_schema() -> Any:
    # pydantic only where a schema is generated: encoding a result never imports it.
    try:
        from pydantic.json_schema import SkipJsonSchema
    except ImportError:  # pragma: no cover - pydantic is a dependency
        return object()
    return SkipJsonSchema()


def hidden(default: Any = None) -> Any:
    """A field that the text views read and the JSON leaves out."""
    return dataclasses.field(default=default, repr=False, compare=False, metadata={_HIDDEN: True})


def json_name(name: str, **kw: Any) -> Any:
    """A field whose JSON key is not a Python name (`from`)."""
    return dataclasses.field(metadata={_JSON_NAME: name}, **kw)


# The type of a hidden field: anything, and absent from the schema.
Hidden = Annotated[Any, _skip_schema()]

_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}


def _fields_of(cls: type) -> tuple[tuple[str, str], ...]:
    """(attribute, JSON key) of a dataclass's encoded fields, computed once per class."""
    found = _FIELDS.get(cls)
    if found is None:
        found = tuple(
            (f.name, f.metadata.get(_JSON_NAME, f.name))
            for f in dataclasses.fields(cls)
            if not f.metadata.get(_HIDDEN)
        )
        _FIELDS[cls] = found
    return found


def to_jsonable(value: Any) -> Any:
    """The JSON form of a result value (no deep copy: a 10,000-replica plan stays cheap)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value.value if isinstance(value, enum.Enum) else value
    if isinstance(value, float):
        return None if value != value or value in (float("inf"), float("-inf")) else value
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {key: to_jsonable(getattr(value, name)) for name, key in _fields_of(type(value))}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def result_schema(tp: Any, title: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the documents `to_jsonable` makes of `tp`.

    Every property is required: the encoder always writes every field, null included.
    """
    from pydantic import TypeAdapter

    schema = TypeAdapter(tp).json_schema(mode="serialization")
    _require_all(schema)
    for sub in schema.get("$defs", {}).values():
        _require_all(sub)
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    schema["title"] = title
    return schema


def _require_all(node: dict[str, Any]) -> None:
    if isinstance(node.get("properties"), dict):
        node["required"] = sorted(node["properties"])
        for prop in node["properties"].values():
            prop.pop("default", None)
