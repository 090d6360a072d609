"""What a database error means for the engine, in one place: the driver's codes and SQLSTATEs
mapped to the interface's error classes (docs/connectors.md, "The errors")."""

from __future__ import annotations

from sqlalchemy import exc

from runner.connectors.base import AlreadyExists, ConnectorError, NotFound, ObjectError
from runner.sqlutil import driver_reason

# MariaDB/MySQL codes that are about the one statement, not the connection: a procedure's SIGNAL
# (1644), SIGNAL of a "no data" SQLSTATE (1643), a value out of range or of the wrong kind.
_MYSQL_OBJECT = {1644, 1366, 1264, 1265, 1292, 1406, 1048, 1364, 3819, 4025}
_MYSQL_NOT_FOUND = {1643}
# PostgreSQL SQLSTATEs for "no such row" a procedure may raise: no_data (02000), no_data_found (P0002).
_PG_NOT_FOUND = {"02000", "P0002"}


def code(error: exc.DBAPIError) -> int | str | None:
    """The driver's error code: SQLSTATE for psycopg, the MySQL error number for PyMySQL."""
    orig = error.orig
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):  # PyMySQL: the server's error number (its sqlstate is only the class)
        return args[0]
    return getattr(orig, "sqlstate", None) or None


def unique_violation(error: exc.IntegrityError) -> bool:
    """A duplicate key, as each driver says it: SQLSTATE 23505 (PostgreSQL), 1062 (MySQL/MariaDB),
    'UNIQUE constraint failed' (SQLite)."""
    return code(error) in ("23505", 1062) or "UNIQUE constraint failed" in str(error.orig)


def about_the_object(error: exc.DBAPIError) -> bool:
    """Whether a failed statement says something about this one object (it fails alone) rather than
    about the connection or the server (the batch is retried, or the pass stops)."""
    if error.connection_invalidated:
        return False
    if isinstance(error, exc.IntegrityError | exc.DataError | exc.ProgrammingError | exc.InternalError
                  | exc.NotSupportedError):
        return True
    if isinstance(error, exc.OperationalError):
        return code(error) in _MYSQL_OBJECT | _MYSQL_NOT_FOUND or "no such column" in str(error.orig) \
            or "has no column named" in str(error.orig)
    return False


def object_error(error: exc.StatementError, kind: str) -> ConnectorError:
    """The Result error for a statement the database refused for this object."""
    reason = driver_reason(error)
    if isinstance(error, exc.IntegrityError):
        cls = AlreadyExists if kind == "add" and unique_violation(error) else ObjectError
        return cls(f"rejected by the database: {reason}")
    if isinstance(error, exc.DBAPIError) and code(error) in _PG_NOT_FOUND | _MYSQL_NOT_FOUND:
        return NotFound(f"not there: {reason}")
    return ObjectError(f"bad value: {reason}" if isinstance(error, exc.DataError) else f"refused: {reason}")


def connect_hint(reason: str) -> str:
    """What to check when a connection is refused."""
    lowered = reason.casefold()
    if "password" in lowered or "access denied" in lowered or "authentication" in lowered \
            or ("role" in lowered and "does not exist" in lowered):
        return "check the user name and password in the url"
    if "does not exist" in lowered or "unknown database" in lowered:
        return "check the database name in the url"
    return "check that the server runs and that the host and port in the url are right"
