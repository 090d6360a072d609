"""Passwords in URLs, and values bound to SQL statements, never reach what provision prints.

A URL can carry its password in the user-info (``postgresql://u:pw@host/db``) or in the query
string (``?password=pw``: libpq, the MySQL drivers and ODBC accept it). SQLAlchemy's
``render_as_string(hide_password=True)`` hides only the first. And ``str()`` of an SQLAlchemy
error lists every bound value of the statement: a batch of adds carries initial passwords.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from runner import secrets
from runner.sqlutil import driver_reason, shown_url, sqlalchemy_url

SENTINEL = "Sentinel-Initial-Pa55w0rd-7d1e"


# ---- what a URL looks like in a message ---------------------------------------------------------


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://u:secret@db.example.org/app", "postgresql://u:***@db.example.org/app"),
    ("postgresql+psycopg://u:p@ss@h:5432/app", "postgresql+psycopg://u:***@h:5432/app"),  # an "@" in the password
    ("mysql+pymysql://u:pa/ss@h/app", "mysql+pymysql://u:***@h/app"),  # SQLAlchemy reads "pa/ss" as the password
    ("redis://:onlypass@h:6379/0", "redis://:***@h:6379/0"),
    ("postgresql://h/app?sslmode=require&password=secret", "postgresql://h/app?sslmode=require&password=***"),
    ("postgresql://h/app?PASSWORD=a&Passwd=b&pwd=c&TOKEN=d", "postgresql://h/app?PASSWORD=***&Passwd=***&pwd=***&TOKEN=***"),
    ("https://api.example.org/v1?secret=a&api_key=b&apikey=c&access_token=d",
     "https://api.example.org/v1?secret=***&api_key=***&apikey=***&access_token=***"),
    ("https://h/oauth?client_secret=a&refresh_token=b", "https://h/oauth?client_secret=***&refresh_token=***"),
    ("mssql+pyodbc:///?odbc_connect=DRIVER%3D%7BODBC%7D%3BUID%3Du%3BPWD%3Ds3cr%3Bx%3D1",
     "mssql+pyodbc:///?odbc_connect=DRIVER%3D%7BODBC%7D%3BUID%3Du%3BPWD%3D***%3Bx%3D1"),  # ODBC string, encoded
    ("mssql+pyodbc://h/db?driver=x;PWD=s3cr;UID=u", "mssql+pyodbc://h/db?driver=x;PWD=***;UID=u"),
    ("postgresql://u:secret@h/app?password=other", "postgresql://u:***@h/app?password=***"),
], ids=lambda v: v[:40])
def test_mask_url_hides_every_password_a_url_can_carry(url, shown):
    assert secrets.mask_url(url) == shown


@pytest.mark.parametrize("url", [
    "sqlite:////var/lib/provision/app.db", "sqlite:///C:/data/app.db", "postgresql://postgres@127.0.0.1:5432/db",
    "http://host:8080/search?email=ada@example.org", "https://h/x?sort=name&page=2", "https://h/?tokens_used=",
])
def test_mask_url_leaves_urls_without_passwords_as_written(url):
    assert secrets.mask_url(url) == url


def test_redact_masks_url_passwords_in_any_text_even_unregistered():
    """A URL in a driver's message or a URL built at run time was never seen by the loader."""
    text = ("cannot connect to postgresql://svc:runtime-pw-1@db/app?password=runtime-pw-2: refused; "
            "(state: sqlite:///s.db?token=runtime-pw-3)")
    shown = secrets.redact(text)
    assert "runtime-pw" not in shown
    assert shown == ("cannot connect to postgresql://svc:***@db/app?password=***: refused; "
                     "(state: sqlite:///s.db?token=***)")  # the closing parenthesis survives


def test_redact_keeps_json_output_parseable():
    out = json.dumps({"state": "postgresql://h/db?password=pw-in-json-9", "url": "mysql://u:pw-in-json-8@h/db"})
    masked = secrets.redact(out)
    assert json.loads(masked) == {"state": "postgresql://h/db?password=***", "url": "mysql://u:***@h/db"}


