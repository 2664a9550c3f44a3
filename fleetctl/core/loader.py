"""Load an inventory file into validated models, with `FILE:LINE:COL` errors.

YAML is composed into nodes (libyaml when available, it is ~10x faster) and walked into
plain Python values while recording each value's position, so any problem found later
by pydantic or by the semantic checks points at the exact line and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from fleetctl.core.inventory import Inventory
from fleetctl.errors import InventoryError

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

Path_ = tuple[str | int, ...]


@dataclass
class Positions:
    """Maps a path in the document (('models', 2, 'name')) to its 1-based (line, col)."""

    file: str
    at: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_at: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        # Fall back to the nearest ancestor that exists: a missing key is reported at
        # the mapping that should hold it.
        p = tuple(path)
        while p:
            table = self.key_at if key else self.at
            if p in table:
                return table[p]
            if p in self.at:
                return self.at[p]
            p = p[:-1]
        return self.at.get((), (1, 1))

    def problem(self, path: Path_, message: str, *, key: bool = False) -> str:
        line, col = self.locate(path, key=key)
        return f"{self.file}:{line}:{col}: {format_path(path) or '<root>'}: {message}"


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class _Walker:
    def __init__(self, positions: Positions) -> None:
        self.pos = positions
        self.problems: list[str] = []
        self._constructor = yaml.constructor.SafeConstructor()
        self._scalar = {
            tag: fn
            for tag, fn in yaml.constructor.SafeConstructor.yaml_constructors.items()
            if tag is not None and tag.rsplit(":", 1)[-1] in ("str", "int", "float", "bool", "null")
        }

    def value(self, node: yaml.Node, path: Path_) -> Any:
        self.pos.at[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self.problems.append(self.pos.problem(path, "YAML merge keys (<<) are not supported"))
                    continue
                key = self._constructor.construct_object(key_node)
                child = path + (key,)
                if key in out:
                    line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                    self.problems.append(
                        f"{self.pos.file}:{line}:{col}: {format_path(child)}: duplicate key "
                        f"(first at line {self.pos.key_at[child][0]})"
                    )
                    continue
                self.pos.key_at[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                out[key] = self.value(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, path + (i,)) for i, item in enumerate(node.value)]
        # Call the tag's constructor directly: the generic construct_object adds
        # bookkeeping for anchors and recursion that costs ~3x on large inventories.
        make = self._scalar.get(node.tag)
        if make is not None:
            return make(self._constructor, node)
        return self._constructor.construct_object(node)


def parse_yaml(text: str, file: str) -> tuple[Any, Positions]:
    """Parse YAML text into plain values and their positions; raise InventoryError."""
    positions = Positions(file)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise InventoryError([f"{file}:{line}:{col}: <yaml>: {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise InventoryError([f"{file}:1:1: <yaml>: {exc}"]) from None
    if node is None:
        return {}, positions
    walker = _Walker(positions)
    data = walker.value(node, ())
    if walker.problems:
        raise InventoryError(walker.problems)
    return data, positions


def _pydantic_problems(exc: ValidationError, positions: Positions) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        # pydantic adds the union branch / validator name to loc; keep only data keys.
        loc: list[str | int] = []
        for part in err["loc"]:
            if isinstance(part, str) and (part.startswith("function-") or part in ("literal['auto']", "GpuDecl")):
                continue
            loc.append(part)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
            problems.append(positions.problem(tuple(loc), msg, key=True))
            continue
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        problems.append(positions.problem(tuple(loc), msg))
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
        raise InventoryError([positions.problem((), "the inventory must be a mapping with 'hosts' and 'models'")])
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
            update["triton"] = m.triton.model_copy(update={"model_repository": fix(m.triton.model_repository)})
        if m.nim is not None:
            update["nim"] = m.nim.model_copy(update={"cache_dir": fix(m.nim.cache_dir)})
        models.append(m.model_copy(update=update) if update else m)
    return inv.model_copy(update={"models": models})


def load(path: str | Path, known_runtimes: Iterable[str] | None = None) -> LoadedInventory:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError([f"{p}:1:1: <file>: no such inventory file"]) from None
    except OSError as exc:
        raise InventoryError([f"{p}:1:1: <file>: cannot read: {exc.strerror}"]) from None
    return load_text(text, str(p), base_dir=p.resolve().parent, known_runtimes=known_runtimes)
