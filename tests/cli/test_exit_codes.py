"""Exit 5 when a system cannot be reached or refuses the credentials, 1 when rows are bad.

Monitoring pages for "the directory is down" differently from "six rows were bad": every command
that contacts a system (run, plan, apply, check, preview, validate --online, discover, serve at
start) exits 5 when it could not reach one, lost the connection, or was refused the login; a run
whose objects failed and whose systems all answered exits 1; a run with both exits 5. Real servers
on 127.0.0.1: slapd, a PostgreSQL cluster with password logins, scim2-server, and closed ports.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, group, person, write_hr
from servers.scim import ScimServer
from servers.slapd import Slapd

from runner.demo.postgresql import start as start_postgresql
from runner.demo.process import free_port
from runner.errors import EXIT_FAILED, EXIT_UNAVAILABLE

BASE = "dc=example,dc=org"
SECRET = "wrong-pw-7c1e9a"  # a wrong password; it must never be printed


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = Slapd.start(tmp_path_factory.mktemp("exit-codes") / "slapd")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def scim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimServer]:
    server = ScimServer.start(tmp_path_factory.mktemp("exit-codes-scim"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postgresql() -> Iterator[str]:
    """A PostgreSQL cluster of its own that checks passwords (scram-sha-256): the URL of a database
    whose role has a password; the machine's own server trusts every login, so it cannot refuse one."""
    folder = Path(tempfile.mkdtemp(prefix="provision-exit-codes-"))  # the postgres user must enter it
    databases = start_postgresql(folder, free_port())
    yield databases.target_url
    databases.drop()
    shutil.rmtree(folder, ignore_errors=True)


def closed_port() -> int:
    return free_port()  # nobody listens there: connections are refused at once


@pytest.fixture
def hr(tmp_path: Path) -> Path:
    people = [person(f"E{i}", "Ok", f"Person{i}") for i in range(1, 5)]
    return write_hr(tmp_path / "hr", people, [group("G1", "staff", ["E1", "E2"])])


def manifest(tmp_path: Path, hr: Path, target: str, object_block: str, mapping: str) -> Path:
    """A pipeline from the HR CSV files to one target: ``target`` is the connector block of
    ``app``, ``object_block`` the user type's target line, ``mapping`` its mapping (a file or a list)."""
    path = tmp_path / "exit.yaml"
    path.write_text(f"""version: 1
name: exit
state: "sqlite:///{tmp_path / 'state.db'}"
connectors:
  hr: {{type: csv, path: "{hr}", objects: {{groups: {{multi_valued: {{members: ";"}}}}}}}}
  app:
{target}
object_types:
  - name: user
    source: {{connector: hr, object: people, anchor: employee_id}}
{object_block}
    mapping:{mapping}
""")
    return path


def ldap_manifest(tmp_path: Path, hr: Path, url: str, password: str) -> Path:
    target = f"""    type: ldap
    url: "{url}"
    bind_dn: "cn=admin,{BASE}"
    password: "{password}"
    partitions: ["{BASE}"]
    objects: {{inetOrgPerson: {{}}}}"""
    block = f"""    target: {{connector: app, object: inetOrgPerson, name: "uid={{uid}},{BASE}"}}"""
    mapping = """
      - {target: uid, expression: "lower(split(email, '@')[0])"}
      - {target: cn, source: first_name}
      - {target: sn, source: last_name}"""
    return manifest(tmp_path, hr, target, block, mapping)


def sql_manifest(tmp_path: Path, hr: Path, url: str) -> Path:
    """The quickstart's users table and mapping, in the database at ``url``."""
    target = f"""    type: sql
    url: "{url}"
    create: true
    init_sql: {REPO / 'manifests' / 'sql' / 'quickstart-target.sql'}
    objects:
      users: {{table: users, key: id, generated_key: true}}"""
    block = "    target: {connector: app, object: users, correlate: [user_name]}"
    return manifest(tmp_path, hr, target, block, f" {REPO / 'mappings' / 'person-to-app-user.yaml'}")


