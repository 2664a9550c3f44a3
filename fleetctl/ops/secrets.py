"""Reading secret references (`env:NAME`, `file:PATH`) at apply time.

A missing or empty secret is named by its reference, never shown. Values only ever go to
the container (or digest) that needs them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from fleetctl.core.inventory import SecretRef
from fleetctl.errors import FleetctlError, InventoryError
from fleetctl.runtimes.spec import SecretEnv

if TYPE_CHECKING:
    from fleetctl.core.inventory import Inventory
    from fleetctl.core.loader import LoadedInventory


def read_secret(s: SecretEnv, owner: str) -> str:
    kind, _, ref = s.source.partition(":")
    if kind == "env":
        value = os.environ.get(ref)
        if not value:
            raise FleetctlError(
                f"{owner} needs {s.name} from environment variable {ref}, which is not set"
            )
        return value
    try:
        value = Path(ref).read_text().strip()
    except OSError as exc:
        raise FleetctlError(f"{owner} needs {s.name} from file {ref}: {exc.strerror}") from None
    if not value:
        raise FleetctlError(f"{owner} needs {s.name} from file {ref}, which is empty")
    return value


def reference_values(inv: Inventory) -> dict[str, str]:
    """value -> reference, for every secret reference of the inventory that can be read now.

    Best effort (a missing one is reported by apply, by name, when it is needed): used
    only to make sure no value also stands in the inventory itself.
    """
    refs: list[SecretRef] = [r for m in inv.models for r in m.secrets.values()]
    for m in inv.models:
        for nim in [m.nim, *(p.nim for p in m.pins)]:
            if nim is not None and m.runtime == "nim":
                refs.append(nim.ngc_api_key)
        if m.runtime == "nim" and m.nim is None:
            refs.append(SecretRef(env="NGC_API_KEY", file=None))
    refs.extend(inv.front_door.api_keys.values())
    out: dict[str, str] = {}
    for ref in refs:
        try:
            value = os.environ.get(ref.env) if ref.env else Path(ref.file or "").read_text().strip()
        except OSError:
            continue
        if value:
            out.setdefault(value, ref.describe())
    return out


def refuse_secret_values(loaded: LoadedInventory) -> None:
    """Refuse an inventory that spells out the value of one of its own secret references
    (`nim.passthrough_args: --api-key <the key>`): it would be stored, printed and put in
    labels. One `FILE:LINE:COL` line per place, naming the reference, never the value."""
    from fleetctl.core.secret_checks import strings_in
    from fleetctl.state.guard import MIN_EMBEDDED_LEN

    def _matches(text: str, value: str) -> bool:  # the state guard's rule
        return text == value or (len(value) >= MIN_EMBEDDED_LEN and value in text)

    values = reference_values(loaded.inventory)
    if not values:
        return
    problems = []
    for path, text in strings_in(loaded.inventory.model_dump(mode="json"), ()):
        ref = next((r for v, r in values.items() if _matches(text, v)), None)
        if ref is not None:
            problems.append(
                loaded.positions.problem(
                    path,
                    f"holds the value of the secret {ref}: give it only by reference under 'secrets:'",
                )
            )
    if problems:
        raise InventoryError(problems)
