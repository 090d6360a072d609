"""A file target killed in the middle of the export: a reader sees an old or a new whole file, and
the next run converges to exactly the file an uninterrupted run writes.

The run is a real `provision run` subprocess, killed with SIGKILL at a chosen point of the file
connector (after the Nth batch made durable, before it, or half-way through writing a snapshot's
temporary file); the injection wraps the connector's own functions, as tests/faults/killpoint.py
does for the other connectors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from runner import sampledata
from runner.connectors.base import ConnectorContext
from runner.connectors.csvfile import CsvConnector as CsvSource

REPO = Path(__file__).resolve().parents[2]

KILLER = """
import os, signal, sys
from runner import cli
from runner.connectors.files import connector, journal

point, where = int(sys.argv[1]), sys.argv[2]
count = 0

def hit():
    global count
    count += 1
    return count == point

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if where in ("after-journal", "before-journal"):
    original = journal.append
    def append(*a, **k):
        if where == "before-journal" and hit():
            die()  # the batch's change records are in the file, its journal lines are not
        original(*a, **k)
        if where == "after-journal" and hit():
            die()  # the batch is durable, the engine has not recorded its results
    journal.append = append
else:  # half-way through a snapshot: the temporary file written, not renamed
    original = connector.replace_atomically
    def replace(path, write, fsync=True):
        def halfway(handle):
            write(handle)
            if hit():
                handle.flush()
                die()
        original(path, halfway, fsync)
    connector.replace_atomically = replace
sys.exit(cli.main(sys.argv[3:]))
"""

MANIFEST = """version: 1
name: filecrash
state: "sqlite:///{folder}/state.db"
connectors:
  hr:
    type: csv
    path: "{hr}"
    objects: {{groups: {{multi_valued: {{members: ";"}}}}}}
  out:
    type: {fmt}
    path: out
    mode: {mode}
    flush_every: {flush_every}
    objects:
      users: {{key: user_name{users}}}
      groups: {{key: name{groups}}}
object_types:
  - name: user
    source: {{connector: hr, object: people, anchor: employee_id}}
    target: {{connector: out, object: users, disable: {{active: false}}}}
    scope: {{any: [{{attribute: status, op: in, value: [active, leave]}}]}}
    when_out_of_scope: disable
    when_deleted: delete
    safety: {{max_deletes: 100%}}
    mapping:
      - {{target: user_name, expression: "lower(split(email, '@')[0])"}}
      - {{target: display_name, expression: "join(' ', [coalesce(preferred_name, first_name), last_name])"}}
      - {{target: title, source: title}}
      - {{target: department, source: department}}
      - {{target: manager, source: manager_id, reference: user}}
      - {{target: active, constant: true}}
  - name: group
    source: {{connector: hr, object: groups, anchor: group_id}}
    target: {{connector: out, object: groups}}
    when_deleted: delete
    mapping:
      - {{target: name, source: name}}
      - {{target: members, source: members, reference: user, multi_valued: true}}