def accounts_manifest(tmp_path: Path, hr: Path, url: str) -> Path:
    """An accounts table any database makes (PostgreSQL here), keyed by the employee id."""
    sql = tmp_path / "accounts.sql"
    sql.write_text("CREATE TABLE IF NOT EXISTS accounts (employee_id VARCHAR(20) PRIMARY KEY, login VARCHAR(200));\n")
    target = f"""    type: sql
    url: "{url}"
    init_sql: {sql}
    objects:
      accounts: {{table: accounts, key: employee_id}}"""
    mapping = """
      - {target: employee_id, source: employee_id}
      - {target: login, expression: "lower(email)"}"""
    return manifest(tmp_path, hr, target, "    target: {connector: app, object: accounts}", mapping)


def http_manifest(tmp_path: Path, hr: Path, kind: str, url: str, token: str) -> Path:
    objects = "{Users: {}}" if kind == "scim" else "{users: {path: /users}}"
    target = f"""    type: {kind}
    url: "{url}"
    auth: {{type: bearer, token: "{token}"}}
    max_retries: 0
    objects: {objects}"""
    block = f"    target: {{connector: app, object: {'Users' if kind == 'scim' else 'users'}, correlate: [userName]}}"
    mapping = """
      - {target: userName, expression: "lower(email)"}
      - {target: externalId, source: employee_id}"""
    return manifest(tmp_path, hr, target, block, mapping)


def assert_unavailable(result, *, secret: str = SECRET) -> None:
    assert result.code == EXIT_UNAVAILABLE, result.out + result.err
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err
    assert secret not in result.out + result.err


# ---- each kind of system ----------------------------------------------------------------------------


def test_an_ldap_server_nobody_answers_at_exits_5(provision, tmp_path: Path, hr: Path):
    path = ldap_manifest(tmp_path, hr, f"ldap://127.0.0.1:{closed_port()}", SECRET)
    result = provision("run", path, "--output", "json")
    assert_unavailable(result)
    summary = result.json()
    assert summary["status"] == "failed"
    assert summary["object_types"]["user"]["unavailable"] is True
    assert "cannot reach ldap://127.0.0.1:" in summary["object_types"]["user"]["error"]


def test_slapd_refusing_the_bind_password_exits_5(provision, tmp_path: Path, hr: Path, slapd: Slapd):
    path = ldap_manifest(tmp_path, hr, slapd.url, SECRET)
    result = provision("run", path)
    assert_unavailable(result)
    assert f"refused the credentials of cn=admin,{BASE}" in result.err
    # the same manifest with the right password runs: the code was the login's, not the manifest's
    path.write_text(path.read_text().replace(SECRET, slapd.root_password))
    assert provision("run", path).code == 0


def test_postgresql_refusing_the_password_exits_5(provision, tmp_path: Path, hr: Path, postgresql: str):
    import sqlalchemy as sa

    right = sa.make_url(postgresql)
    wrong = right.set(password=SECRET).render_as_string(hide_password=False)
    result = provision("run", accounts_manifest(tmp_path, hr, wrong), "--output", "json")
    assert_unavailable(result)
    assert "password authentication failed" in result.json()["object_types"]["user"]["error"]
    good = provision("run", accounts_manifest(tmp_path, hr, right.render_as_string(hide_password=False)))
    assert good.code == 0, good.err


@pytest.mark.parametrize("kind", ["scim", "rest"])
def test_an_http_service_nobody_answers_at_exits_5(provision, tmp_path: Path, hr: Path, kind: str):
    path = http_manifest(tmp_path, hr, kind, f"http://127.0.0.1:{closed_port()}/api", SECRET)
    result = provision("run", path, "--output", "json")
    assert_unavailable(result)
    assert "cannot reach http://127.0.0.1:" in result.json()["object_types"]["user"]["error"]


def test_a_scim_service_refusing_the_token_exits_5(provision, tmp_path: Path, hr: Path, scim: ScimServer):
    path = http_manifest(tmp_path, hr, "scim", scim.tenant(), SECRET)
    result = provision("run", path, "--output", "json")
    assert_unavailable(result)
    assert "HTTP 401" in result.json()["object_types"]["user"]["error"]
    path.write_text(path.read_text().replace(SECRET, scim.token))
    assert provision("run", path).code == 0


