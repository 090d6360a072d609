"""A relative path in an environment variable is relative to the working directory, as the shell that
set it means it; a path written in the manifest (a default included) stays relative to the manifest's
folder. ``PROVISION_STATE`` may be a state store URL or a SQLite file's path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from runner import sampledata
from runner.manifest.yamlfile import from_working_dir
from runner.mapping.checks import load

REPO = Path(__file__).resolve().parents[2]

MANIFEST = """\
version: 1
name: paths
state: "${env:PROVISION_STATE:-sqlite:///out/paths.state.db}"
log_file: "${env:PATHS_LOG:-out/paths.log}"
connectors:
  hr:
    type: csv
    path: "${env:PROVISION_DATA:-data}"
    objects:
      groups: {multi_valued: {members: ";"}}
  app:
    type: sql
    url: "sqlite:///${env:PATHS_TARGET:-out/app.db}"
    create: true
    init_sql: ../sql/quickstart-target.sql
    objects:
      users: {table: users, key: id, generated_key: true}
  other:
    type: sql
    url: "${env:PATHS_OTHER_URL:-sqlite:///out/other.db}"
    create: true
    objects:
      users: {table: users, key: id, generated_key: true}
  directory:
    type: ldap
    url: "${env:PATHS_LDAP_URL:-ldap://127.0.0.1:1}"
    bind_dn: "${env:PATHS_BIND_DN:-cn=admin,dc=example,dc=org}"
    partitions: ["${env:PATHS_BASE_DN:-dc=example,dc=org}"]
    objects:
      inetOrgPerson: {}
object_types:
  - name: user
    source: {connector: hr, object: people, anchor: employee_id}
    target: {connector: app, object: users, correlate: [user_name]}
    mapping:
      - {target: user_name, source: employee_id}
"""


def write(folder: Path) -> Path:
    """The manifest in ``folder/manifests``, the quickstart's table definitions in ``folder/sql``."""
    (folder / "manifests").mkdir(parents=True)
    (folder / "sql").mkdir()
    (folder / "sql" / "quickstart-target.sql").write_text((REPO / "manifests" / "sql" / "quickstart-target.sql")
                                                          .read_text())
    manifest = folder / "manifests" / "paths.yaml"
    manifest.write_text(MANIFEST)
    return manifest


def test_relative_paths_in_variables_are_from_the_working_directory(tmp_path, monkeypatch):
    manifest = write(tmp_path / "repo")
    here = tmp_path / "shell"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setenv("PROVISION_DATA", "hr")
    monkeypatch.setenv("PROVISION_STATE", "state/paths.db")  # a path: a SQLite file
    monkeypatch.setenv("PATHS_LOG", "../logs/paths.log")
    monkeypatch.setenv("PATHS_TARGET", "app.db")
    monkeypatch.setenv("PATHS_OTHER_URL", "sqlite:///other.db?timeout=5")
    monkeypatch.setenv("PATHS_BIND_DN", "cn=admin")  # not a path, whatever it looks like
    monkeypatch.setenv("PATHS_BASE_DN", "o=example")
    loaded = load(manifest)
    config = {name: spec.config for name, spec in loaded.connectors.items()}
    assert config["hr"]["path"] == str(here / "hr")
    assert loaded.state == f"sqlite:///{here / 'state' / 'paths.db'}"
    assert loaded.log_file == str(tmp_path / "logs" / "paths.log")
    assert config["app"]["url"] == f"sqlite:///{here / 'app.db'}"
    assert config["other"]["url"] == f"sqlite:///{here / 'other.db'}?timeout=5"
    assert config["app"]["init_sql"] == "../sql/quickstart-target.sql"  # written here: from the manifest
    assert config["directory"]["bind_dn"] == "cn=admin"
    assert config["directory"]["partitions"] == ["o=example"]
    assert config["directory"]["url"] == "ldap://127.0.0.1:1"


def test_paths_written_in_the_manifest_stay_relative_to_its_folder(tmp_path, monkeypatch):
    manifest = write(tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    for name in ("PROVISION_DATA", "PROVISION_STATE", "PATHS_LOG", "PATHS_TARGET", "PATHS_OTHER_URL"):
        monkeypatch.delenv(name, raising=False)
    loaded = load(manifest)
    config = {name: spec.config for name, spec in loaded.connectors.items()}
    assert (config["hr"]["path"], config["app"]["url"], loaded.state, loaded.log_file) == \
        ("data", "sqlite:///out/app.db", "sqlite:///out/paths.state.db", "out/paths.log")


def test_absolute_paths_urls_and_other_settings_are_left_as_they_are():
    assert from_working_dir("/srv/hr", ("connectors", "hr", "path"), "") == "/srv/hr"
    assert from_working_dir("https://hr.example.com/ws?wsdl", ("connectors", "svc", "wsdl"), "") \
        == "https://hr.example.com/ws?wsdl"
    assert from_working_dir("postgresql+psycopg://u@db/state", ("state",), "") == "postgresql+psycopg://u@db/state"
    assert from_working_dir("sqlite:///:memory:", ("state",), "") == "sqlite:///:memory:"
    assert from_working_dir("users", ("connectors", "app", "objects", "users", "path"), "") == "users"
    assert from_working_dir("x.db", ("state",), "prefix-") == "x.db"  # not a path's start
    assert from_working_dir("hr", ("connectors", "hr", "path"), "") == os.path.abspath("hr")


def test_a_run_reads_and_writes_where_the_variables_say_from_the_shell(tmp_path):
    """The whole command line, started in another folder than the manifest's: the HR data, the target
    and the state store named by relative paths land in the working directory."""
    manifest = write(tmp_path / "repo")
    here = tmp_path / "shell"
    sampledata.make(here / "hr", 20, 2, 1)
    env = {**os.environ, "PROVISION_DATA": "hr", "PROVISION_STATE": "state.db", "PATHS_TARGET": "app.db",
           "PATHS_LOG": "run.log", "PATHS_OTHER_URL": "sqlite:///other.db"}
    done = subprocess.run([sys.executable, "-m", "runner", "run", str(manifest), "--output", "json"], cwd=here,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["object_types"]["user"]["added"] == 20
    assert {p.name for p in here.iterdir()} >= {"hr", "state.db", "app.db", "run.log"}
    assert not (manifest.parent / "out").exists()
