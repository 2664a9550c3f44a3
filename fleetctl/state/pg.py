"""PostgreSQL state through psycopg 3: connections, the write serialisation, errors.

Every connection to a PostgreSQL state is made here (the store's SQLAlchemy engine, the
SQL-only readers in `peek.py` and `health_store.py`, the lock), so that each gets the
same timeout, application name and password handling, and so that an unreachable or
failing server ends in one line (`StateError`), never a traceback.

SQLite's `BEGIN IMMEDIATE` makes a writer take the database's write lock up front. The
PostgreSQL equivalent here is a transaction-scoped advisory lock (`WRITE_KEY`) taken as
a write transaction's first statement: writers queue in order, readers never wait, and
the lock ends with the transaction even if its process dies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetctl.errors import StateError
from fleetctl.state.paths import DatabaseURL

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy import Engine

# Advisory lock keys (64-bit, any value; these spell "fleetctl" and a suffix in ASCII).
FLEET_LOCK_KEY = 0x666C656574633C4C  # session lock: one fleet-changing fleetctl at a time
WRITE_KEY = 0x666C656574633C57  # transaction lock: one writing transaction at a time


def _reason(exc: BaseException, secret: str | None = None) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if secret:
        text = text.replace(secret, "***")
    return text[:300]


def connect(url: DatabaseURL, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    """A psycopg connection to the state database, or `StateError` naming why not."""
    import psycopg

    conninfo, extra = url.conninfo()
    params: dict[str, Any] = dict(extra)  # connection parameters kept out of the string
    try:
        return psycopg.connect(conninfo, autocommit=autocommit, **params)
    except psycopg.Error as exc:
        raise StateError(
            f"state {url}: cannot connect: {_reason(exc, extra.get('password'))}"
        ) from None


def state_error(url: DatabaseURL, exc: BaseException) -> StateError | None:
    """The one-line error for a failure of the server or the connection, else None
    (constraint violations and bugs keep their own exception)."""
    import psycopg
    from psycopg import errors

    if isinstance(
        exc,
        (
            psycopg.OperationalError,
            psycopg.InterfaceError,
            errors.InsufficientPrivilege,
            errors.ReadOnlySqlTransaction,
        ),
    ):
        return StateError(f"state {url}: {_reason(exc)}")
    return None


def qmark(sql: str) -> str:
    """SQLite's `?` placeholders as psycopg's `%s` (the SQL here has no literal `%` or `?`
    other than in LIKE patterns, which are parameters)."""
    return sql.replace("%", "%%").replace("?", "%s")


def open_engine(url: DatabaseURL, **engine_kwargs: Any) -> Engine:
    """A SQLAlchemy engine on the state database; write transactions take `WRITE_KEY`."""
    from sqlalchemy import create_engine, event

    from fleetctl.state.begin import BEGIN_DEFERRED, BEGIN_OPTION

    engine = create_engine("postgresql+psycopg://", creator=lambda: connect(url), **engine_kwargs)

    def on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(BEGIN_OPTION) != BEGIN_DEFERRED:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_KEY})")

    def on_error(ctx: Any) -> None:
        err = state_error(url, ctx.original_exception)
        if err is not None:
            raise err from None

    event.listen(engine, "begin", on_begin)
    event.listen(engine, "handle_error", on_error)
    return engine