def test_shown_url_masks_the_query_password_render_as_string_leaves(tmp_path: Path):
    parsed = sqlalchemy_url("postgresql+psycopg://svc:pw%40one@db:5432/app?sslmode=require&password=pw-two",
                            tmp_path)
    assert "pw-two" in parsed.render_as_string(hide_password=True)  # why shown_url exists
    shown = shown_url(parsed)
    assert "pw" not in shown.replace("password", "")
    assert shown == "postgresql+psycopg://svc:***@db:5432/app?password=***&sslmode=require"
    assert shown_url("postgresql://svc:p@ss@db/app?token=t0k") == "postgresql://svc:***@db/app?token=***"


# ---- end to end: the state store's and the sql connector's URLs ---------------------------------

MANIFEST = """\
version: 1
name: urls
state: "sqlite:///{tmp}/state.db?password={state_pw}&Token={state_token}"
connectors:
  hr: {{type: csv, path: data}}
  app:
    type: sql
    url: "sqlite:///{tmp}/app.db?sslpassword={conn_pw}&API_KEY={conn_key}"
    create: true
    objects:
      users: {{table: users, key: user_name}}
object_types:
  - name: user
    source: {{connector: hr, object: people, anchor: employee_id}}
    target: {{connector: app, object: users}}
    mapping:
      - {{target: user_name, source: email}}
"""
URL_SECRETS = {"state_pw": "st4te-pw-91c", "state_token": "st4te-tok-2b7", "conn_pw": "c0nn-pw-5e0",
               "conn_key": "c0nn-key-a44"}


@pytest.fixture
def url_manifest(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "people.csv").write_text("employee_id,email\nE1,ada@example.org\n")
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST.format(tmp=tmp_path, **URL_SECRETS))
    return manifest


def assert_no_url_secret(text: str) -> None:
    for value in URL_SECRETS.values():
        assert value not in text
        assert value[:6] not in text  # not even a part of one


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # pysqlite ignores the query arguments
def test_status_shows_the_state_store_url_masked(provision, url_manifest: Path):
    text = provision("status", url_manifest)
    assert text.code == 0, text.err
    state = next(line for line in text.out.splitlines() if "(state: " in line)
    assert state.endswith(")") and "password=***" in state and "Token=***" in state, state
    as_json = provision("status", url_manifest, "--output", "json")
    state = json.loads(as_json.out)["state"]
    assert "password=***" in state and "Token=***" in state, state
    assert_no_url_secret(text.out + text.err + as_json.out + as_json.err)


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
def test_a_failing_target_connection_shows_its_url_masked(provision, url_manifest: Path):
    """The target has no users table: the message names the URL, with its query secrets masked."""
    result = provision("run", url_manifest, "--output", "json")
    assert result.code != 0
    error = result.json()["object_types"]["user"]["error"]
    assert "app.db?" in error and "sslpassword=***" in error and "API_KEY=***" in error, error
    assert "users" in error.split("API_KEY=***", 1)[1]  # and what is wrong with it
    assert_no_url_secret(result.out + result.err)


def test_a_literal_url_password_is_masked_where_the_value_appears_alone(validate_in_process, tmp_path: Path):
    """Written in the manifest without ${env:}, the URL's password is still known to be one."""
    text = ('version: 1\nname: lit\nstate: "postgresql://svc:lit-pw-66e2@db/s?password=lit-pw-77f3"\n'
            'connectors: {x: {type: "lit-pw-77f3"}, y: {type: "lit-pw-66e2"}}\nobject_types: []\n')
    shown = "\n".join(validate_in_process(tmp_path, text))
    assert shown.count("unknown connector type '***'") == 2, shown
    assert "lit-pw" not in shown


@pytest.fixture
def validate_in_process(provision):
    def run(folder: Path, text: str) -> list[str]:
        manifest = folder / "lit.yaml"
        manifest.write_text(text)
        result = provision("validate", manifest)
        assert result.code == 2 and "Traceback" not in result.err, result.err
        return result.err.splitlines()

    return run


