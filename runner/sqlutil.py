"""Small SQLAlchemy helpers shared by the sql connector and the state store."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc

from runner import secrets
from runner.errors import missing_dependency

# What SQLAlchemy appends to a message: the statement, every bound value, and a link.
_DUMP = re.compile(r"\[SQL: |\[parameters: |\[generated in |\[cached since |\(Background on this error at: ")
# Raised by a column type's bind processor (SQLAlchemy's own or the driver's adapter) before
# anything reaches the database: the value does not fit the column's type.
_WRONG_TYPE = (TypeError, ValueError, LookupError, AttributeError, OverflowError)
_MAX_BOUND = 100_000  # values looked at when scrubbing; a page of exports is far fewer
_RAW_MIN = 8  # shorter values are masked only where the message quotes them: see _scrub


def sqlalchemy_url(url: str, base_dir: Path) -> sa.URL:
    """Parse ``url``; a relative SQLite file path resolves from ``base_dir`` (the manifest's folder)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database)
        if not path.is_absolute():
            parsed = parsed.set(database=str((base_dir / path).resolve()))
    return parsed


def driver_problem(url: sa.URL) -> str | None:
    """Why SQLAlchemy cannot open ``url`` on this installation, or None: a database it does not
    know (``redis://``), or a driver that is not installed, named with the extra that brings it
    (``pip install 'provision[postgres]'``). Said when the manifest is loaded, not at run time."""
    try:
        dialect = url.get_dialect()
    except exc.NoSuchModuleError:
        return (f"SQLAlchemy has no database {url.drivername!r}: use sqlite:///FILE, postgresql+psycopg://, "
                "mysql+pymysql:// or mariadb+pymysql://")
    try:
        dialect.import_dbapi()
    except ImportError as e:
        missing = missing_dependency(e)
        return str(missing) if missing else f"the driver of {url.drivername} cannot be imported: {e}"
    return None


def sqlite_savepoints(engine: sa.Engine) -> None:
    """Let pysqlite run SAVEPOINTs: SQLAlchemy's documented recipe (pysqlite's own BEGIN handling breaks them)."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN")


def shown_url(url: sa.URL | str) -> str:
    """``url`` for a message: the user-info password and secret query values (``?password=``) as ``***``.

    ``render_as_string(hide_password=True)`` alone leaves a password given as a query parameter
    in the open. A string is masked as written (rather than re-rendered) so a person recognises
    the URL they wrote, and so a password SQLAlchemy would split oddly ("u:p@ss@h") is still hidden.
    """
    text = url.render_as_string(hide_password=True) if isinstance(url, sa.URL) else str(url)
    return secrets.mask_url(text)


def driver_reason(error: BaseException) -> str:
    """What went wrong, in one line, without the statement or any bound value.

    ``str()`` of an SQLAlchemy error ends with ``[SQL: ...]`` and ``[parameters: ...]``: every
    value of the batch, initial passwords included. The driver's own message (``error.orig``)
    is used instead, and values the driver or a bind processor quotes in it ("could not convert
    string to float: '...'", MySQL's "Incorrect integer value: '...'") are masked too.
    """
    orig = getattr(error, "orig", None)
    if isinstance(error, exc.StatementError) and not isinstance(error, exc.DBAPIError) \
            and isinstance(orig, _WRONG_TYPE):
        reason = f"value of the wrong type for the column: {type(orig).__name__}: {_first_line(orig)}"
    else:
        reason = _first_line(orig if orig is not None else error)
    if isinstance(error, exc.StatementError):
        reason = _scrub(reason, error.params, error.statement or "")
    return secrets.redact(reason)


def _first_line(error: BaseException) -> str:
    """The first line of the message, cut before SQLAlchemy's statement dump; the type when empty."""
    text = _DUMP.split(str(error), maxsplit=1)[0].strip()
    return text.splitlines()[0].strip() if text else type(error).__name__


def _scrub(reason: str, params: Any, statement: str) -> str:
    """``reason`` with the bound values in ``params`` masked.

    A value is masked wherever the message quotes it (drivers quote the values they complain
    about), and unquoted when it is long enough not to be an ordinary word. Words of the
    statement (table and column names) are never masked: a group named "users" must not turn
    "NOT NULL constraint failed: users.user_name" into nonsense.
    """
    names = set(re.findall(r"\w+", statement))
    for value in sorted(set(_bound_texts(params)) - names - {""}, key=len, reverse=True):
        forms = {repr(value): repr(secrets.MASK), f"'{value}'": repr(secrets.MASK), f'"{value}"': '"***"'}
        if len(value) >= _RAW_MIN:
            forms |= {value: secrets.MASK, repr(value)[1:-1]: secrets.MASK}
        for form, mask in forms.items():
            reason = reason.replace(form, mask)
    return reason


def _bound_texts(params: Any) -> Iterator[str]:
    """Every text inside the bound parameters (rows of an executemany, JSON values, lists), capped."""
    stack: list[tuple[Any, int]] = [(params, 0)]
    seen = 0
    while stack and seen < _MAX_BOUND:
        value, level = stack.pop()
        seen += 1
        if isinstance(value, str):
            yield value
        elif isinstance(value, bytes | bytearray):
            yield bytes(value).decode("utf-8", "replace")
        elif level < 8 and isinstance(value, Mapping):
            stack += [(v, level + 1) for v in value.values()]
        elif level < 8 and isinstance(value, list | tuple | set | frozenset):
            stack += [(v, level + 1) for v in value]
