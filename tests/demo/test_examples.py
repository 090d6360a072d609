"""Every example in ``manifests/`` runs on this machine in two commands: ``provision demo NAME``, then
``provision run MANIFEST`` with the variables it printed (issue 24).

Each test starts the demo as a user does, ``python -m runner demo NAME`` in a process of its own,
reads the ``export`` lines it prints, runs the example twice with them from another working directory
(``provision run`` in this process, to keep the module short: the first run provisions the sample HR
data, the second changes nothing), then sends the demo SIGTERM and checks that the servers it named
are gone by their PIDs and its folder is removed.
``entra`` is served rather than run: ``validate --online`` and ``test`` pass against its slapd, and a
user Entra creates through ``provision serve`` lands in the directory.

json-server comes from ``tests/servers/node`` (``scripts/test`` installs it; the demo takes it from
``JSON_SERVER``); PostgreSQL is the machine's (``PROVISION_TEST_POSTGRESQL_URL`` when scripts/servers.sh
started one), and one test starts a cluster of the demo's own with ``--port``.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ldap3
import pytest
import requests
import sqlalchemy as sa
from servers.jsonserver import NODE
from servers.pipelineendpoint import PipelineEndpoint

from runner.demo.examples import EXAMPLES
from runner.demo.process import free_port

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
PG_SERVER = os.environ.get("PROVISION_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
JSON_SERVER = NODE / "node_modules" / ".bin" / "json-server"  # scripts/test installs it; when missing, the rest
# demo says how to install it and its test fails
ENV = {**os.environ, "JSON_SERVER": str(JSON_SERVER), "PG_ADMIN_URL": f"{PG_SERVER}/postgres",
       "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
USERS, GROUPS = 190, 20  # the sample's 200 people, 10 of them terminated (out of scope), and its groups
ACTIONS = ("added", "updated", "renamed", "disabled", "deleted", "failed")


@dataclass
class Demo:
    """A running ``provision demo``: what it printed, the PIDs and folder it named."""

    process: subprocess.Popen[str]
    lines: list[str]
    env: dict[str, str] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)
    folder: Path | None = None

    def stop(self) -> tuple[int, str]:
        """SIGTERM, as a service manager or a test runner ends it; the exit code and its standard error."""
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=60)
        return self.process.returncode, err


def launch(name: str, *options: str, cwd: Path) -> subprocess.Popen[str]:
    """``provision demo NAME`` in the foreground of a process of its own."""
    return subprocess.Popen([sys.executable, "-m", "runner", "demo", name, *options], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def attach(process: subprocess.Popen[str]) -> Demo:
    """What the demo printed, once its last line is out: the variables, PIDs and folder."""
    watchdog = threading.Timer(90, process.terminate)  # a demo that never finishes starting fails the test
    watchdog.start()
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("# Ctrl-C"):
                break
    finally:
        watchdog.cancel()
    assert lines and lines[-1].startswith("# Ctrl-C"), f"the demo stopped early: {lines} {process.stderr.read()}"
    running = Demo(process, lines)
    for line in lines:
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            running.env[name] = shlex.split(value)[0]
        running.pids += [int(pid) for pid in re.findall(r"\(pid (\d+)\)", line)]
        if line.startswith("# folder: "):
            running.folder = Path(line.removeprefix("# folder: ").removesuffix(" (removed when the demo stops)"))
    return running


def end(process: subprocess.Popen[str]) -> None:
    """A demo a failed test left running: SIGTERM, so it still stops its servers; SIGKILL if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@contextmanager
def demo(name: str, *options: str, cwd: Path) -> Iterator[Demo]:
    process = launch(name, *options, cwd=cwd)
    try:
        yield attach(process)
    finally:
        end(process)


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Every example's demo, started at once so their servers come up side by side; each test attaches
    to its own and stops it."""
    cwd = tmp_path_factory.mktemp("demos")
    processes = {e.name: launch(e.name, cwd=cwd) for e in EXAMPLES}
    yield processes
    for process in processes.values():
        end(process)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def provision_process(*args: str | Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``provision ARGS`` as a process of its own, with the demo's variables, in ``cwd``."""
    return subprocess.run([sys.executable, "-m", "runner", *map(str, args)], cwd=cwd, env={**ENV, **env},
                          capture_output=True, text=True, timeout=120)


