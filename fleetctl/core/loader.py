"""Load an inventory file into validated models, with `FILE:LINE:COL` errors.

The file is read and its YAML composed with positions by `fleetctl.core.yaml_input`;
pydantic validates the values and `fleetctl.core.checks` the inventory as a whole, and
every problem points at the exact line and column.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fleetctl.core.inventory import Inventory
from fleetctl.core.yaml_input import (  # noqa: F401 - re-exported: the loader's interface
    MAX_ALIAS_EXPANSION,
    MAX_DEPTH,
    MAX_INVENTORY_BYTES,
    Positions,
    Problem,
    format_path,
    parse_yaml,
    problem_json,
    read_inventory,
)
from fleetctl.errors import InventoryError


def _plain_message(err: Any) -> str:
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    given = err.get("input")
    if isinstance(given, str):
        # Strict types: the text "true" or "4" is refused; say why and what to write.
        if err["type"] == "bool_type":
            return f"{msg}, not the text {given!r}: write true or false without quotes"
        if err["type"] in ("int_type", "float_type"):
            return f"{msg}, not the text {given!r}: write the number without quotes"
    return msg


def _pydantic_problems(exc: ValidationError, positions: Positions) -> list[str]:
    from fleetctl.core.suggest import allowed_keys, meant

    typos: list[str] = []
    others: list[tuple[tuple[str | int, ...], str]] = []
    suggested: set[tuple[str | int, ...]] = set()
    for err in exc.errors(include_url=False):
        # pydantic adds the union branch / validator name to loc; keep only data keys.
        loc: list[str | int] = []
        for part in err["loc"]:
            if isinstance(part, str) and (
                part.startswith("function-")
                or part in ("literal['auto']", "GpuDecl", "list[GpuDecl]")
            ):
                continue
            loc.append(part)
        path = tuple(loc)
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
            guess = meant(str(path[-1]), allowed_keys(Inventory, path[:-1])) if path else None
            if guess is not None:
                msg += f" (did you mean {guess}?)"
                suggested.add(path[:-1] + (guess,))
            typos.append(positions.problem(path, msg, key=True))
            continue
        others.append((path, _plain_message(err)))
    # A typo leads its error; the key it stands for is not reported missing as well.
    problems = typos + [
        positions.problem(path, msg)
        for path, msg in others
        if not (path in suggested and msg == "Field required")
    ]
    # One problem per line is enough; unions can repeat the same location.
    return list(dict.fromkeys(problems))


@dataclass(frozen=True)
class LoadedInventory:
    inventory: Inventory
    positions: Positions
    path: str


def load_text(
    text: str,
    file: str = "<inventory>",
    base_dir: str | Path | None = None,
    known_runtimes: Iterable[str] | None = None,
) -> LoadedInventory:
    from fleetctl.core.checks import semantic_problems  # local: checks imports fleet views

    data, positions = parse_yaml(text, file)
    if not isinstance(data, dict):
        raise InventoryError(
            [positions.problem((), "the inventory must be a mapping with 'hosts' and 'models'")]
        )
    try:
        inventory = Inventory.model_validate(data)
    except ValidationError as exc:
        raise InventoryError(_pydantic_problems(exc, positions)) from None
    problems = semantic_problems(inventory, positions, known_runtimes)
    if problems:
        raise InventoryError(problems)
    if base_dir is not None:
        inventory = _absolute_paths(inventory, Path(base_dir))
    return LoadedInventory(inventory, positions, file)


def _absolute_paths(inv: Inventory, base: Path) -> Inventory:
    """Host paths in the inventory are relative to the inventory file, like compose's."""

    def fix(path: str) -> str:
        return path if Path(path).is_absolute() else str((base / path).resolve())

    models = []
    for m in inv.models:
        update: dict[str, Any] = {}
        if m.triton is not None:
            update["triton"] = m.triton.model_copy(
                update={"model_repository": fix(m.triton.model_repository)}
            )
        if m.nim is not None:
            update["nim"] = m.nim.model_copy(update={"cache_dir": fix(m.nim.cache_dir)})
        models.append(m.model_copy(update=update) if update else m)
    return inv.model_copy(update={"models": models})


def load(path: str | Path, known_runtimes: Iterable[str] | None = None) -> LoadedInventory:
    p = Path(path)
    text = read_inventory(p)
    return load_text(text, str(p), base_dir=p.resolve().parent, known_runtimes=known_runtimes)
