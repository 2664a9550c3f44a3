"""What the inventory knows of runtimes: which key holds a runtime's settings, and the
pydantic model its runtime registered to validate them.

Core keeps no runtime's fields. A model's `nim:`, `triton:` and `options:` blocks are
validated by the loader with the model of the runtime that owns the key (`nim:` and
`triton:` belong to the built-in runtimes; `options:` to the model's own runtime when
it is a plugin). The catalog is made by the runtimes layer (fleetctl.runtimes.registry)
and handed to the loader.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

# The inventory's keys for runtime settings, on a model (all three) and a pin (not options).
RUNTIME_KEYS = ("nim", "triton", "options")
OPTIONS = "options"


@dataclass(frozen=True)
class RuntimeBlock:
    key: str  # one of RUNTIME_KEYS
    model: type[BaseModel] | None = None  # None: the block is a free-form mapping


@dataclass(frozen=True)
class RuntimeCatalog:
    """The runtimes installed: name -> its block; iterating gives the names."""

    blocks: Mapping[str, RuntimeBlock] = field(default_factory=dict)
    # One line per plugin that could not be loaded (it may be what provides a runtime
    # the inventory names).
    broken: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.blocks))

    def owner_of(self, key: str) -> RuntimeBlock | None:
        """The block of the runtime that owns a key other than options."""
        return next((b for b in self.blocks.values() if b.key == key and key != OPTIONS), None)


def inventory_schema(catalog: RuntimeCatalog) -> dict[str, Any]:
    """The inventory's JSON Schema, with the `nim:`/`triton:` blocks (on models and pins)
    described by the models of the runtimes that own them; `options:` stays a mapping."""
    from fleetctl.core.inventory import Inventory

    schema = Inventory.model_json_schema()
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    for key in RUNTIME_KEYS:
        block = catalog.owner_of(key)
        if block is None or block.model is None:
            continue
        own = block.model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(own.pop("$defs", {}))
        defs[block.model.__name__] = own
        for d in defs.values():
            prop = d.get("properties", {}).get(key) if isinstance(d, dict) else None
            if isinstance(prop, dict) and "$ref" not in str(prop.get("anyOf", "")):
                prop["anyOf"] = [{"$ref": f"#/$defs/{block.model.__name__}"}, {"type": "null"}]
    for d in defs.values():
        prop = d.get("properties", {}).get(OPTIONS) if isinstance(d, dict) else None
        if isinstance(prop, dict):
            prop.update({"type": "object", "additionalProperties": True})
    return schema
