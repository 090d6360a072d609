"""A throwaway PostgreSQL database for ``provision demo postgresql``: made on the local server and
dropped at the end, or, where no server answers, on a cluster of its own that ``initdb`` makes in
the demo's folder and that is stopped and removed at the end.

The local server is the one ``PG_ADMIN_URL`` names (a SQLAlchemy or libpq URL of a role that may
create roles and databases), by default ``postgresql://postgres@127.0.0.1:5432/postgres``. The demo
never prints that URL (it may hold a real password): it makes a role of its own with a random
password and two databases it owns, one for the target and one for the state store, and prints
those. ``--port N`` always starts a cluster of its own, on that port.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.demo.process import NotInstalled, free_port, listening

ADMIN_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass
class Databases:
    """The demo's role and its two databases, and how to be rid of them."""

    target_url: str
    state_url: str
    where: str  # "the PostgreSQL at 127.0.0.1:5432" or "a PostgreSQL cluster of its own (pid N) on ..."
    pid: int | None  # the cluster's postmaster, when the demo started one
    drop: Callable[[], None]


def start(folder: Path, port: int | None) -> Databases:
    """Two fresh databases owned by a fresh role: on the local server, or on a cluster of our own."""
    _require_driver()
    why = f"--port {port} asks for a cluster of its own"
    if not port:
        admin = _sqlalchemy_url(os.environ.get("PG_ADMIN_URL") or ADMIN_DEFAULT)
        host = f"{admin.host or '127.0.0.1'}:{admin.port or 5432}"
        if _answers(admin):
            return _make(admin, f"the PostgreSQL at {host}", None, lambda: None)
        why = f"no PostgreSQL answers at {host}"
    return _own_cluster(folder, port or free_port(), why)


def _require_driver() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise NotInstalled("the PostgreSQL driver is not installed: pip install 'provision[postgres]'") from None


def _sqlalchemy_url(text: str) -> Any:
    import sqlalchemy as sa

    if text.startswith(("postgresql://", "postgres://")):
        text = "postgresql+psycopg://" + text.split("://", 1)[1]
    return sa.make_url(text)


def _answers(admin: Any) -> bool:
    import sqlalchemy as sa

    engine = sa.create_engine(admin, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return True
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def _make(admin: Any, where: str, pid: int | None, stop_server: Callable[[], None]) -> Databases:
    """A role with a random password and its databases ``<role>`` (target) and ``<role>_state``."""
    import sqlalchemy as sa

    role, password = f"provision_demo_{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
            for name in (role, f"{role}_state"):
                conn.exec_driver_sql(f"CREATE DATABASE {name} OWNER {role}")
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        stop_server()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise NotInstalled(f"cannot make the demo's databases on {where}: {reason} (PG_ADMIN_URL must name a "
                           "role that may create roles and databases)") from None
    base = admin.set(username=role, password=password)
    where = (f"the databases {role} and {role}_state on {where} "
             f"({'dropped' if pid is None else 'stopped and removed'} when the demo stops)")

    def drop() -> None:
        try:
            with engine.connect() as conn:
                for name in (role, f"{role}_state"):
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        finally:
            engine.dispose()
            stop_server()

    return Databases(base.set(database=role).render_as_string(hide_password=False),
                     base.set(database=f"{role}_state").render_as_string(hide_password=False), where, pid, drop)


# ---- a cluster of our own ------------------------------------------------------------------------------


def _bin(program: str, why: str) -> str:
    found = shutil.which(program) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"),
                                                      key=_version, reverse=True)), None)
    if not found:
        raise NotInstalled(f"{why}, and PostgreSQL's {program} is not installed to start one: apt-get install "
                           "postgresql, or set PG_ADMIN_URL to the admin URL of a running server")
    return found


def _version(path: str) -> tuple[int, ...]:
    return tuple(int(p) for p in Path(path).parts[-3].split(".") if p.isdigit())


def _as_server_user(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: as root, run them as the ``postgres`` user."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *command]


def _own_cluster(folder: Path, port: int, why: str) -> Databases:
    initdb, pg_ctl = _bin("initdb", why), _bin("pg_ctl", why)
    cluster = folder / "postgresql"
    cluster.mkdir()
    password = secrets.token_urlsafe(18)
    (cluster / "pwfile").write_text(password + "\n")
    if os.geteuid() == 0:  # the postgres user must reach and own its folder
        os.chmod(folder, 0o711)
        shutil.chown(cluster, "postgres", "postgres")
        shutil.chown(cluster / "pwfile", "postgres", "postgres")
    data, log = cluster / "data", cluster / "server.log"
    _run(_as_server_user([initdb, "-D", str(data), "-U", "postgres", "--auth-local=trust",
                          "--auth-host=scram-sha-256", f"--pwfile={cluster / 'pwfile'}", "--no-sync", "-E", "UTF8"]),
         "initdb")
    options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={cluster} "
               "-c fsync=off -c full_page_writes=off")
    _run(_as_server_user([pg_ctl, "-D", str(data), "-w", "-l", str(log), "-o", options, "start"]), "pg_ctl start")
    pid = int((data / "postmaster.pid").read_text().split()[0])

    def stop_server() -> None:
        subprocess.run(_as_server_user([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]), capture_output=True)
        for _ in range(100):
            if not _alive(pid):
                return
            time.sleep(0.05)

    admin = _sqlalchemy_url(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres").set(password=password)
    deadline = time.monotonic() + 15
    while not listening(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _make(admin, f"a PostgreSQL cluster of its own (pid {pid}) on 127.0.0.1:{port}", pid, stop_server)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout)[-2000:]}")
