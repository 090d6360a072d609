"""Errors named for what the caller should do with them.

User errors (a broken manifest, a held lock, an unreachable server) are ProvisionError
subclasses: the CLI prints their message and maps them to an exit code, never a traceback.
Connector errors live in ``runner.connectors.base``, beside the interface they belong to; the
engine turns one that stops a command into one of these (``SystemUnavailable`` -> :class:`Unavailable`).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

# Exit codes: the one table is docs/operations.md, "Exit codes"; every command uses these.
EXIT_OK = 0
EXIT_FAILED = 1  # some objects failed, or a pass stopped for another reason (a CSV export cut short)
EXIT_INVALID = 2  # invalid manifest or usage, or an optional package missing: nothing ran
EXIT_STOPPED = 3  # the lock, a safety rule (deletion guard, quarantine), the time limit
EXIT_ENVIRONMENT = 4  # the machine: the state store locked, damaged or down; a full disk
EXIT_UNAVAILABLE = 5  # a system could not be reached, the connection was lost, or it refused the credentials
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE, as the shell reports a tool killed by it


@dataclass(frozen=True)
class Problem:
    """One problem in a manifest, located as precisely as we can."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.path or '(top)'}: {self.message}"


class ProvisionError(Exception):
    """A user-facing error: the message says what went wrong and what to do."""

    exit_code = EXIT_FAILED


class ManifestError(ProvisionError):
    """The manifest (or a file it includes) is invalid. Nothing ran."""

    exit_code = EXIT_INVALID

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.path))
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(ProvisionError):
    """The command line asked for something that does not exist (exit 2)."""

    exit_code = EXIT_INVALID


class MissingDependency(UsageError):
    """An optional package this manifest or command needs is not installed (exit 2, like a usage
    error: a retry cannot help, a person must install it). The message names the extra that
    brings it (``pip install 'provision[postgres]'``); :func:`missing_dependency` builds it."""


# The optional dependencies (pyproject.toml's extras): the module a driver or a command imports ->
# (the extra that brings it, what needs it).
EXTRAS = {
    "psycopg": ("postgres", "PostgreSQL (postgresql+psycopg://)"),
    "pymysql": ("mysql", "MySQL and MariaDB (mysql+pymysql://, mariadb+pymysql://)"),
    "starlette": ("serve", "provision serve"),
    "uvicorn": ("serve", "provision serve"),
    "jwt": ("serve", "provision serve"),
    "prometheus_client": ("serve", "provision serve"),
    "scim2_server": ("demo", "provision demo scim"),
    "spyne": ("demo", "provision demo soap"),
}
# Drivers SQLAlchemy picks for a URL without one, which no extra brings: what to write instead.
OTHER_DRIVERS = {
    "psycopg2": "write postgresql+psycopg:// in the URL and pip install 'provision[postgres]' "
                "(or pip install psycopg2-binary for postgresql+psycopg2://)",
    "MySQLdb": "write mysql+pymysql:// (or mariadb+pymysql://) in the URL and pip install 'provision[mysql]' "
               "(or pip install mysqlclient for mysql+mysqldb://)",
}


def missing_dependency(exc: ImportError, what: str = "") -> MissingDependency | None:
    """The :class:`MissingDependency` an ImportError of an optional package stands for, or None
    when the module is not one of them (then it is a bug or a broken installation).
    ``what`` names who needed it (a connector, the state store) for the message."""
    module = (exc.name or "").split(".")[0]
    who = f"{what}: " if what else ""
    if module in EXTRAS:
        extra, needs = EXTRAS[module]
        return MissingDependency(f"{who}{needs} needs the '{extra}' extra, which is not installed (no module "
                                 f"named {module!r}): pip install 'provision[{extra}]'")
    if module in OTHER_DRIVERS:
        return MissingDependency(f"{who}the driver module {module!r} is not installed: {OTHER_DRIVERS[module]}")
    return None


class StoppedError(ProvisionError):
    """The run was stopped before changing anything: the lock is held, or a safety rule tripped."""

    exit_code = EXIT_STOPPED


class Unavailable(ProvisionError):
    """A system the command needs could not be reached, the connection to it was lost, or it
    refused the credentials (exit 5): "the directory is down", which monitoring pages for
    differently from "some rows were bad" (exit 1). Nothing is wrong with the manifest or the data."""

    exit_code = EXIT_UNAVAILABLE


