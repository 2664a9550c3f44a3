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
from collections.abc import Callable, Mapping
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

_PLAIN = frozenset({str, int, bool, type(None)})
_ENCODERS: dict[type, Callable[[Any], Any]] = {}


def _encoder(cls: type) -> Callable[[Any], Any]:
    """How to encode values of `cls`, worked out once per type (a 10,000-replica plan has
    tens of thousands of values, of a few dozen types)."""
    found = _ENCODERS.get(cls)
    if found is not None:
        return found
    enc: Callable[[Any], Any]
    if issubclass(cls, enum.Enum):
        enc = _enum
    elif dataclasses.is_dataclass(cls):
        names = tuple(
            (f.name, f.metadata.get(_JSON_NAME, f.name))
            for f in dataclasses.fields(cls)
            if not f.metadata.get(_HIDDEN)
        )

        def enc(value: Any) -> dict[str, Any]:
            out = {}
            for name, key in names:
                x = getattr(value, name)
                out[key] = x if type(x) in _PLAIN else to_jsonable(x)
            return out

    elif issubclass(cls, Mapping):
        enc = _mapping
    elif issubclass(cls, (list, tuple, set, frozenset)):
        enc = _sequence
    elif issubclass(cls, float):
        enc = _float
    elif issubclass(cls, (str, int)):  # subclasses: a str-valued NewType, a Problem line
        enc = _plain
    elif issubclass(cls, datetime):
        enc = _datetime
    else:
        enc = str
    _ENCODERS[cls] = enc
    return enc


def _enum(value: enum.Enum) -> Any:
    return value.value


def _mapping(value: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(k): v if type(v) in _PLAIN else to_jsonable(v) for k, v in value.items()}


def _sequence(value: Any) -> list[Any]:
    return [v if type(v) in _PLAIN else to_jsonable(v) for v in value]


def _float(value: float) -> float | None:
    # JSON has no infinity or NaN: an unbounded figure is null.
    return None if value != value or value in (float("inf"), float("-inf")) else float(value)


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, str) else int(value)


def _datetime(value: datetime) -> str:
    return value.isoformat()


def to_jsonable(value: Any) -> Any:
    """The JSON form of a result value (no deep copy, unlike dataclasses.asdict)."""
    if type(value) in _PLAIN:
        return value
    return _encoder(type(value))(value)


def result_schema(tp: Any, title: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the documents `to_jsonable` makes of `tp`.

    Every property is required: the encoder always writes every field, null included.
    """
    from pydantic import TypeAdapter

    schema = TypeAdapter(tp).json_schema(mode="serialization")
    _rename_json_names(schema, tp)
    _require_all(schema)
    for sub in schema.get("$defs", {}).values():
        _require_all(sub)
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    schema["title"] = title
    return schema


def _rename_json_names(schema: dict[str, Any], tp: Any) -> None:
    """Give the schema the keys `json_name` fields are written under (`from`, not
    `source`): in `tp`'s own schema and in the definitions of the dataclasses it holds."""
    import typing

    seen: set[type] = set()

    def walk(cls: Any) -> None:
        if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls not in seen:
            seen.add(cls)
            node = schema if cls is tp else schema.get("$defs", {}).get(cls.__name__, {})
            props = node.get("properties", {})
            for f in dataclasses.fields(cls):
                key = f.metadata.get(_JSON_NAME)
                if key and f.name in props:
                    props[key] = props.pop(f.name)
            for hint in typing.get_type_hints(cls).values():
                walk(hint)
        for arg in typing.get_args(cls):
            walk(arg)

    walk(tp)


def _require_all(node: dict[str, Any]) -> None:
    if isinstance(node.get("properties"), dict):
        node["required"] = sorted(node["properties"])
        for prop in node["properties"].values():
            prop.pop("default", None)