def run_twice(cli: Any, manifest: str, env: dict[str, str], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the demo's variables, from ``cwd``: the example provisions everyone in scope, and a second
    run changes nothing."""
    monkeypatch.chdir(cwd)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for run, expect in (("first", {"user": USERS, "group": GROUPS}), ("second", {"user": 0, "group": 0})):
        done = cli("run", REPO / manifest, "--output", "json")
        assert done.code == 0, f"{run} run: {done.out} {done.err}"
        counts = done.json()["object_types"]
        for kind in ("user", "group"):
            c = counts[kind]
            assert c["added"] == expect[kind], (run, kind, c)
            assert [c[a] for a in ACTIONS if a != "added"] == [0] * (len(ACTIONS) - 1), (run, kind, c)
            if run == "second":
                assert c["unchanged"] == {"user": USERS, "group": GROUPS}[kind], (kind, c)


def test_every_example_manifest_has_a_demo():
    manifests = {f"manifests/{p.name}" for p in MANIFESTS.glob("*.yaml") if not p.name.endswith(".mapping-tests.yaml")}
    assert manifests == {e.manifest for e in EXAMPLES}


@pytest.mark.parametrize("name", [e.name for e in EXAMPLES if e.command == "provision run"])
def test_the_example_runs_against_its_demo(name, started, tmp_path, provision, monkeypatch):
    example = next(e for e in EXAMPLES if e.name == name)
    running = attach(started[name])
    assert f"#   provision run {example.manifest}" in running.lines
    assert running.folder is not None and running.folder.is_dir()
    assert len(running.pids) == (1 if example.server and name != "postgresql" else 0)
    assert all(alive(pid) for pid in running.pids)
    run_twice(provision, example.manifest, running.env, tmp_path, monkeypatch)
    code, err = running.stop()
    assert code == 0, err
    assert not [pid for pid in running.pids if alive(pid)], "the demo's server outlived it"
    assert not running.folder.exists()
    if name == "postgresql":  # the machine's server: the role and its databases are dropped
        role = sa.make_url(running.env["TARGET_DB_URL"]).username
        engine = sa.create_engine(f"{PG_SERVER}/postgres")
        with engine.connect() as conn:
            left = conn.exec_driver_sql("SELECT datname FROM pg_database WHERE datname LIKE %(r)s UNION ALL "
                                        "SELECT rolname FROM pg_roles WHERE rolname = %(n)s",
                                        {"r": f"{role}%", "n": role}).all()
        engine.dispose()
        assert left == []


def test_a_cluster_of_its_own_when_asked_for_a_port(tmp_path):
    """``demo postgresql --port N``: initdb'd in the demo's folder, on that port, stopped by its PID (the
    machine has a server, so a run against it is shown above; here the example's connections open)."""
    port = free_port()
    with demo("postgresql", "--port", str(port), cwd=tmp_path) as running:
        assert f"@127.0.0.1:{port}/" in running.env["TARGET_DB_URL"] and len(running.pids) == 1
        done = provision_process("validate", "--online", MANIFESTS / "hr-sql-to-sql.yaml", env=running.env,
                                 cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        code, err = running.stop()
    assert code == 0, err
    assert not alive(running.pids[0]) and not running.folder.exists()


def test_entra_is_served_into_the_demo_directory(started, tmp_path, provision, monkeypatch):
    running = attach(started["entra"])
    env = running.env
    assert "#   provision serve manifests/entra-to-ldap.yaml --port 8443" in running.lines
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for command in (("validate", "--online"), ("test",)):
        done = provision(*command, MANIFESTS / "entra-to-ldap.yaml")
        assert done.code == 0, (command, done.out, done.err)
    served = PipelineEndpoint.start_serving(MANIFESTS / "entra-to-ldap.yaml", tmp_path,
                                            token=env["SCIM_ENDPOINT_TOKEN"])
    try:
        created = served.session.post(f"{served.url}/Users", json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "userName": "Ana.Silva@contoso.com", "active": True, "name": {"givenName": "Ana", "familyName": "Silva"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales"}}, timeout=30)
        assert created.status_code == 201, created.text
    finally:
        served.stop()
    with ldap3.Connection(env["LDAP_URL"], env["LDAP_BIND_DN"], env["LDAP_PASSWORD"], auto_bind=True) as conn:
        conn.search(env["LDAP_BASE_DN"], "(uid=ana.silva)", attributes=["sn"])
        assert [str(e.entry_dn) for e in conn.entries] == ["uid=ana.silva,ou=Sales,ou=people,dc=example,dc=org"]
    code, err = running.stop()
    assert code == 0, err
    assert not [pid for pid in running.pids if alive(pid)] and not running.folder.exists()


def test_a_command_after_two_dashes_runs_with_the_variables_then_everything_stops(tmp_path):
    """For CI: ``provision demo NAME -- COMMAND`` exits with the command's code, the demo's lines on stderr."""
    done = subprocess.run([sys.executable, "-m", "runner", "demo", "scim", "--", sys.executable, "-c",
                           "import os, requests, sys; r = requests.get(os.environ['SCIM_URL'] + '/Users', "
                           "headers={'Authorization': 'Bearer ' + os.environ['SCIM_TOKEN']}, timeout=10); "
                           "print(r.json()['totalResults']); sys.exit(7)"],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (7, "0\n"), done.stderr
    pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", done.stderr)]
    folder = re.search(r"# folder: (.+) \(removed", done.stderr)[1]
    assert pids and not any(alive(p) for p in pids) and not Path(folder).exists()
    assert "export SCIM_TOKEN=" in done.stderr


def test_sigterm_reaches_the_command_first_then_the_demo_cleans_up(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "runner", "demo", "quickstart", "--", sys.executable, "-c",
                                "import time; print('ready', flush=True); time.sleep(60)"],
                               cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM, err  # the command's code, as a shell says it
    folder = re.search(r"# folder: (.+) \(removed", err)[1]
    assert not Path(folder).exists()


def test_mistakes_are_said_plainly(tmp_path, provision, monkeypatch):
    unknown = provision("demo", "nope")
    assert unknown.code == 2 and "no demo called 'nope'; the demos: quickstart, sql" in unknown.err
    port = provision("demo", "quickstart", "--port", "5000")
    assert port.code == 2 and "--port: the quickstart demo starts no server" in port.err
    monkeypatch.setenv("JSON_SERVER", str(tmp_path / "nowhere"))
    missing = provision("demo", "rest")
    assert missing.code == 4 and "npm install -g json-server@0.17.4" in missing.err
    assert "Traceback" not in unknown.err + port.err + missing.err
    listing = provision("demo")
    assert listing.code == 0 and all(e.name in listing.out for e in EXAMPLES)


def test_a_server_that_dies_ends_the_demo(tmp_path):
    with demo("scim", cwd=tmp_path) as running:
        os.kill(running.pids[0], signal.SIGKILL)
        _, err = running.process.communicate(timeout=30)
    assert running.process.returncode == 1 and "exited on its own" in err
    assert not running.folder.exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(running.env["SCIM_URL"], timeout=2)
