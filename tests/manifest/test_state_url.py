"""``state:`` names a database the state store works with, or validate says so at its line.

The state store is SQLite, PostgreSQL (psycopg) or MySQL/MariaDB (PyMySQL). Anything else
(``redis://``, a driver nobody tested) used to pass ``validate`` and fail inside SQLAlchemy at the
first run; now the manifest is refused with the file, line and column and the supported list,
and ``run`` stops there too, before anything is made.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import QUICKSTART

from runner.errors import EXIT_INVALID

SUPPORTED = "sqlite:///FILE, postgresql+psycopg://USER@HOST/DB, mysql+pymysql://USER@HOST/DB or mariadb+pymysql://"


def with_state(quickstart_copy: Path, url: str) -> Path:
    text = quickstart_copy.read_text()
    line = next(line for line in text.splitlines() if line.startswith("state:"))
    quickstart_copy.write_text(text.replace(line, f'state: "{url}"'))
    return quickstart_copy


def state_line(path: Path) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith("state:"))


def test_a_redis_url_is_refused_by_validate_with_the_supported_list(provision, quickstart_copy: Path):
    path = with_state(quickstart_copy, "redis://localhost")
    result = provision("validate", path)
    assert result.code == EXIT_INVALID
    assert result.err.startswith(f"{path}:{state_line(path)}:8: state: redis://localhost: the state store cannot be "
                                 "kept in 'redis'; it is one of: " + SUPPORTED), result.err
    assert "Traceback" not in result.err


def test_run_stops_at_the_same_line_before_anything_is_made(provision, quickstart_copy: Path, tmp_path: Path):
    path = with_state(quickstart_copy, "redis://:hunter2-not-shown@localhost:6379/0")
    result = provision("run", path)
    assert result.code == EXIT_INVALID
    assert f"{path}:{state_line(path)}:8: state: redis://:***@localhost:6379/0:" in result.err, result.err
    assert "hunter2-not-shown" not in result.out + result.err
    assert not (tmp_path / "app.db").exists(), "nothing ran"


@pytest.mark.parametrize(("url", "says"), [
    ("postgresql://provision@db/state", "works with the postgresql+psycopg driver, not postgresql;"),
    ("postgresql+psycopg2://provision@db/state", "works with the postgresql+psycopg driver, not postgresql+psycopg2;"),
    ("mysql://provision@db/state", "works with the mysql+pymysql driver, not mysql;"),
    ("mongodb://db/state", "cannot be kept in 'mongodb'"),
])
def test_other_databases_and_drivers_are_refused_with_the_right_one(provision, quickstart_copy: Path, url: str,
                                                                    says: str):
    result = provision("validate", with_state(quickstart_copy, url))
    assert result.code == EXIT_INVALID and says in result.err and SUPPORTED in result.err, result.err


@pytest.mark.parametrize("url", ["sqlite:///state.db", "sqlite+pysqlite:///state.db", "sqlite://",
                                 "postgresql+psycopg://provision@db.example.org/state",
                                 "mysql+pymysql://provision@db.example.org/state",
                                 "mariadb+pymysql://provision@db.example.org/state"])
def test_the_supported_state_stores_validate(provision, quickstart_copy: Path, url: str):
    result = provision("validate", with_state(quickstart_copy, url))
    assert result.code == 0, result.err


def test_the_shipped_quickstart_keeps_its_state_in_sqlite(provision):
    assert provision("validate", QUICKSTART).code == 0
