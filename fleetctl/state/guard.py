"""Last-line defence against writing a secret into the state file.

Callers already resolve specs without secret values; this check catches the day one
slips through (a new runtime setting, a templated env value). Error messages name only
the JSON path of the offending value, never the value.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

# Below this length, finding a forbidden value inside a longer string is mostly
# coincidence ("1" inside a port number); such values are matched only whole.
MIN_EMBEDDED_LEN = 8


def _child_path(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Yield (path, text) for every string in a JSON-like value, dict keys included.

    A key is yielded before its value, under the path `parent.<key>`, so a key that is a
    secret is reported without being echoed, and is caught before any path spelling it.
    """
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            key_text = str(key)
            yield _child_path(path, "<key>"), key_text
            yield from _strings(item, _child_path(path, key_text))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def _matches(text: str, secret: str) -> bool:
    if text == secret:
        return True
    return len(secret) >= MIN_EMBEDDED_LEN and secret in text


def find_forbidden(value: Any, forbidden: Sequence[str], path: str = "") -> str | None:
    """The path of the first string in `value` that equals (or embeds) a forbidden value."""
    secrets = [s for s in forbidden if s]
    if not secrets:
        return None
    for where, text in _strings(value, path):
        if any(_matches(text, s) for s in secrets):
            # Belt and braces: never return a path that itself spells a secret.
            return (path or "<value>") if any(_matches(where, s) for s in secrets) else where
    return None


def refuse_forbidden(fields: dict[str, Any], forbidden: Sequence[str], what: str) -> None:
    """Raise ValueError naming the field path if any field holds a forbidden value."""
    for name, value in fields.items():
        where = find_forbidden(value, forbidden, name)
        if where is not None:
            raise ValueError(
                f"refusing to store {what}: {where} holds a secret value; "
                "keep secrets in the environment and out of the spec"
            )