# ---- driver errors: what went wrong, never the values -------------------------------------------


@pytest.fixture
def users() -> Iterator[tuple[sa.Engine, sa.Table]]:
    """A real SQLite table with a NOT NULL, a UNIQUE and typed columns."""
    engine = sa.create_engine("sqlite://")
    table = sa.Table("users", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("user_name", sa.Text, nullable=False, unique=True), sa.Column("initial_password", sa.Text),
                     sa.Column("salary", sa.Numeric), sa.Column("active", sa.Boolean),
                     sa.Column("kind", sa.Enum("staff", "contractor", validate_strings=True)),
                     sa.Column("hired", sa.DateTime))
    table.metadata.create_all(engine)
    yield engine, table
    engine.dispose()


def failed_insert(engine: sa.Engine, table: sa.Table, rows: list[dict]) -> sa.exc.StatementError:
    """The error of one executemany of ``rows``; checks it really carries the sentinel."""
    with pytest.raises(sa.exc.StatementError) as caught, engine.begin() as conn:
        conn.execute(table.insert(), rows)
    assert SENTINEL in str(caught.value), "the raw error must hold the value, or this test proves nothing"
    return caught.value


@pytest.mark.parametrize(("rows", "says"), [
    ([{"user_name": "ada", "initial_password": SENTINEL}, {"user_name": None, "initial_password": SENTINEL}],
     "NOT NULL constraint failed: users.user_name"),
    ([{"user_name": "users", "initial_password": SENTINEL}, {"user_name": "users", "initial_password": SENTINEL}],
     "UNIQUE constraint failed: users.user_name"),  # a value equal to the table's name does not garble it
    ([{"user_name": "ben", "initial_password": [SENTINEL, "x"]}, {"user_name": "cy", "initial_password": SENTINEL}],
     "type 'list' is not supported"),
], ids=["not null", "unique", "list bound to a column"])
def test_database_errors_say_what_is_wrong_without_bound_values(users, rows, says):
    engine, table = users
    error = failed_insert(engine, table, rows)
    reason = driver_reason(error)
    assert reason == reason.strip() and "\n" not in reason
    assert says in reason
    assert SENTINEL not in reason and "[parameters:" not in reason and "[SQL:" not in reason


@pytest.mark.parametrize(("column", "says"), [
    ("salary", "value of the wrong type for the column: ValueError: could not convert string to float: '***'"),
    ("active", "value of the wrong type for the column: TypeError: Not a boolean value: '***'"),
    ("kind", "value of the wrong type for the column: LookupError: '***' is not among the defined enum values"),
    ("hired", "value of the wrong type for the column: TypeError: SQLite DateTime type only accepts Python"),
])
def test_a_value_the_column_type_refuses_is_named_by_type_not_by_value(users, column, says):
    """Bind processors raise plain TypeError/ValueError, and quote the value they refuse."""
    engine, table = users
    error = failed_insert(engine, table, [{"user_name": "ada", "initial_password": SENTINEL, column: SENTINEL}])
    assert not isinstance(error, sa.exc.DBAPIError)
    reason = driver_reason(error)
    assert reason.startswith(says), reason
    assert SENTINEL not in reason


def test_a_registered_secret_in_a_driver_message_is_masked(users):
    engine, table = users
    secrets.register("Registered-Secret-0b9e")
    with pytest.raises(sa.exc.StatementError) as caught, engine.begin() as conn:
        conn.execute(table.insert(), [{"user_name": "Registered-Secret-0b9e", "salary": "Registered-Secret-0b9e"}])
    assert "Registered-Secret" not in driver_reason(caught.value)


def test_a_keyword_in_a_url_query_is_not_taken_for_a_password():
    """``?token=true`` must not turn every ``true`` of the JSON output into ``***``."""
    secrets.register_url_password("https://h/api?token=true&password=null&api_key=real-key-5c2")
    assert secrets.redact('{"active": true, "manager": null, "key": "real-key-5c2"}') == \
        '{"active": true, "manager": null, "key": "***"}'
