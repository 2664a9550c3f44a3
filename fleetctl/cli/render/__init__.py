"""Render command results: one renderer per output, each dispatching on the result's type.

- `show(result, output)`: the text view (rich, `fleetctl.cli.render.text`) or the JSON
  document (`fleetctl.cli.render.json`) of a result from `fleetctl.results`;
- `fleetctl.cli.render.html`: the report as one HTML page (jinja2 templates).

Nothing here decides anything. The views are imported when first used, so that a
command pays only for the renderer it needs.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from fleetctl.cli.options import Output


def stdout_console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def print_json(result: Any) -> None:
    """Write a result's JSON document on stdout."""
    from fleetctl.cli.render.json import write_json

    write_json(result, sys.stdout)


def show(result: Any, output: Output, console: Console | None = None) -> None:
    """The result as its output asks: JSON on stdout, or its text view on `console`."""
    from fleetctl.cli.options import Output

    if output is Output.json:
        print_json(result)
        return
    from fleetctl.cli.render.text import render_text

    render_text(result, console or stdout_console())


def __getattr__(name: str) -> Any:
    # The text views by their old names (`render.render_plan`), loaded on first use.
    if name.startswith("render_") or name in ("BAR_WIDTH", "PALETTE", "memory_bar"):
        from fleetctl.cli.render import text

        return getattr(text, name)
    raise AttributeError(name)