class StateError(ProvisionError):
    """An environment or state problem (exit 4): the state store cannot be opened, is locked by
    another process, read-only, damaged or from an incompatible version, or a disk is full.
    Nothing is wrong with the manifest: fix the machine and run again; what was committed is kept."""

    exit_code = EXIT_ENVIRONMENT


# SQLite result codes (``sqlite3.Error.sqlite_errorname``, primary part) that mean the machine,
# not provision or the manifest, is in the way; each with what to do about it.
_SQLITE_PROBLEMS = {
    "SQLITE_BUSY": "is locked by another process; provision waited {wait:g} s for it. Another provision "
                   "command on the same state store, or a tool holding it open (a sqlite3 shell, a backup), "
                   "has a write transaction on it: let that finish or stop it, and run again "
                   "(PROVISION_STATE_BUSY_TIMEOUT sets how many seconds to wait)",
    "SQLITE_FULL": "cannot grow: the disk (or the quota) is full. Free some space there, or raise the "
                   "quota, and run again; what was committed before is kept and the next run carries on",
    "SQLITE_READONLY": "is read-only for the user running provision: give that user write access to the "
                       "file, its -wal and -shm files and its folder (or point state: at a writable place)",
    "SQLITE_CANTOPEN": "cannot be opened: check that its folder exists and that the user running provision "
                       "may read and write the file and the folder",
    "SQLITE_PERM": "cannot be opened: permission denied; give the user running provision read and write "
                   "access to the file and its folder",
    "SQLITE_IOERR": "cannot be read or written (a disk I/O error): check the disk and the file system (full, "
                    "read-only, failing, a network share gone) and run again",
    "SQLITE_NOTADB": "is not a SQLite database (or it is encrypted): check that state: points at the right "
                     "file; restore the state store from a backup if it was overwritten",
    "SQLITE_CORRUPT": "is damaged (database disk image is malformed): restore it from a backup "
                      "(sqlite3's .recover may save what is left)",
}
_SQLITE_PROBLEMS["SQLITE_LOCKED"] = _SQLITE_PROBLEMS["SQLITE_BUSY"]
_SQLITE_PROBLEMS["SQLITE_AUTH"] = _SQLITE_PROBLEMS["SQLITE_PERM"]


def state_problem(original: BaseException, where: str, reason: str, wait: float,
                  operational: bool) -> StateError | None:
    """The :class:`StateError` a driver error of the state store stands for, or None when it is
    not an environment problem (a constraint, a query that is wrong: a bug, reported as such).

    ``where`` names the store (the file of a SQLite store), ``reason`` is the driver's message
    without statement or values, ``wait`` the busy timeout in seconds, ``operational`` whether
    the driver classed the error as operational (lost connection, server gone, disk full...)."""
    name = getattr(original, "sqlite_errorname", None)
    if isinstance(name, str):
        primary = "_".join(name.split("_")[:2])  # SQLITE_BUSY_SNAPSHOT -> SQLITE_BUSY
        advice = _SQLITE_PROBLEMS.get(primary)
        if advice is None:
            return None
        return StateError(f"the state store {where} {advice.format(wait=wait)} ({reason})")
    if getattr(original, "sqlstate", None) == "42501" or (original.args[:1] and original.args[0] in (1142, 1143, 1044)):
        # PostgreSQL's insufficient_privilege; MariaDB's command, column or database denied
        return StateError(f"the state store {where} refused a write: {reason}; the user provision connects as "
                          "needs SELECT, INSERT, UPDATE and DELETE on the state tables, for a plan too (it "
                          "writes in a transaction it rolls back): grant them, or plan from a copy")
    if operational:  # a server state store: the connection, the server or its disk
        return StateError(f"the state store {where} failed: {reason}; check that the server is up and has "
                          "space, and run again (what was committed is kept; the next run carries on)")
    return None


class Interrupted(ProvisionError):
    """SIGINT or SIGTERM: the run recorded what was in flight and stopped (exit 128 + signal).

    ``signum`` 0 is the run's own time limit (``run --time-limit``): exit 3, like other stops."""

    def __init__(self, signum: int, time_limit: str | None = None):
        self.signum = signum
        self.exit_code = 128 + signum if signum else EXIT_STOPPED
        why = f"the time limit ({time_limit})" if not signum else signal.Signals(signum).name
        super().__init__(f"stopped by {why}: what was sent is recorded; the next run carries on from here")
