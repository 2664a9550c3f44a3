"""The JSON renderer: a result value's document, from the value itself (`to_jsonable`)."""

from __future__ import annotations

import json
from typing import Any, TextIO

from fleetctl.results import to_jsonable


def dumps(result: Any, *, indent: bool = False) -> str:
    data = to_jsonable(result)
    if indent:
        return json.dumps(data, indent=2)
    return json.dumps(data, separators=(",", ":"))


def write_json(result: Any, out: TextIO) -> None:
    # Indented for a person at a terminal; compact for a pipe, where the C encoder is
    # several times faster on large plans (indent forces the pure-Python one).
    out.write(dumps(result, indent=out.isatty()) + "\n")
