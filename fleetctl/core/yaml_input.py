"""Read an inventory file and compose its YAML into plain values with their positions.

YAML is composed into nodes (libyaml when available, it is ~10x faster) and walked into
plain Python values while recording each value's position, so any problem found later
by pydantic or by the semantic checks points at the exact line and column.

Whatever a person can put in the file ends in such a line, never a traceback: a file
that is not a regular file, too large (MAX_INVENTORY_BYTES, checked before reading),
not UTF-8 or binary; YAML tags other than the plain types, keys that are not scalars or
are null, recursive aliases, aliases that expand past MAX_ALIAS_EXPANSION values (a
"billion laughs" document is a few hundred bytes), and nesting past MAX_DEPTH.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleetctl.errors import InventoryError

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

Path_ = tuple[str | int, ...]

# No real inventory comes near these (10,000 models take about 2 MB); they only bound the
# time and memory a mistaken or hostile file can cost.
MAX_INVENTORY_BYTES = 16 * 1024 * 1024
MAX_ALIAS_EXPANSION = 100_000  # values produced by aliases beyond the document's own
MAX_DEPTH = 64  # nested mappings and sequences

_PLAIN_TAGS = {
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")
}
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class Problem(str):
    """One `FILE:LINE:COL: path: message` line, with its parts kept for `--output json`."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __new__(cls, file: str, line: int, col: int, path: str, message: str) -> Problem:
        # One line, whatever the file held: a key or value quoted in it keeps no line break
        # or control character (str.splitlines alone knows eight line separators).
        file, path, message = _printable(file), _printable(path), _printable(message)
        self = super().__new__(cls, f"{file}:{line}:{col}: {path}: {message}")
        self.file, self.line, self.col, self.path, self.message = file, line, col, path, message
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "path": self.path,
            "message": self.message,
        }


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


_LINE_RE = re.compile(
    r"^(?P<file>.*?):(?P<line>\d+):(?P<col>\d+): (?P<path>.*?): (?P<message>.*)$", re.S
)


