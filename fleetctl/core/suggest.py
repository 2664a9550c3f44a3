"""The key a person meant, for an unknown key in the inventory ("did you mean gpu_memory_gb?").

Pure: walks the pydantic models' field annotations along a document path to find the
keys allowed where the unknown one stands.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel


def _members(annotation: Any) -> list[Any]:
    """The alternatives of a union (`X | None`, `Literal['auto'] | GpuDecl`), else itself."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    return [annotation]


def _step(annotation: Any, part: str | int) -> list[Any]:
    """What sits under `part` of a value of type `annotation`."""
    out: list[Any] = []
    for member in _members(annotation):
        origin = typing.get_origin(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            field = member.model_fields.get(str(part)) if isinstance(part, str) else None
            if field is not None:
                out.append(field.annotation)
        elif origin in (list, tuple) and isinstance(part, int):
            out.extend(typing.get_args(member)[:1])
        elif origin is dict and isinstance(part, str):
            out.extend(typing.get_args(member)[1:2])
    return out


def allowed_keys(root: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """The keys the models allow in the mapping at `path` (empty if it is free-form)."""
    current: list[Any] = [root]
    for part in path:
        current = [a for c in current for a in _step(c, part)]
    keys: list[str] = []
    for c in current:
        for member in _members(c):
            if isinstance(member, type) and issubclass(member, BaseModel):
                keys.extend(k for k in member.model_fields if k not in keys)
    return keys


def meant(key: str, allowed: Sequence[str]) -> str | None:
    """The allowed key closest to `key`, if one is close enough to be the one meant."""
    folded = {a.lower().replace("-", "_"): a for a in allowed}
    exact = folded.get(key.lower().replace("-", "_"))
    if exact is not None and exact != key:
        return exact
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.75)
    return close[0] if close else None