"""
CSV_OPTIONS = (", columns: [user_name, display_name, title, department, manager, active], types: {active: boolean}",
               ', multi_valued: {members: ";"}')


def pipeline(folder: Path, hr: Path, fmt: str = "csv", mode: str = "snapshot", flush_every: float = 60) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    users, groups = CSV_OPTIONS if fmt == "csv" else ("", "")
    manifest = folder / "m.yaml"
    manifest.write_text(MANIFEST.format(folder=folder, hr=hr, fmt=fmt, mode=mode, flush_every=flush_every,
                                        users=users, groups=groups))
    return manifest


def run(manifest: Path, point: int = 0, where: str = "after-journal") -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", KILLER, str(point), where, "run", str(manifest), "--output", "json"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO,
                          env=os.environ | {"PYTHONPATH": str(REPO)})


def ran(provision, manifest: Path) -> dict:
    """A run never killed, in this process (only a run to be killed needs its own): its counts."""
    result = provision("run", manifest, "--output", "json")
    assert result.code == 0, result.err + result.out
    return result.json()["object_types"]


def data(tmp: Path) -> tuple[Path, Path]:
    """HR data before and after a mutation (hires, leavers, renames, moves)."""
    before, after = tmp / "hr-before", tmp / "hr-after"
    sampledata.make(before, 450, 12, 3)
    shutil.copytree(before, after)
    sampledata.mutate(after, 5, 20.0)
    return before, after


def whole_csv(path: Path) -> list[dict]:
    """The file read by the strict CSV source: it fails on a half-written row."""
    source = CsvSource({"type": "csv", "path": str(path.parent), "objects": {"x": {"file": path.name}}},
                       ConnectorContext("check", path.parent))
    rows = [r for page in source.read("x") for r in page.records]
    assert all(r.error is None for r in rows)
    return rows


def test_killed_after_a_durable_batch_on_first_contact_the_rerun_converges(tmp_path: Path, provision):
    before, _ = data(tmp_path)
    clean = pipeline(tmp_path / "clean", before)
    ran(provision, clean)
    expected = (tmp_path / "clean/out/users.csv").read_bytes(), (tmp_path / "clean/out/groups.csv").read_bytes()

    killed = pipeline(tmp_path / "killed", before)
    assert run(killed, 1, "after-journal").returncode == -9
    assert not (tmp_path / "killed/out/users.csv").exists()  # no half file: none yet, the run had not ended
    assert (tmp_path / "killed/out/.users.csv.journal").exists()
    counts = ran(provision, killed)
    assert counts["user"]["failed"] == 0 and counts["user"].get("recovered", 0) > 0, counts
    got = (tmp_path / "killed/out/users.csv").read_bytes(), (tmp_path / "killed/out/groups.csv").read_bytes()
    assert got == expected
    assert sorted(p.name for p in (tmp_path / "killed/out").iterdir()) == ["groups.csv", "users.csv"]
    again = ran(provision, killed)
    assert all(c["added"] + c["updated"] + c["deleted"] + c["disabled"] == 0 for c in again.values()), again


def test_killed_half_way_through_a_snapshot_leaves_the_old_whole_file_and_the_rerun_converges(tmp_path: Path,
                                                                                              provision):
    before, after = data(tmp_path)
    clean = pipeline(tmp_path / "clean", before, flush_every=0)
    ran(provision, clean)
    shutil.copytree(tmp_path / "clean", tmp_path / "killed")
    (tmp_path / "killed/m.yaml").write_text((tmp_path / "clean/m.yaml").read_text().replace(
        str(tmp_path / "clean"), str(tmp_path / "killed")))
    for folder in ("clean", "killed"):
        text = (tmp_path / folder / "m.yaml").read_text()
        (tmp_path / folder / "m.yaml").write_text(text.replace(str(before), str(after)))
    old = (tmp_path / "killed/out/users.csv").read_bytes()
    ran(provision, tmp_path / "clean/m.yaml")
    expected = (tmp_path / "clean/out/users.csv").read_bytes()
    assert expected != old

    assert run(tmp_path / "killed/m.yaml", 1, "snapshot").returncode == -9
    assert (tmp_path / "killed/out/users.csv").read_bytes() == old  # the temporary file was never renamed
    assert whole_csv(tmp_path / "killed/out/users.csv")
    assert [p.name for p in (tmp_path / "killed/out").glob(".users.csv.*.tmp")], "the kill left its temporary file"
    counts = ran(provision, tmp_path / "killed/m.yaml")
    assert all(c["failed"] == 0 for c in counts.values()), counts
    assert (tmp_path / "killed/out/users.csv").read_bytes() == expected
    assert not list((tmp_path / "killed/out").glob(".*.tmp"))


def test_killed_between_the_change_records_and_the_journal_repeats_at_most_that_batch(tmp_path: Path, provision):
    before, after = data(tmp_path)
    clean = pipeline(tmp_path / "clean", after, fmt="jsonl", mode="changes")
    ran(provision, clean)
    killed = pipeline(tmp_path / "killed", after, fmt="jsonl", mode="changes")
    assert run(killed, 2, "before-journal").returncode == -9
    counts = ran(provision, killed)
    assert all(c["failed"] == 0 for c in counts.values()), counts

    def fold(path: Path) -> tuple[dict, list[dict]]:
        records = [json.loads(line) for line in path.read_text().splitlines()]
        objects: dict = {}
        for r in records:
            if r["op"] == "delete":
                objects.pop(r["id"], None)
            else:
                objects[r["id"]] = r["attributes"]
        return objects, records

    clean_objects, clean_records = fold(tmp_path / "clean/out/users.jsonl")
    got_objects, got_records = fold(tmp_path / "killed/out/users.jsonl")
    assert got_objects == clean_objects
    repeated = len(got_records) - len(clean_records)
    assert 0 < repeated <= 200, repeated  # the second batch's records, once more; no more
    keys = [r["key"] for r in got_records]
    twice = {k for k in keys if keys.count(k) > 1}
    assert len(twice) == repeated  # each repeat carries the key of the operation it repeats: a consumer drops it