def problem_json(text: str) -> dict[str, Any]:
    """The parts of a problem line (a `Problem`, or a plain string in the same format)."""
    if isinstance(text, Problem):
        return text.to_json()
    m = _LINE_RE.match(text)
    if m is None:
        return {"file": None, "line": None, "col": None, "path": None, "message": text}
    return {**m.groupdict(), "line": int(m["line"]), "col": int(m["col"])}


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

    def problem(self, path: Path_, message: str, *, key: bool = False) -> Problem:
        line, col = self.locate(path, key=key)
        return Problem(self.file, line, col, format_path(path) or "<root>", message)


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _at(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _TooMuch(Exception):
    """The document cannot be walked at all (alias bomb, recursion, depth): one problem."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem


class _Walker:
    def __init__(self, positions: Positions) -> None:
        self.pos = positions
        self.problems: list[str] = []
        self._constructor = yaml.constructor.SafeConstructor()
        self._scalar = {
            tag: fn
            for tag, fn in yaml.constructor.SafeConstructor.yaml_constructors.items()
            if tag in _PLAIN_TAGS
        }
        self._seen: set[int] = set()  # nodes walked once: walking one again is an alias
        self._open: set[int] = set()  # collections being walked: meeting one is recursion
        self._expanded = 0

    def _problem_at(self, node: yaml.Node, path: Path_, message: str) -> Problem:
        line, col = _at(node)
        return Problem(self.pos.file, line, col, format_path(path) or "<root>", message)

    def value(self, node: yaml.Node, path: Path_) -> Any:
        if id(node) in self._seen:
            self._expanded += 1
            if self._expanded > MAX_ALIAS_EXPANSION:
                raise _TooMuch(
                    self._problem_at(
                        node,
                        path,
                        f"aliases expand to more than {MAX_ALIAS_EXPANSION:,} values; write the values out",
                    )
                )
        else:
            self._seen.add(id(node))
        self.pos.at.setdefault(path, _at(node))
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            if id(node) in self._open:
                raise _TooMuch(
                    self._problem_at(node, path, "recursive alias: this value contains itself")
                )
            if len(path) >= MAX_DEPTH:
                raise _TooMuch(
                    self._problem_at(node, path, f"nested deeper than {MAX_DEPTH} levels")
                )
            if node.tag not in _PLAIN_TAGS:
                self.problems.append(
                    self._problem_at(node, path, f"YAML tag {node.tag} is not supported")
                )
                return None
            self._open.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self._mapping(node, path)
                return [self.value(item, path + (i,)) for i, item in enumerate(node.value)]
            finally:
                self._open.discard(id(node))
        make = self._scalar.get(node.tag)
        if make is not None:
            # Call the tag's constructor directly: the generic construct_object adds
            # bookkeeping for anchors and recursion that costs ~3x on large inventories.
            return make(self._constructor, node)
        if node.tag == _TIMESTAMP_TAG:
            return node.value  # `version: 2024-06-01` means the text, not a date
        self.problems.append(self._problem_at(node, path, f"YAML tag {node.tag} is not supported"))
        return None

    def _key(self, key_node: yaml.Node, path: Path_) -> str | None:
        """Keys are text: a number or boolean as a key is taken as written ('1', 'on')."""
        if not isinstance(key_node, yaml.ScalarNode):
            self.problems.append(
                self._problem_at(key_node, path, "a key must be plain text, not a list or mapping")
            )
            return None
        if key_node.tag == "tag:yaml.org,2002:null" or key_node.value == "":
            self.problems.append(self._problem_at(key_node, path, "empty or null key"))
            return None
        if key_node.tag not in _PLAIN_TAGS and key_node.tag != _TIMESTAMP_TAG:
            self.problems.append(
                self._problem_at(key_node, path, f"YAML tag {key_node.tag} is not supported")
            )
            return None
        return key_node.value

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problems.append(
                    self.pos.problem(path, "YAML merge keys (<<) are not supported")
                )
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            child = path + (key,)
            if key in out:
                line, col = _at(key_node)
                first = self.pos.key_at.get(child, (line, col))[0]
                self.problems.append(
                    Problem(
                        self.pos.file,
                        line,
                        col,
                        format_path(child),
                        f"duplicate key (first at line {first})",
                    )
                )
                continue
            self.pos.key_at.setdefault(child, _at(key_node))
            out[key] = self.value(value_node, child)
        return out


def _decode(data: bytes, file: str) -> str:
    """UTF-8 text, or one problem at the first byte that is not."""
    import codecs

    for bom, name in (
        (codecs.BOM_UTF32_LE, "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if data.startswith(bom):
            raise InventoryError(
                [Problem(file, 1, 1, "<file>", f"{name} text; save the file as UTF-8")]
            )
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        col = nul - (data.rfind(b"\n", 0, nul) + 1) + 1
        raise InventoryError(
            [
                Problem(
                    file, line, col, "<file>", "this is a binary file, not YAML text (a NUL byte)"
                )
            ]
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        at = exc.start
        line = data.count(b"\n", 0, at) + 1
        col = at - (data.rfind(b"\n", 0, at) + 1) + 1
        raise InventoryError(
            [
                Problem(
                    file,
                    line,
                    col,
                    "<file>",
                    f"not UTF-8 text (byte 0x{data[at]:02x}); save the file as UTF-8",
                )
            ]
        ) from None


def parse_yaml(text: str, file: str) -> tuple[Any, Positions]:
    """Parse YAML text into plain values and their positions; raise InventoryError."""
    positions = Positions(file)
    if len(text) > MAX_INVENTORY_BYTES:
        raise InventoryError(
            [Problem(file, 1, 1, "<file>", _too_large(len(text.encode("utf-8", "replace"))))]
        )
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise InventoryError(
            [Problem(file, line, col, "<yaml>", str(exc.problem or exc).strip())]
        ) from None
    except yaml.YAMLError as exc:
        line, col = 1, 1
        position = getattr(exc, "position", None)  # a reader error: a character YAML refuses
        if isinstance(position, int):
            line = text.count("\n", 0, position) + 1
            col = position - (text.rfind("\n", 0, position) + 1) + 1
        message = re.sub(r'\s+in "<unicode string>", position \d+$', "", " ".join(str(exc).split()))
        raise InventoryError([Problem(file, line, col, "<yaml>", message)]) from None
    except (ValueError, RecursionError, MemoryError) as exc:  # libyaml's own limits
        raise InventoryError([Problem(file, 1, 1, "<yaml>", f"cannot parse: {exc}")]) from None
    if node is None:
        return {}, positions
    walker = _Walker(positions)
    try:
        data = walker.value(node, ())
    except _TooMuch as exc:
        raise InventoryError([*walker.problems, exc.problem]) from None
    if walker.problems:
        raise InventoryError(walker.problems)
    return data, positions


def _too_large(size: int) -> str:
    return (
        f"the file is {size / 1048576:.1f} MiB; an inventory may be at most "
        f"{MAX_INVENTORY_BYTES // 1048576} MiB"
    )


def read_inventory(path: str | Path) -> str:
    """The text of an inventory file; anything that keeps it from being one is a problem line."""
    p = Path(path)
    try:
        # Non-blocking: a FIFO given by mistake must not wait for a writer.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InventoryError([Problem(str(p), 1, 1, "<file>", "no such inventory file")]) from None
    except OSError as exc:
        raise InventoryError(
            [Problem(str(p), 1, 1, "<file>", f"cannot read: {exc.strerror or exc}")]
        ) from None
    st = os.fstat(fd)
    why = (
        "is a directory, not an inventory file"
        if stat.S_ISDIR(st.st_mode)
        else None
        if stat.S_ISREG(st.st_mode)
        else "not a regular file"
    )
    if why is None and st.st_size > MAX_INVENTORY_BYTES:
        why = _too_large(st.st_size)
    if why is not None:
        os.close(fd)
        raise InventoryError([Problem(str(p), 1, 1, "<file>", why)])
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(MAX_INVENTORY_BYTES + 1)
        except OSError as exc:
            raise InventoryError(
                [Problem(str(p), 1, 1, "<file>", f"cannot read: {exc.strerror or exc}")]
            ) from None
    if len(data) > MAX_INVENTORY_BYTES:  # it grew while being read
        raise InventoryError([Problem(str(p), 1, 1, "<file>", _too_large(len(data)))])
    return _decode(data, str(p))
