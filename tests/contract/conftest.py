"""The connectors the contract suite runs against, and the hooks that generate their tests.

Each entry of :data:`HARNESSES` is one connector against a real system: CSV files, the sql
connector on SQLite, PostgreSQL and MariaDB, the jsondir plugin, SCIM on scim2-server, rest on
json-server and on a cursor API (tests/servers/restapp.py), soap on a spyne service
(tests/servers/soapservice.py), and LDAP on slapd. A connector that talks to a
server names the fixture that provides it (``server="postgresql_database"``); the fixture's value
reaches ``make`` and ``prepare``. The SQL servers are the machine's own (127.0.0.1, as
``scripts/test`` starts them): every test gets a database of its own, created for it and
dropped afterwards, and a server that cannot be reached fails the test (it is never skipped).

Every test module of this folder asks for the fixture ``harness`` (or ``driver``, an open
connector) and states with ``@pytest.mark.contract(...)`` what it needs; ``pytest_generate_tests``
parametrises it over the harnesses whose connectors declare that, and nothing else. A test that
no connector qualifies for is deselected, never skipped.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import queue
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from servers import ldap_contract

from runner.connectors.base import OPERATION_KINDS, ConnectorContext
from runner.connectors.files.csvtarget import CsvConnector  # the registered csv type: source and target
from runner.connectors.registry import connector_class
from runner.connectors.sql import SqlConnector

from .harness import Driver, Harness, Made, requirements

# ---- sample data shared by the built-in harnesses ------------------------------------------------


def person(i: int) -> dict[str, Any]:
    """The i-th sample person, in stored form; every third has no phone."""
    return {
        "user_name": f"user{i:03d}",
        "display_name": f"User Number {i}",
        "mail": f"user{i:03d}@example.org",
        "phone": None if i % 3 == 2 else f"+1555010{i:04d}",
        "roles": sorted({"staff", f"team-{i % 4}"}),
    }


def role(i: int) -> str:
    return f"role-{i:03d}"


# ---- csv: a source, read only -------------------------------------------------------------------


def make_csv(tmp_path: Path, page_size: int | None = None, server: Any = None) -> Made:
    config: dict[str, Any] = {"type": "csv", "path": "hr", "objects": {"people": {"multi_valued": {"roles": ";"}}}}
    if page_size:
        config["page_size"] = page_size
    return Made(CsvConnector(config, ConnectorContext("hr", tmp_path)), "people", None)


def seed_csv(made: Made, tmp_path: Path, objects: Sequence[Mapping[str, Any]]) -> None:
    """Write the objects as the HR export would: one row each, multi-valued cells joined by ';'."""
    columns = list(dict.fromkeys(k for o in objects for k in o)) or ["user_name"]
    folder = tmp_path / "hr"
    folder.mkdir(exist_ok=True)
    with open(folder / "people.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for o in objects:
            writer.writerow({k: ";".join(v) if isinstance(v, list) else ("" if v is None else v) for k, v in o.items()})


def break_csv(made: Made, tmp_path: Path) -> None:
    (tmp_path / "hr" / "people.csv").unlink(missing_ok=True)


CSV = Harness(
    name="csv", make=make_csv, sample=person, key="user_name", text="display_name", optional="phone",
    multi="roles", multi_value=role, seed=seed_csv, break_source=break_csv,
)


# ---- jsonl: a file written whole (snapshot) and read back ---------------------------------------


def make_jsonl(tmp_path: Path, page_size: int | None = None, server: Any = None) -> Made:
    config: dict[str, Any] = {"type": "jsonl", "path": "out", "objects": {"people": {"key": "user_name"}}}
    if page_size:
        config["page_size"] = page_size
    return Made(connector_class("jsonl")(config, ConnectorContext("out", tmp_path)), "people", None)


JSONL = Harness(name="jsonl", make=make_jsonl, sample=person, key="user_name", text="display_name",
                optional="phone", multi="roles", multi_value=role, disable={"active": False})


# ---- sql on SQLite, PostgreSQL and MariaDB: table mode, a generated key, a multi-valued child table --

# The same schema in each dialect: users with a generated key, roles in a child table. The foreign
# key is a table constraint because MariaDB ignores one written on the column.
SQL_DDL = {
    "sqlite": """