# ---- bad rows stay 1; both together is 5 -----------------------------------------------------------


def test_six_bad_rows_exit_1_and_a_down_system_besides_them_exits_5(provision, tmp_path: Path):
    people = [person(f"E{i}", "Ok", f"Person{i}") for i in range(1, 5)]
    people += [person(f"B{i}", "Bad", f"Row{i}", email="") for i in range(1, 7)]  # no user_name: each fails
    hr = write_hr(tmp_path / "hr", people, [group("G1", "staff", ["E1"])])
    path = sql_manifest(tmp_path, hr, f"sqlite:///{tmp_path / 'app.db'}")
    rows = provision("run", path, "--output", "json")
    assert rows.code == EXIT_FAILED, rows.err
    assert rows.json()["status"] == "partial" and rows.json()["object_types"]["user"]["failed"] == 6

    # the groups go to a directory that is down: the more urgent page wins
    text = path.read_text().replace("object_types:\n", f"""  directory:
    type: ldap
    url: "ldap://127.0.0.1:{closed_port()}"
    bind_dn: "cn=admin,{BASE}"
    password: "{SECRET}"
    partitions: ["{BASE}"]
    objects: {{groupOfNames: {{}}}}
object_types:
""") + f"""  - name: group
    source: {{connector: hr, object: groups, anchor: group_id}}
    target: {{connector: directory, object: groupOfNames, name: "cn={{cn}},{BASE}"}}
    mapping:
      - {{target: cn, source: name}}
"""
    path.write_text(text)
    both = provision("run", path, "--output", "json", "--retry-now")
    assert_unavailable(both)
    counts = both.json()["object_types"]
    assert counts["user"]["failed"] == 6 and "unavailable" not in counts["user"]
    assert counts["group"]["unavailable"] is True


# ---- every command that contacts a system -----------------------------------------------------------


def test_every_command_that_contacts_a_down_system_exits_5(provision, tmp_path: Path, hr: Path):
    path = ldap_manifest(tmp_path, hr, f"ldap://127.0.0.1:{closed_port()}", SECRET)
    for command in (("run",), ("plan",), ("check",), ("validate", "--online"), ("discover",),
                    ("preview", "--object-type", "user", "--anchor", "E1", "--apply")):
        for output in ("text", "json"):
            result = provision(*command, path, "--output", output)
            assert_unavailable(result)
            if output == "json":
                json.loads(result.out)  # one JSON document on stdout, whatever happened


def test_apply_exits_5_when_the_directory_went_down_after_the_plan(provision, tmp_path: Path, hr: Path):
    server = Slapd.start(tmp_path / "own-slapd")
    try:
        path = ldap_manifest(tmp_path, hr, server.url, server.root_password)
        plan = tmp_path / "change.plan"
        made = provision("plan", path, "--out", plan)
        assert made.code == 0, made.err
    finally:
        server.stop()
    assert_unavailable(provision("apply", plan))


def test_serve_exits_5_at_start_when_its_target_is_down(provision, tmp_path: Path):
    path = tmp_path / "served.yaml"
    path.write_text(f"""version: 1
name: served
state: "sqlite:///{tmp_path / 'state.db'}"
serve: {{token: "endpoint-token-5e1d"}}
connectors:
  entra: {{type: scim-endpoint}}
  directory:
    type: ldap
    url: "ldap://127.0.0.1:{closed_port()}"
    bind_dn: "cn=admin,{BASE}"
    password: "{SECRET}"
    partitions: ["{BASE}"]
    objects: {{inetOrgPerson: {{}}}}
object_types:
  - name: user
    source: {{connector: entra, object: Users, anchor: id}}
    target: {{connector: directory, object: inetOrgPerson, name: "uid={{uid}},{BASE}"}}
    mapping:
      - {{target: uid, source: userName}}
      - {{target: cn, source: userName}}
      - {{target: sn, source: userName}}
""")
    result = provision("serve", path, "--port", str(free_port()), "--output", "json")
    assert_unavailable(result)
    assert json.loads(result.out)["exit_code"] == EXIT_UNAVAILABLE
