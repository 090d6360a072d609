"""The state store on PostgreSQL and MariaDB, as shared by several runners."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from conftest import read_app
from quickstart_model import QuickstartModel

from runner import sampledata


def test_quickstart_cycle_with_a_server_state_store(quickstart_copy: Path, provision, tmp_path: Path,
                                                    server_database: str):
    text = quickstart_copy.read_text()
    start = text.index("state: ")
    end = text.index("\n", start)
    quickstart_copy.write_text(text[:start] + f'state: "{server_database}"' + text[end:])
    data = tmp_path / "data"
    sampledata.make(data, 300, 15, 21)
    model = QuickstartModel()

    first = provision("run", quickstart_copy, "--output", "json")
    assert first.code == 0, first.err
    assert first.json()["object_types"] == model.step(data)
    sampledata.mutate(data, 22, 5.0)
    second = provision("run", quickstart_copy, "--output", "json")
    assert second.code == 0, second.err
    assert second.json()["object_types"] == model.step(data)
    assert read_app(tmp_path / "app.db") == model.target()
    status = provision("status", quickstart_copy)
    people = len((data / "people.csv").read_text(encoding="utf-8").splitlines()) - 1
    assert status.code == 0 and f"user: {people} in source" in status.out


def test_a_plan_with_a_read_only_role_says_what_to_grant(quickstart_copy: Path, provision, tmp_path: Path,
                                                         server_database: str):
    """A plan writes in a transaction it rolls back; a role that may only SELECT gets a message
    that says so and what to grant (exit 4), not an internal error."""
    import secrets as pysecrets

    import sqlalchemy as sa

    text = quickstart_copy.read_text()
    start = text.index("state: ")
    end = text.index("\n", start)
    quickstart_copy.write_text(text[:start] + f'state: "{server_database}"' + text[end:])
    sampledata.make(tmp_path / "data", 20, 3, 5)
    assert provision("run", quickstart_copy).code == 0
    role = f"reader_{pysecrets.token_hex(3)}"
    owner = sa.create_engine(server_database, isolation_level="AUTOCOMMIT")
    mariadb = owner.dialect.name != "postgresql"
    with owner.connect() as conn:
        if mariadb:
            database = server_database.rsplit("/", 1)[1]
            conn.exec_driver_sql(f"CREATE USER '{role}'@'%%' IDENTIFIED BY 'pw-{role}'")
            conn.exec_driver_sql(f"CREATE USER '{role}'@'localhost' IDENTIFIED BY 'pw-{role}'")
            conn.exec_driver_sql(f"GRANT SELECT ON {database}.* TO '{role}'@'%%'")
            conn.exec_driver_sql(f"GRANT SELECT ON {database}.* TO '{role}'@'localhost'")
        else:
            conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'")
            conn.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    url = sa.engine.make_url(server_database).set(username=role, password=f"pw-{role}")
    try:
        text = quickstart_copy.read_text()
        quickstart_copy.write_text(text.replace(f'state: "{server_database}"',
                                                f'state: "{url.render_as_string(hide_password=False)}"'))
        planned = provision("plan", quickstart_copy)
        assert planned.code == 4, planned.out + planned.err
        assert "refused a write" in planned.err and "INSERT, UPDATE and DELETE" in planned.err
        assert "internal error" not in planned.err and f"pw-{role}" not in planned.err
    finally:
        with owner.connect() as conn:
            if mariadb:
                conn.exec_driver_sql(f"DROP USER '{role}'@'%%'")
                conn.exec_driver_sql(f"DROP USER '{role}'@'localhost'")
            else:
                conn.exec_driver_sql(f"DROP OWNED BY {role}")
                conn.exec_driver_sql(f"DROP ROLE {role}")
        owner.dispose()



OPEN_AT = """import sys, time
from pathlib import Path
from runner.state.store import StateStore
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
StateStore(sys.argv[1], Path(sys.argv[3])).close()
"""


def test_runs_opening_a_new_store_at_once_all_open_it(server_database: str, tmp_path: Path):
    """Two cron entries or beat firings starting together on a new database both create the
    store's tables; without the migration lock the second failed (PostgreSQL: a duplicate
    pg_type row, exit 4). Processes, not threads: each opens its own connections, as runs do."""
    start = time.time() + 3  # every process has imported and waits: they open within milliseconds
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT, server_database, str(start), str(tmp_path)],
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [e[-600:] for e in errors if e]
