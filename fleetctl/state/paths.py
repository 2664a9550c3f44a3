"""Where the state lives: a SQLite file (the embedded default) or a PostgreSQL database.

Kept free of SQLAlchemy and psycopg so that commands that only lock or read nothing (a
no-op apply) start fast.

A state location is either a `Path` (SQLite) or a `DatabaseURL` (PostgreSQL). A URL
never carries a password: it comes by reference, from `PGPASSWORD`, a libpq passfile
(`PGPASSFILE`, `~/.pgpass`, `?passfile=PATH`) or fleetctl's own `?password_file=PATH`,
read only when a connection is made. `str(url)` is the URL as given (no secret in it),
which is what messages and the state show.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from fleetctl.errors import ExitCode, FleetctlError

STATE_DIR = "state"
STATE_FILE = "fleetctl.db"
DEFAULT_STATE_PATH = Path(STATE_DIR) / STATE_FILE
STATE_ENV = "FLEETCTL_STATE"

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
SQLITE_SCHEME = "sqlite"
PASSWORD_FILE_OPTION = "password_file"
DEFAULT_CONNECT_TIMEOUT_S = 5

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


class StateLocationError(FleetctlError):
    """A state location that is neither a path nor a supported database URL (exit 3,
    like every other input a person writes)."""

    exit_code = ExitCode.INVENTORY


@dataclass(frozen=True)
class DatabaseURL:
    """A PostgreSQL state: `postgresql://USER@HOST:PORT/DB?OPTIONS` (libpq's URI form)."""

    url: str

    def __str__(self) -> str:
        return self.url

    @property
    def name(self) -> str:
        """The database name (for messages)."""
        return unquote(urlsplit(self.url).path.lstrip("/")) or "(default database)"

    def conninfo(self) -> tuple[str, dict[str, str]]:
        """libpq's URI without fleetctl's own options, and keyword arguments to add.

        The password, if it comes from `password_file`, is read here, at connect time,
        so it lives only in this process's memory and the connection.
        """
        parts = urlsplit(self.url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        kept = [(k, v) for k, v in query if k != PASSWORD_FILE_OPTION]
        extra: dict[str, str] = {}
        if not any(k == "connect_timeout" for k, _ in kept):
            extra["connect_timeout"] = str(DEFAULT_CONNECT_TIMEOUT_S)
        if not any(k == "application_name" for k, _ in kept):
            extra["application_name"] = "fleetctl"
        for key, value in query:
            if key == PASSWORD_FILE_OPTION:
                extra["password"] = _read_password_file(value)
        scheme = "postgresql"
        return urlunsplit((scheme, parts.netloc, parts.path, urlencode(kept), "")), extra


def _read_password_file(path: str) -> str:
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise FleetctlError(f"state password_file {path}: cannot be read ({reason})") from None
    # One line, as a passfile for a single password is usually written (echo > file).
    return text.rstrip("\r\n")


StateLocation = Path | DatabaseURL


def is_database(location: object) -> bool:
    return isinstance(location, DatabaseURL)


def parse_state_location(text: str, *, origin: str = "--state") -> StateLocation:
    """A state location from the command line or the environment.

    A plain path is SQLite (`sqlite:///PATH` too); `postgresql://…` is PostgreSQL; any
    other `scheme://` is refused, so that a typo never silently becomes a directory.
    """
    text = text.strip()
    match = _SCHEME.match(text)
    if match is None or not text[match.end() :].startswith("//"):
        return Path(text).expanduser()
    scheme = match.group(1).lower()
    if scheme == SQLITE_SCHEME:
        rest = text[match.end() + 2 :]
        if not rest.startswith("/") or rest == "/":
            raise StateLocationError(
                f"{origin}: a SQLite URL names a file: sqlite:///PATH (or give the path itself)"
            )
        return Path(
            rest[1:]
        ).expanduser()  # SQLAlchemy's form: sqlite:///relative, sqlite:////absolute
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError on a malformed port)
    except ValueError:
        raise StateLocationError(
            f"{origin}: {_scheme_only(text)} is not a valid URL (postgresql://USER@HOST:PORT/DB)"
        ) from None
    if scheme not in POSTGRES_SCHEMES:
        raise StateLocationError(
            f"{origin}: {scheme}://… is neither a path nor a supported database URL "
            "(use a file path for SQLite, or postgresql://USER@HOST:PORT/DB)"
        )
    if parts.password is not None or any(k == "password" for k, _ in parse_qsl(parts.query)):
        raise StateLocationError(
            f"{origin}: the state URL must not carry a password; give it by reference: "
            f"PGPASSWORD, a passfile (PGPASSFILE or ?passfile=PATH) or ?{PASSWORD_FILE_OPTION}=PATH"
        )
    if parts.fragment:
        raise StateLocationError(f"{origin}: a PostgreSQL state URL has no #fragment")
    return DatabaseURL(urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, "")))


def _scheme_only(text: str) -> str:
    match = _SCHEME.match(text)
    return f"{match.group(1)}://…" if match else "the value"


def default_state_path(inventory: Path | str | None = None) -> Path:
    """The state beside the inventory, whatever the current directory.

    `state/fleetctl.db` in the inventory's directory, or in its parent when the
    inventory sits in a directory named `inventory` (this repository's layout, so
    `inventory/demo.yaml` keeps its state in `state/`). Without an inventory, beside
    the default one (`inventory/fleet.yaml` under the current directory).
    """
    inv = Path(
        inventory if inventory is not None else Path("inventory") / "fleet.yaml"
    ).expanduser()
    folder = inv.absolute().parent
    if folder.name == "inventory":
        folder = folder.parent
    return folder / STATE_DIR / STATE_FILE


def resolve_state_path(option: str | None, inventory: Path | str | None = None) -> StateLocation:
    """The state: the command-line option, else `$FLEETCTL_STATE`, else beside the inventory.

    A relative path given as an option stays relative to the current directory. Nothing
    is created here; the store and the lock create the parent directory when they open it.
    """
    if option:
        # The CLI hands the environment's value over as the option's: name where it came from.
        came_from = f"${STATE_ENV}" if str(option) == os.environ.get(STATE_ENV) else "--state"
        return parse_state_location(str(option), origin=came_from)
    env = os.environ.get(STATE_ENV, "").strip()
    if env:
        return parse_state_location(env, origin=f"${STATE_ENV}")
    return default_state_path(inventory)
