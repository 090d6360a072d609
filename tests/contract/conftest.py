"""The connectors the contract suite runs against, and the hooks that generate their tests.

Each entry of :data:`HARNESSES` is one connector against a real system: CSV files, SQLite and the
jsondir plugin today, each in the test's ``tmp_path``. A connector that talks to a server (LDAP,
SCIM, REST, SOAP) adds one :class:`Harness` naming the fixture that starts its server
(``server="ldap_server"``); the fixture's value reaches ``make`` and ``prepare``.

Every test module of this folder asks for the fixture ``harness`` (or ``driver``, an open
connector) and states with ``@pytest.mark.contract(...)`` what it needs; ``pytest_generate_tests``
parametrises it over the harnesses whose connectors declare that, and nothing else. A test that
no connector qualifies for is deselected, never skipped.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from runner.connectors.base import OPERATION_KINDS, ConnectorContext
from runner.connectors.csvfile import CsvConnector
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


# ---- sql on SQLite: table mode, a generated key, a multi-valued child table ---------------------

SQL_DDL = """
-- the contract suite's SQLite target: users with a generated key, roles in a child table
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
    user_id INTEGER NOT NULL REFERENCES users (id),
    role    TEXT NOT NULL,
    PRIMARY KEY (user_id, role)
);
"""


def prepare_sql(tmp_path: Path, server: Any) -> None:
    (tmp_path / "schema.sql").write_text(SQL_DDL)


def make_sql(tmp_path: Path, page_size: int | None = None, server: Any = None) -> Made:
    config: dict[str, Any] = {
        "type": "sql",
        "url": "sqlite:///db/app.db",  # relative: resolves from the context's base_dir
        "init_sql": "schema.sql",
        "objects": {"users": {"table": "users", "key": "id", "generated_key": True,
                              "multi_valued": {"roles": {"table": "user_roles", "key": "user_id", "value": "role"}}}},
    }
    if page_size:
        config["page_size"] = page_size
    return Made(SqlConnector(config, ConnectorContext("app", tmp_path)), "users", None)


SQL = Harness(
    name="sql", make=make_sql, prepare=prepare_sql, sample=person, key="user_name", text="display_name",
    optional="phone", multi="roles", multi_value=role, disable={"active": 0},
    # No break_source yet: SqlConnector.read lets SQLAlchemy's OperationalError through (a dropped
    # table, a locked or vanished database) instead of raising ConnectionFailed. Add
    # break_source=drop_users_table here once it does.
)


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

HARNESSES: list[Harness] = [CSV, SQL, JSONDIR, JSONDIR_MINIMAL]


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
    config.addinivalue_line("markers", "contract(ops=(), read=False, caps=(), needs=()): what a contract test "
                            "needs a connector to declare (tests/contract/harness.py)")


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
        opened.append(Driver(harness, made, tmp_path))
        return opened[-1]

    yield connect
    for driver in opened:
        driver.connector.close()


@pytest.fixture
def driver(connect: Callable[..., Driver]) -> Driver:
    """The harness's connector, open."""
    return connect()

