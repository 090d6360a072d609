"""An optional package that is not installed is named with the extra that brings it.

After the README's ``pip install .``, a PostgreSQL target used to end in "internal error: No
module named 'psycopg' ... please report it". Now ``validate`` and ``run`` say at the manifest's
line which extra to install (exit 2, nothing ran), as do a state store on PostgreSQL and
``provision serve`` without its web server. Each case runs the command line in a Python where the
package cannot be imported (``sys.modules[name] = None``), as on a machine without it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, person, write_hr

from runner.errors import EXIT_INVALID

WITHOUT = ("import sys\n"
           "for name in sys.argv[1].split(','):\n"
           "    sys.modules[name] = None  # import name fails, as when the package is not installed\n"
           "from runner.cli import main\n"
           "raise SystemExit(main(sys.argv[2:]))\n")


def provision_without(modules: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT, modules, *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=REPO)


def pipeline(tmp_path: Path, target_url: str, state: str | None = None) -> Path:
    hr = write_hr(tmp_path / "hr", [person("E1", "Ada", "One")], [])
    path = tmp_path / "pipeline.yaml"
    path.write_text(f"""version: 1
name: extras
state: "{state or f'sqlite:///{tmp_path / "state.db"}'}"
connectors:
  hr: {{type: csv, path: "{hr}"}}
  app:
    type: sql
    url: "{target_url}"
    objects: {{accounts: {{table: accounts, key: employee_id}}}}
object_types:
  - name: user
    source: {{connector: hr, object: people, anchor: employee_id}}
    target: {{connector: app, object: accounts}}
    mapping:
      - {{target: employee_id, source: employee_id}}
""")
    return path


def assert_names_the_extra(done: subprocess.CompletedProcess[str], extra: str) -> None:
    assert done.returncode == EXIT_INVALID, done.stdout + done.stderr
    assert f"pip install 'provision[{extra}]'" in done.stderr, done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_postgresql_target_without_psycopg_names_the_postgres_extra(tmp_path: Path, command: str):
    path = pipeline(tmp_path, "postgresql+psycopg://app:pw-not-shown@127.0.0.1:5432/app")
    done = provision_without("psycopg", command, path)
    assert_names_the_extra(done, "postgres")
    assert f"{path}:8:10: connectors.app.url: PostgreSQL (postgresql+psycopg://) needs the 'postgres' extra" \
        in done.stderr, done.stderr
    assert "pw-not-shown" not in done.stderr
    assert not (tmp_path / "state.db").exists(), "nothing ran"


def test_a_mariadb_target_without_pymysql_names_the_mysql_extra(tmp_path: Path):
    done = provision_without("pymysql", "run", pipeline(tmp_path, "mariadb+pymysql://root@127.0.0.1:3306/app"))
    assert_names_the_extra(done, "mysql")


def test_a_state_store_on_postgresql_without_psycopg_names_the_postgres_extra(tmp_path: Path):
    path = pipeline(tmp_path, f"sqlite:///{tmp_path / 'app.db'}", state="postgresql+psycopg://db.example.org/state")
    done = provision_without("psycopg", "run", path, "--output", "json")
    assert_names_the_extra(done, "postgres")
    assert ":3:8: state: postgresql+psycopg://db.example.org/state: PostgreSQL" in done.stderr, done.stderr
    problem = json.loads(done.stdout)["problems"][0]
    assert problem["path"] == "state" and "provision[postgres]" in problem["message"]


def test_serve_without_its_web_server_names_the_serve_extra(tmp_path: Path):
    done = provision_without("starlette,uvicorn", "serve", REPO / "manifests" / "entra-to-ldap.yaml",
                             "--output", "json")
    assert_names_the_extra(done, "serve")
    assert json.loads(done.stdout) == {"error": "provision serve needs the 'serve' extra, which is not installed "
                                                "(no module named 'starlette'): pip install 'provision[serve]'",
                                       "exit_code": EXIT_INVALID}


def test_version_lists_a_missing_extra_with_what_to_install():
    done = provision_without("psycopg", "--version")
    extras = dict(line.split(None, 1) for line in done.stdout.split("extras:\n", 1)[1].splitlines())
    assert extras["postgres"] == "missing: pip install 'provision[postgres]'", done.stdout