-- the contract suite's SQLite target
CREATE TABLE IF NOT EXISTS users (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_name    TEXT NOT NULL UNIQUE,
    display_name TEXT,
    mail         TEXT,
    phone        TEXT,
    title        TEXT,
    active       INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS user_roles (
    user_id INTEGER NOT NULL,
    role    TEXT NOT NULL,
    PRIMARY KEY (user_id, role),
    FOREIGN KEY (user_id) REFERENCES users (id)
);
""",
    "postgresql": """
-- the contract suite's PostgreSQL target
CREATE TABLE IF NOT EXISTS users (
    id           INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    user_name    VARCHAR(64) NOT NULL UNIQUE,
    display_name TEXT,
    mail         TEXT,
    phone        TEXT,
    title        TEXT,
    active       INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS user_roles (
    user_id INTEGER NOT NULL,
    role    VARCHAR(64) NOT NULL,
    PRIMARY KEY (user_id, role),
    FOREIGN KEY (user_id) REFERENCES users (id)
);
""",
    "mariadb": """
-- the contract suite's MariaDB target (InnoDB, the server's default collation)
CREATE TABLE IF NOT EXISTS users (
    id           INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_name    VARCHAR(64) NOT NULL UNIQUE,
    display_name VARCHAR(255),
    mail         VARCHAR(255),
    phone        VARCHAR(32),
    title        VARCHAR(255),
    active       INTEGER NOT NULL DEFAULT 1
) ENGINE = InnoDB;
CREATE TABLE IF NOT EXISTS user_roles (
    user_id INTEGER NOT NULL,
    role    VARCHAR(64) NOT NULL,
    PRIMARY KEY (user_id, role),
    FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE = InnoDB;
""",
}


@dataclass(frozen=True)
class SqlServer:
    """One of the machine's database servers: where it is, and how a database is made and dropped there."""

    label: str
    url: str  # without a database
    admin_database: str
    drop_suffix: str = ""

    def database_url(self, database: str) -> str:
        return f"{self.url}/{database}"


# Where the servers are: the machine's own by default; scripts/servers.sh exports these two when it
# starts throwaway clusters on free ports instead (a machine without them running).
POSTGRESQL_URL = os.environ.get("PROVISION_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
MARIADB_URL = os.environ.get("PROVISION_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")

SQL_SERVERS = {
    "postgresql": SqlServer("PostgreSQL", POSTGRESQL_URL, "postgres", drop_suffix=" WITH (FORCE)"),
    "mariadb": SqlServer("MariaDB", MARIADB_URL, ""),
}


class DatabasePool:
    """Fresh databases for one test each, made ahead of the tests on a thread of their own.

    PostgreSQL takes a quarter of a second to make a database (it copies and syncs a template),
    longer than most tests; made while earlier tests run, that wait leaves the suite's critical
    path. No database serves two tests: each is dropped after its test, the spare ones (at most
    ``ahead``) at the end of the session.
    """

    def __init__(self, admin: sa.Engine, server: SqlServer, ahead: int = 2):
        self.admin, self.server = admin, server
        self.ready: queue.Queue[str | BaseException] = queue.Queue(maxsize=ahead)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._make_ahead, name=f"{server.label} databases", daemon=True)
        self.thread.start()

    def _make_ahead(self) -> None:
        while not self.stopping.is_set():
            name = f"prov_contract_{secrets.token_hex(6)}"
            try:
                self._execute(f"CREATE DATABASE {name}")
            except BaseException as exc:  # handed to the test that waits for this database
                self.ready.put(exc)
                return
            while True:
                if self.stopping.is_set():
                    self.drop(name)
                    return
                with contextlib.suppress(queue.Full):
                    self.ready.put(name, timeout=0.1)
                    break

    def _execute(self, statement: str) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(statement)

    def take(self) -> str:
        """The URL of a database no test has used."""
        made = self.ready.get(timeout=60)
        if isinstance(made, BaseException):
            self.ready.put(made)  # every later test fails the same way
            pytest.fail(f"cannot create a database on {self.server.label}: {made}", pytrace=False)
        return self.server.database_url(made)

    def drop(self, name: str) -> None:
        self._execute(f"DROP DATABASE IF EXISTS {name}{self.server.drop_suffix}")

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)
        while True:
            try:
                spare = self.ready.get_nowait()
            except queue.Empty:
                return
            if isinstance(spare, str):
                self.drop(spare)


def sql_pool(dialect: str) -> Iterator[DatabasePool]:
    """The server's database pool, once per session; a server that does not answer fails every test
    that needs it, with what to do."""
    server = SQL_SERVERS[dialect]
    engine = sa.create_engine(server.database_url(server.admin_database), isolation_level="AUTOCOMMIT",
                              connect_args={"connect_timeout": 5})
    unreachable = None
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.DBAPIError as exc:
        unreachable = exc.orig
    if unreachable is not None:  # failed outside the except: the message alone, not a chain of tracebacks
        engine.dispose()
        pytest.fail(f"{server.label} is not reachable at {server.url} ({unreachable}); the contract suite runs "
                    "the sql connector against it: start it (scripts/test does)", pytrace=False)
    pool = DatabasePool(engine, server)
    yield pool
    pool.close()
    engine.dispose()


def sql_database(pool: DatabasePool) -> Iterator[str]:
    """A fresh, empty database for one test (its URL), dropped afterwards."""
    url = pool.take()
    try:
        yield url
    finally:
        pool.drop(sa.make_url(url).database or "")


@pytest.fixture(scope="session")
def postgresql_pool() -> Iterator[DatabasePool]:
    yield from sql_pool("postgresql")


@pytest.fixture(scope="session")
def mariadb_pool() -> Iterator[DatabasePool]:
    yield from sql_pool("mariadb")


@pytest.fixture
def postgresql_database(postgresql_pool: DatabasePool) -> Iterator[str]:
    yield from sql_database(postgresql_pool)


@pytest.fixture
def mariadb_database(mariadb_pool: DatabasePool) -> Iterator[str]:
    yield from sql_database(mariadb_pool)


def sql_preparer(dialect: str) -> Callable[[Path, Any], None]:
    def prepare(tmp_path: Path, server: Any) -> None:
        (tmp_path / "schema.sql").write_text(SQL_DDL[dialect])
    return prepare


def sql_maker(dialect: str, concurrency: int = 1) -> Callable[..., Made]:
    """``make`` for one dialect: SQLite in the test's folder, a server database from the fixture (a
    placeholder URL, never connected, when the suite only asks what the connector declares)."""
    def make(tmp_path: Path, page_size: int | None = None, server: Any = None) -> Made:
        if dialect == "sqlite":
            url = "sqlite:///db/app.db"  # relative: resolves from the context's base_dir
        else:
            url = server or SQL_SERVERS[dialect].database_url("contract_probe")
        config: dict[str, Any] = {
            "type": "sql",
            "url": url,
            "init_sql": "schema.sql",
            "objects": {"users": {"table": "users", "key": "id", "generated_key": True,
                                  "multi_valued": {"roles": {"table": "user_roles", "key": "user_id",
                                                             "value": "role"}}}},
        }
        if dialect == "sqlite":
            config["create"] = True  # the test's own fresh file
        if concurrency > 1:
            config["concurrency"] = concurrency
        if page_size:
            config["page_size"] = page_size
        return Made(SqlConnector(config, ConnectorContext("app", tmp_path)), "users", None)
    return make


def drop_sql_tables(made: Made, tmp_path: Path) -> None:
    """The tables go (a restore gone wrong, a wrong database): the next read must not look empty."""
    url = made.connector.config["url"]
    if url.startswith("sqlite"):
        with sqlite3.connect(tmp_path / "db" / "app.db") as conn:
            conn.executescript("DROP TABLE user_roles; DROP TABLE users;")
        return
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE user_roles")
        conn.exec_driver_sql("DROP TABLE users")
    engine.dispose()


def drop_sql_connections(made: Made, server: Any) -> None:
    """The server ends every session on the test's database but the one asking (a restart does that)."""
    url = sa.make_url(server)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if url.get_backend_name() == "postgresql":
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": url.database})
        else:
            ids = conn.execute(sa.text("SELECT id FROM information_schema.processlist "
                                       "WHERE db = :db AND id <> CONNECTION_ID()"), {"db": url.database})
            for (session,) in list(ids):
                conn.exec_driver_sql(f"KILL {int(session)}")
    engine.dispose()


SQL_COMMON: dict[str, Any] = dict(
    sample=person, key="user_name", text="display_name", optional="phone", multi="roles", multi_value=role,
    disable={"active": 0}, break_source=drop_sql_tables,
)

SQL = Harness(name="sql", make=sql_maker("sqlite"), prepare=sql_preparer("sqlite"), **SQL_COMMON)
# On the servers with 4 threads, as a manifest may configure them (target.concurrency): SQLite is one writer.
SQL_POSTGRESQL = Harness(name="sql-postgresql", make=sql_maker("postgresql", concurrency=4),
                         prepare=sql_preparer("postgresql"), server="postgresql_database",
                         drop_connections=drop_sql_connections, **SQL_COMMON)
SQL_MARIADB = Harness(name="sql-mariadb", make=sql_maker("mariadb", concurrency=4),
                      prepare=sql_preparer("mariadb"), server="mariadb_database",
                      drop_connections=drop_sql_connections, **SQL_COMMON)


# ---- jsondir, the example plugin: hierarchical, partitions, delta reads, passwords ----------------


def jsondir_name(attributes: Mapping[str, Any], parent: str | None) -> str:
    return f"uid={attributes['user_name']}" + (f",{parent}" if parent else "")


def jsondir_container(label: str) -> tuple[str, dict[str, Any], str]:
    return "orgunits", {"ou": label}, f"ou={label}"


def jsondir_password(made: Made, tmp_path: Path, anchor: str, password: str) -> bool:
    """The object file's stored hash matches (the plugin keeps sha256 hex, never the password)."""
    for path in (tmp_path / "tree").rglob("*.json"):
        doc = json.loads(path.read_text())
        if doc.get("anchor") == anchor:
            return doc.get("password_hash") == hashlib.sha256(password.encode()).hexdigest()
    raise AssertionError(f"no object file with anchor {anchor}")


def jsondir_maker(**options: Any) -> Callable[..., Made]:
    def make(tmp_path: Path, page_size: int | None = None, server: Any = None) -> Made:
        from provision_jsondir import JsonDirConnector  # the plugin, installed on its own

        config = {"type": "jsondir", "root": "tree", "objects": ["users", "orgunits"], **options}
        if page_size:
            config["page_size"] = page_size
        partitions = config.get("partitions") or [None]
        return Made(JsonDirConnector(config, ConnectorContext("directory", tmp_path)), "users", partitions[0])
    return make


JSONDIR_COMMON: dict[str, Any] = dict(
    sample=person, key="user_name", text="display_name", optional="phone", multi="roles", multi_value=role,
    name_of=jsondir_name, container=jsondir_container, disable={"active": False},
    verify_password=jsondir_password,
)

JSONDIR = Harness(
    name="jsondir",
    make=jsondir_maker(
        partitions=["sales", "research"], concurrency=4,
        normalizations={"mail": ["case_insensitive"], "phone": ["phone_digits"], "title": ["trim", "collapse_spaces"],
                        "city": ["remove_diacritics"], "manager": ["dn"]}),
    other_partition="research",
    values={"mail": "jsmith@example.org", "phone": "+15550123", "title": "Head of Sales",
            "city": "Sao Paulo", "manager": "cn=smith,ou=people"},
    **JSONDIR_COMMON,
)

# The same plugin configured without the optional capabilities: the suite then checks the other side
# of each (set_password instead of a password in the add, no replace, one operation at a time).
JSONDIR_MINIMAL = Harness(
    name="jsondir-minimal",
    make=jsondir_maker(password_in_first_pass=False, delete_add_as_replace=False, concurrency=1,
                       normalizations={}, fsync=False),
    **JSONDIR_COMMON,
)

# ---- scim against the real scim2-server: one server a session, an empty tenant for each test ---------


@pytest.fixture(scope="session")
def scim_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from servers.scim import ScimServer

    server = ScimServer.start(tmp_path_factory.mktemp("scim2-server"))
    yield server
    server.stop()


@pytest.fixture
def scim_tenant(scim_server: Any) -> str:
    """The base URL of an empty tenant of the session's scim2-server (its own Users and Groups)."""
    return scim_server.tenant()


def scim_person(i: int) -> dict[str, Any]:
    """The i-th sample user as scim2-server stores it; every third has no title."""
    return {
        "userName": f"user{i:03d}",
        "externalId": f"hr-{i:03d}",
        "displayName": f"User Number {i}",
        "name.givenName": f"Given{i}",
        "title": None if i % 3 == 2 else f"Title {i}",
        "emails": [f"user{i:03d}@example.org"],
        "department": f"Dept {i % 4}",
    }


def make_scim(tmp_path: Path, page_size: int | None = None, server: Any = None) -> Made:
    from servers.scim import TOKEN

    from runner.connectors.scim.connector import ScimConnector

    config: dict[str, Any] = {"type": "scim", "url": server or "http://127.0.0.1:9/probe",
                              "auth": {"type": "bearer", "token": TOKEN}, "objects": {"Users": {}},
                              "max_retries": 1}
    if page_size:
        config["page_size"] = page_size
    return Made(ScimConnector(config, ConnectorContext("saas", tmp_path)), "Users", None)


SCIM = Harness(
    name="scim", make=make_scim, server="scim_tenant", sample=scim_person, key="userName", text="displayName",
    optional="title", multi="emails", multi_value=lambda i: f"alias{i}@example.org", disable={"active": False},
    values={"userName": "jsmith"},
)

# ---- rest: json-server (page numbers, PATCH) and a cursor API (PUT only, idempotency keys), both real --------


@pytest.fixture(scope="session")
def contract_json_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from servers.jsonserver import JsonServer

    server = JsonServer.start(tmp_path_factory.mktemp("json-server"))
    yield server
    server.stop()


@pytest.fixture
def json_collections(contract_json_server: Any) -> str:
    """The base URL of the session's json-server, every collection emptied for this test."""
    contract_json_server.reset()
    return contract_json_server.url


@pytest.fixture(scope="session")
def contract_rest_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from servers.restapp import RestApp

    app = RestApp.start(tmp_path_factory.mktemp("restapp"))
    yield app
    app.stop()


@pytest.fixture
def rest_app_root(contract_rest_app: Any) -> str:
    """The root URL of the session's cursor API, emptied for this test."""
    contract_rest_app.reset()
    return contract_rest_app.url


def rest_person(i: int) -> dict[str, Any]:
    """The i-th sample record as json-server stores it; every third has no phone."""
    return {
        "userName": f"user{i:03d}",
        "displayName": f"User Number {i}",
        "email": f"user{i:03d}@example.org",
        "phone": None if i % 3 == 2 else f"+1555010{i:04d}",
        "roles": sorted({"staff", f"team-{i % 4}"}),
    }


def make_rest(tmp_path: Path, page_size: int | None = None, server: Any = None) -> Made:
    from servers.jsonserver import TOKEN

    from runner.connectors.rest.connector import RestConnector

    config: dict[str, Any] = {
        "type": "rest", "url": server or "http://127.0.0.1:9", "auth": {"type": "bearer", "token": TOKEN},
        "max_retries": 1, "concurrency": 4,
        "paging": {"style": "page", "page_param": "_page", "size_param": "_limit", "total_header": "X-Total-Count"},
        # json-server filters case-sensitively, the middleware holds userName unique case-insensitively
        "objects": {"users": {"path": "/users", "correlate": {"query": {"userName": "{userName}"}},
                              "normalizations": {"userName": ["case_insensitive"]}}},
    }
    if page_size:
        config["page_size"] = page_size
    return Made(RestConnector(config, ConnectorContext("api", tmp_path)), "users", None)


REST = Harness(
    name="rest", make=make_rest, server="json_collections", sample=rest_person, key="userName",
    text="displayName", optional="phone", multi="roles", multi_value=role, disable={"active": False},
    values={"userName": "jsmith"},
)


def cursor_account(i: int) -> dict[str, Any]:
    """The i-th sample account of the cursor API, in attribute form; every third has no title."""
    return {
        "login": f"user{i:03d}",
        "first_name": f"Given{i}",
        "email": f"user{i:03d}@example.org",
        "title": None if i % 3 == 2 else f"Title {i}",
        "roles": sorted({"staff", f"team-{i % 4}"}),
        "status": "ACTIVE",
    }


def make_rest_cursor(tmp_path: Path, page_size: int | None = None, server: Any = None) -> Made:
    from servers import restapp

    from runner.connectors.rest.connector import RestConnector

    root = server or "http://127.0.0.1:9"
    config: dict[str, Any] = {
        "type": "rest", "url": f"{root}/api/v2", "max_retries": 1, "concurrency": 4,
        "auth": {"type": "oauth2", "token_url": f"{root}/oauth/token", "client_id": restapp.CLIENT_ID,
                 "client_secret": restapp.CLIENT_SECRET},
        "records": "data", "idempotency_header": "Idempotency-Key",
        "paging": {"style": "cursor", "size_param": "limit", "next": "meta.next_cursor"},
        "answers": {"exists": [{"status": 409}, {"status": 400, "when": "error.code == 'duplicate'"}]},
        "objects": {"accounts": {
            "body": {"login": "{login}", "profile": {"firstName": "{first_name}", "email": "{email}"},
                     "title": "{title}", "roles": "{roles}", "status": "{status}"},
            "update": {"method": "PUT"},
            "correlate": {"query": {"login": "{login}"}},
            "normalizations": {"login": ["case_insensitive"]},
        }},
    }
    if page_size:
        config["page_size"] = page_size
    return Made(RestConnector(config, ConnectorContext("saas", tmp_path)), "accounts", None)


REST_CURSOR = Harness(
    name="rest-cursor", make=make_rest_cursor, server="rest_app_root", sample=cursor_account, key="login",
    text="first_name", optional="title", multi="roles", multi_value=role, disable={"status": "SUSPENDED"},
    values={"login": "jsmith"},
)

# ---- soap: the spyne user-management service (tests/servers/soapservice.py), one a session, emptied per test ----


@pytest.fixture(scope="session")
def contract_soap_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from servers.soapservice import SoapService

    service = SoapService.start(tmp_path_factory.mktemp("soapservice"))
    yield service
    service.stop()


@pytest.fixture
def soap_wsdl(contract_soap_service: Any) -> str:
    contract_soap_service.reset()
    return contract_soap_service.wsdl


def soap_person(i: int) -> dict[str, Any]:
    """The i-th sample user as the service stores it; every third has no e-mail."""
    return {"userName": f"user{i:03d}", "givenName": f"Given{i}", "familyName": f"Family {i}",
            "email": None if i % 3 == 2 else f"user{i:03d}@example.org"}


def make_soap(tmp_path: Path, page_size: int | None = None, server: Any = None) -> Made:
    from servers.soapservice import PASSWORD, USER

    from runner.connectors.soap.connector import SoapConnector

    fields = {"userName": "{userName}", "givenName": "{givenName}", "familyName": "{familyName}",
              "email": "{email}", "active": "{active}"}
    config: dict[str, Any] = {
        "type": "soap", "wsdl": server or "http://127.0.0.1:9/?wsdl", "max_retries": 1, "concurrency": 4,
        "auth": {"type": "basic", "username": USER, "password": PASSWORD},
        "faults": {"exists": [{"code": "Client.AlreadyExists"}], "not_found": [{"code": "Client.NotFound"}]},
        "objects": {"users": {
            "id": "userName", "list": {"operation": "listUsers"}, "clear_as": "",
            "paging": {"style": "offset", "offset_param": "offset", "size_param": "limit"},
            "normalizations": {"userName": ["case_insensitive"]},
            "get": {"operation": "getUser", "args": {"userName": "{id}"}},
            "correlate": {"operation": "getUser", "args": {"userName": "{userName}"}},
            "create": {"operation": "createUser", "args": {"user": fields}},
            "update": {"operation": "updateUser", "args": {"user": {**fields, "userName": "{id}"}}},
            "disable": {"operation": "setUserActive", "args": {"userName": "{id}", "active": False}},
            "delete": {"operation": "deleteUser", "args": {"userName": "{id}"}},
        }},
    }
    if page_size:
        config["page_size"] = page_size
    return Made(SoapConnector(config, ConnectorContext("svc", tmp_path)), "users", None)


SOAP = Harness(
    name="soap", make=make_soap, server="soap_wsdl", sample=soap_person, key="userName", text="givenName",
    optional="email", disable={"active": False}, values={"userName": "jsmith"},
)

# ---- ldap: OpenLDAP slapd, one per session, both suffixes emptied per test (tests/servers/ldap_contract.py) ----


@pytest.fixture(scope="session")
def ldap_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    for server in ldap_contract.session_server(tmp_path_factory.mktemp("slapd")):
        ldap_contract.remember(server)
        yield server


@pytest.fixture
def ldap_partitions(ldap_server: Any) -> Any:
    return ldap_contract.fresh_partitions(ldap_server)


LDAP = Harness(
    name="ldap", make=ldap_contract.make, server="ldap_partitions", sample=ldap_contract.person,
    key="employeeNumber", text="displayName", optional="telephoneNumber", multi="mail",
    multi_value=ldap_contract.alias, name_of=ldap_contract.name_of, container=ldap_contract.container,
    disable={"employeeType": "disabled"}, other_partition="dc=other,dc=org",
    break_source=ldap_contract.break_source, verify_password=ldap_contract.bind_works,
    values={"manager": "cn=smith,ou=people"}, drop_connections=ldap_contract.drop_connections,
)

HARNESSES: list[Harness] = [CSV, JSONL, SQL, SQL_POSTGRESQL, SQL_MARIADB, JSONDIR, JSONDIR_MINIMAL, SCIM, REST, REST_CURSOR, SOAP,
                             LDAP]


# ---- generating the tests -----------------------------------------------------------------------


class _NoHarness:
    """Stands in when no connector qualifies for a test; such items are deselected, not skipped."""

    name = "no-connector"


NO_HARNESS: Any = _NoHarness()

# Per-harness cases for tests that take one more parameter besides the harness.
CASES: dict[str, Callable[[Harness], list[Any]]] = {
    # each operation kind the connector lists
    "kind": lambda h: sorted(h.capabilities.operations),
    # each kind a writable connector does not list
    "refused_kind": lambda h: [k for k in OPERATION_KINDS if k not in h.capabilities.operations]
    if h.capabilities.operations else [],
    # each declared normalization, as (attribute, steps)
    "normalization": lambda h: sorted(h.capabilities.normalizations.items()),
}


def _case_id(case: Any) -> str:
    return case[0] if isinstance(case, tuple) else str(case)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "contract(ops=(), read=False, can=(), caps=(), needs=()): what a contract "
                            "test needs a connector to declare (tests/contract/harness.py)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "harness" not in metafunc.fixturenames:
        return
    spec = requirements(metafunc.definition.iter_markers("contract"))
    chosen = [h for h in HARNESSES if h.qualifies(spec)]
    extra = next((name for name in CASES if name in metafunc.fixturenames), None)
    if extra is None:
        metafunc.parametrize("harness", chosen or [NO_HARNESS], ids=lambda h: h.name)
        return
    cases = [(h, case) for h in chosen for case in CASES[extra](h)]
    metafunc.parametrize(("harness", extra), cases or [(NO_HARNESS, None)],
                         ids=[f"{h.name}-{_case_id(c)}" for h, c in cases] or ["no-connector"])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    dropped = [i for i in items if getattr(i, "callspec", None) and i.callspec.params.get("harness") is NO_HARNESS]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]


# ---- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def connect(harness: Harness, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Driver]]:
    """``connect(page_size=None)``: build and open the harness's connector; all are closed afterwards."""
    server = request.getfixturevalue(harness.server) if harness.server else None
    if harness.prepare is not None:
        harness.prepare(tmp_path, server)
    opened: list[Driver] = []

    def connect(page_size: int | None = None) -> Driver:
        made = harness.make(tmp_path, page_size=page_size, server=server)
        made.connector.open()
        opened.append(Driver(harness, made, tmp_path, server))
        return opened[-1]

    yield connect
    for driver in opened:
        driver.connector.close()


@pytest.fixture
def driver(connect: Callable[..., Driver]) -> Driver:
    """The harness's connector, open."""
    return connect()

