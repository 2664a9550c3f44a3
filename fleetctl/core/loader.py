"""Load an inventory file into validated models, with `FILE:LINE:COL` errors.

The file is read and its YAML composed with positions by `fleetctl.core.yaml_input`;
pydantic validates the values (each runtime block with the model of the runtime that owns
it, see `fleetctl.core.runtime_blocks`) and `fleetctl.core.checks` the inventory as a
whole, and every problem points at the exact line and column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from fleetctl.core.checks import semantic_problems
from fleetctl.core.inventory import Inventory
from fleetctl.core.runtime_blocks import OPTIONS, RUNTIME_KEYS, RuntimeBlock, RuntimeCatalog
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
from fleetctl.errors import InventoryError, PluginError


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


def _pydantic_problems(
    exc: ValidationError,
    positions: Positions,
    prefix: tuple[str | int, ...] = (),
    root: type[BaseModel] = Inventory,
) -> list[str]:
    """One `FILE:LINE:COL` line per problem; `root` validated the value at `prefix`."""
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
        path = prefix + tuple(loc)
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
            guess = meant(str(loc[-1]), allowed_keys(root, loc[:-1])) if loc else None
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


Path_ = tuple[str | int, ...]
PIN_KEYS = tuple(k for k in RUNTIME_KEYS if k != OPTIONS)  # a pin has no options of its own
# Where a runtime block sits: (model index, pin index or None, key) -> validated value.
Blocks = dict[tuple[int, int | None, str], BaseModel]


def _block_for(catalog: RuntimeCatalog, runtime: Any, key: str) -> RuntimeBlock | None:
    if key == OPTIONS:
        own = catalog.blocks.get(runtime) if isinstance(runtime, str) else None
        return own if own is not None and own.key == OPTIONS else None
    return catalog.owner_of(key)


def _runtime_blocks(
    data: Mapping[str, Any], catalog: RuntimeCatalog, positions: Positions
) -> tuple[Blocks, list[str]]:
    """Validate every runtime block of the raw document with its runtime's model.

    `nim:` and `triton:` go to the runtime that owns the key; `options:` to the model's
    own runtime when that is a plugin runtime with a model (else it stays free-form).
    """
    blocks: Blocks = {}
    problems: list[str] = []
    models = data.get("models")
    for i, m in enumerate(models if isinstance(models, list) else []):
        if not isinstance(m, dict):
            continue
        pins = m.get("pins")
        scopes: list[tuple[int | None, Mapping[str, Any], tuple[str, ...]]] = [
            (None, m, RUNTIME_KEYS)
        ]
        scopes += [
            (j, p, PIN_KEYS)
            for j, p in enumerate(pins if isinstance(pins, list) else [])
            if isinstance(p, dict)
        ]
        for j, scope, keys in scopes:
            for key in keys:
                value = scope.get(key)
                block = _block_for(catalog, m.get("runtime"), key)
                if not isinstance(value, dict) or block is None or block.model is None:
                    continue
                prefix: Path_ = ("models", i) + (() if j is None else ("pins", j)) + (key,)
                try:
                    blocks[(i, j, key)] = block.model.model_validate(value)
                except ValidationError as exc:
                    problems.extend(_pydantic_problems(exc, positions, prefix, block.model))
    return blocks, problems


def _required_blocks(inv: Inventory, catalog: RuntimeCatalog, positions: Positions) -> list[str]:
    """A runtime whose model has required fields needs its block."""
    problems: list[str] = []
    for i, m in enumerate(inv.models):
        block = catalog.blocks.get(m.runtime)
        if block is None or block.model is None or getattr(m, block.key, None):
            continue
        required = [n for n, f in block.model.model_fields.items() if f.is_required()]
        if required:
            problems.append(
                positions.problem(
                    ("models", i),
                    f"runtime {m.runtime} needs a '{block.key}:' block with {', '.join(required)}",
                )
            )
    return problems


def _with_blocks(inv: Inventory, blocks: Blocks) -> Inventory:
    if not blocks:
        return inv
    # Grouped by model and pin once: looking them up per model was quadratic (26 s of
    # a 5,000-model plan).
    by_owner: dict[tuple[int, int | None], dict[str, Any]] = {}
    for (mi, j, k), v in blocks.items():
        by_owner.setdefault((mi, j), {})[k] = v
    models = []
    for i, m in enumerate(inv.models):
        if not any((i, j) in by_owner for j in [None, *range(len(m.pins))]):
            models.append(m)
            continue
        pins = [
            p.model_copy(update=by_owner[(i, pj)]) if (i, pj) in by_owner else p
            for pj, p in enumerate(m.pins)
        ]
        models.append(m.model_copy(update={**by_owner.get((i, None), {}), "pins": pins}))
    return inv.model_copy(update={"models": models})


def load_text(
    text: str,
    file: str = "<inventory>",
    base_dir: str | Path | None = None,
    known_runtimes: Iterable[str] | RuntimeCatalog | None = None,
    *,
    catalog: RuntimeCatalog | None = None,
) -> LoadedInventory:
    """Load an inventory. `known_runtimes`: the runtimes a model may name (None: any), as
    names or as a `RuntimeCatalog`; the runtime blocks are validated with the models of
    that catalog, or of `catalog` (`fleetctl.runtimes.inventory` passes the installed one)."""
    data, positions = parse_yaml(text, file)
    if not isinstance(data, dict):
        raise InventoryError(
            [positions.problem((), "the inventory must be a mapping with 'hosts' and 'models'")]
        )
    if isinstance(known_runtimes, RuntimeCatalog):
        catalog = known_runtimes
    if catalog is None:
        # Without it the runtime blocks would stay plain mappings and resolve to other specs.
        raise TypeError(
            "the loader needs the runtimes' catalog: use fleetctl.runtimes.inventory.load"
        )
    names = None if known_runtimes is None else set(known_runtimes)
    blocks, block_problems = _runtime_blocks(data, catalog, positions)
    try:
        inventory = Inventory.model_validate(data)
    except ValidationError as exc:
        raise InventoryError(_pydantic_problems(exc, positions) + block_problems) from None
    if (
        names is not None
        and catalog.broken
        and any(m.runtime not in names for m in inventory.models)
    ):
        # A runtime nobody provides, and a plugin that could not be loaded: that is the cause.
        raise PluginError("\n".join(catalog.broken))
    if block_problems:
        raise InventoryError(block_problems)
    inventory = _with_blocks(inventory, blocks)
    problems = _required_blocks(inventory, catalog, positions)
    problems += semantic_problems(inventory, positions, names)
    if problems:
        raise InventoryError(problems)
    if base_dir is not None:
        inventory = _absolute_paths(inventory, Path(base_dir))
    return LoadedInventory(inventory, positions, file)


def _absolute_paths(inv: Inventory, base: Path) -> Inventory:
    """Host paths in the inventory are relative to the inventory file, like compose's;
    a runtime's model names its host-path fields in `host_paths`."""

    def fix(block: Any) -> Any:
        fields = getattr(block, "host_paths", ()) if isinstance(block, BaseModel) else ()
        update = {
            f: str((base / getattr(block, f)).resolve())
            for f in fields
            if isinstance(getattr(block, f, None), str)
            and not Path(getattr(block, f)).is_absolute()
        }
        return block.model_copy(update=update) if update else block

    models = []
    for m in inv.models:
        pins = [p.model_copy(update={k: fix(getattr(p, k)) for k in PIN_KEYS}) for p in m.pins]
        update = {k: fix(getattr(m, k)) for k in RUNTIME_KEYS}
        models.append(m.model_copy(update={**update, "pins": pins}))
    return inv.model_copy(update={"models": models})


def load(
    path: str | Path,
    known_runtimes: Iterable[str] | RuntimeCatalog | None = None,
    *,
    catalog: RuntimeCatalog | None = None,
) -> LoadedInventory:
    p = Path(path)
    text = read_inventory(p)
    return load_text(
        text, str(p), base_dir=p.resolve().parent, known_runtimes=known_runtimes, catalog=catalog
    )
