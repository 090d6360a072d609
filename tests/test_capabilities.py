"""The ECMA 2.0 capabilities end to end, through `provision run`, against the jsondir plugin.

Several object types with references across them, hierarchical names (parents first, children
deleted first, renames), partitions, full export, DeleteAddAsReplace, ExportPasswordInFirstPass,
normalizations and concurrent operations: each one the Entra agent leaves out.
"""

from __future__ import annotations

import csv
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

MANIFEST = """
version: 1
name: caps
state: "sqlite:///{tmp}/state.db"
connectors:
  hr:
    type: csv
    path: "{tmp}/hr"
    objects: {{groups: {{multi_valued: {{members: ";"}}}}}}
  dir:
    type: jsondir
    root: "{tmp}/dir"
    objects: [orgunits, users, groups]
    partitions: [corp, lab]
    concurrency: 4
    password_in_first_pass: {first_pass}
    delete_add_as_replace: {replace}
    normalizations: {normalizations}
object_types:
  - name: orgunit
    source: {{connector: hr, object: departments, anchor: dept_id}}
    target: {{connector: dir, object: orgunits, name: "ou={{ou}}", partition: "{{site}}"}}
    mapping:
      - {{target: ou, source: name}}
      - {{target: site, source: site}}
  - name: user
    source: {{connector: hr, object: people, anchor: employee_id}}
    target: {{connector: dir, object: users, name: "uid={{uid}},ou={{department}}", partition: "{{site}}"{concurrency}}}
    scope: {{all: [{{attribute: status, op: eq, value: active}}]}}
    when_out_of_scope: delete
    mapping:
      - {{target: uid, expression: "lower(split(email, '@')[0])"}}
      - {{target: mail, source: email}}
      - {{target: cn, expression: "join(' ', [first_name, last_name])"}}
      - {{target: department, source: dept}}
      - {{target: site, source: site}}
      - {{target: userPassword, expression: "join('-', ['Init', employee_id, 'x9'])", password: true, apply: on_create}}
  - name: group
    source: {{connector: hr, object: groups, anchor: group_id}}
    target: {{connector: dir, object: groups, name: "cn={{cn}},ou=Groups", partition: corp}}
    mapping:
      - {{target: cn, source: name}}
      - {{target: member, source: members, reference: user, multi_valued: true}}
"""

DEPARTMENTS = [("D1", "Engineering", "corp"), ("D2", "Sales", "corp"), ("D3", "Groups", "corp"),
               ("D4", "Research", "lab")]


def person(eid: str, first: str, last: str, dept: str = "Engineering", site: str = "corp",
           status: str = "active", email: str | None = None) -> dict[str, str]:
    return {"employee_id": eid, "first_name": first, "last_name": last, "dept": dept, "site": site,
            "status": status, "email": email or f"{first}.{last}@example.org".lower()}


class Pipeline:
    """A manifest with a jsondir target in tmp_path, its HR files, and ways to look at the tree."""

    def __init__(self, tmp: Path, provision, **options: Any):
        self.tmp, self.provision = tmp, provision
        self.manifest = tmp / "caps.yaml"
        self.write_manifest(**options)
        self.people = [person("E1", "Ann", "Lee"), person("E2", "Bob", "Ray", dept="Sales"),
                       person("E3", "Cy", "Oak", dept="Research", site="lab")]
        self.groups = [("G1", "Everyone", ["E1", "E2", "E3"])]
        self.departments = list(DEPARTMENTS)
        self.write_hr()

    def write_manifest(self, first_pass: bool = True, replace: bool = True,
                       normalizations: str = "{mail: [case_insensitive]}", concurrency: int | None = None) -> None:
        self.manifest.write_text(MANIFEST.format(
            tmp=self.tmp, first_pass=str(first_pass).lower(), replace=str(replace).lower(),
            normalizations=normalizations, concurrency=f", concurrency: {concurrency}" if concurrency else ""))

    def write_hr(self) -> None:
        folder = self.tmp / "hr"
        folder.mkdir(exist_ok=True)
        write_csv(folder / "people.csv", self.people)
        write_csv(folder / "departments.csv", [{"dept_id": d, "name": n, "site": s} for d, n, s in self.departments])
        write_csv(folder / "groups.csv", [{"group_id": g, "name": n, "members": ";".join(m)} for g, n, m in self.groups])

    def run(self, *extra: str) -> dict[str, Any]:
        result = self.provision("run", self.manifest, "--output", "json", "--log-file", self.tmp / "log.jsonl", *extra)
        assert result.code == 0, result.err + result.out
        return result.json()["object_types"]

    def objects(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(partition, name) -> the stored object, read straight from the files."""
        found = {}
        for file in (self.tmp / "dir").rglob("*.json"):
            doc = json.loads(file.read_text())
            found[file.relative_to(self.tmp / "dir").parts[0], doc["name"]] = doc
        return found

    def journal(self, partition: str = "corp") -> list[dict[str, Any]]:
        path = self.tmp / "dir" / partition / ".journal.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def log(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.tmp / "log.jsonl").read_text().splitlines()]


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(rows[0]) if rows else ["id"])
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def pipeline(tmp_path: Path, provision) -> Pipeline:
    return Pipeline(tmp_path, provision)


def test_object_types_hierarchy_partitions_and_references(pipeline: Pipeline):
    counts = pipeline.run()
    assert counts["orgunit"]["added"] == 4 and counts["user"]["added"] == 3 and counts["group"]["added"] == 1
    assert all(c["failed"] == 0 for c in counts.values())
    objects = pipeline.objects()
    assert ("corp", "uid=ann.lee,ou=Engineering") in objects
    assert ("corp", "uid=bob.ray,ou=Sales") in objects
    assert ("lab", "uid=cy.oak,ou=Research") in objects            # partition from the template
    assert (pipeline.tmp / "dir/corp/ou=Engineering/uid=ann.lee.json").is_file()  # parent folder
    members = objects["corp", "cn=Everyone,ou=Groups"]["attributes"]["member"]
    user_anchors = {o["anchor"] for (_, n), o in objects.items() if n.startswith("uid=")}
    assert sorted(members) == sorted(user_anchors)                 # references are target anchors

    assert all(c["unchanged"] == c["imported"] for c in pipeline.run().values())


def test_moving_a_user_is_a_rename_that_keeps_the_anchor(pipeline: Pipeline):
    pipeline.run()
    before = pipeline.objects()["corp", "uid=ann.lee,ou=Engineering"]
    pipeline.people[0]["dept"] = "Sales"
    pipeline.write_hr()
    counts = pipeline.run()
    assert counts["user"]["renamed"] == 1 and counts["user"]["updated"] == 0
    after = pipeline.objects()
    assert ("corp", "uid=ann.lee,ou=Engineering") not in after
    moved = after["corp", "uid=ann.lee,ou=Sales"]
    assert moved["anchor"] == before["anchor"]
    assert moved["attributes"]["department"] == "Sales"             # the attribute change follows the move
    assert [e["kind"] for e in pipeline.journal() if e["anchor"] == before["anchor"]][-2:] == ["rename", "update"]
    assert all(c["unchanged"] == c["imported"] for c in pipeline.run().values())


def test_children_are_deleted_before_their_parent(pipeline: Pipeline):
    pipeline.run()
    pipeline.people = [p for p in pipeline.people if p["dept"] != "Sales"]
    pipeline.departments = [d for d in pipeline.departments if d[1] != "Sales"]
    pipeline.groups = [("G1", "Everyone", ["E1", "E3"])]
    pipeline.write_hr()
    counts = pipeline.run()
    assert counts["user"]["deleted"] == 1 and counts["orgunit"]["deleted"] == 1
    assert all(c["failed"] == 0 for c in counts.values())
    assert not any(n.endswith("ou=Sales") or n == "ou=Sales" for _, n in pipeline.objects())
    kinds = [(e["kind"], e["name"]) for e in pipeline.journal()]
    assert kinds.index(("delete", "uid=bob.ray,ou=Sales")) < kinds.index(("delete", "ou=Sales"))


@pytest.mark.parametrize("first_pass", [True, False])
def test_password_in_first_pass_or_a_second_operation(tmp_path: Path, provision, first_pass: bool):
    pipeline = Pipeline(tmp_path, provision, first_pass=first_pass)
    pipeline.run()
    ann = pipeline.objects()["corp", "uid=ann.lee,ou=Engineering"]
    assert ann["password_hash"] == hashlib.sha256(b"Init-E1-x9").hexdigest()
    kinds = [e["kind"] for e in pipeline.journal() if e["anchor"] == ann["anchor"]]
    assert kinds == (["add"] if first_pass else ["add", "set_password"])
    actions = [e["action"] for e in pipeline.log() if e["anchor"] == "E1"]
    assert actions == (["add"] if first_pass else ["add", "set_password"])
    for file in tmp_path.rglob("*"):
        if file.is_file():
            assert b"Init-E1-x9" not in file.read_bytes(), file
    assert pipeline.run()["user"]["unchanged"] == 3


@pytest.mark.parametrize("replace", [True, False])
def test_an_anchor_change_is_one_replace_or_delete_then_add(tmp_path: Path, provision, replace: bool):
    pipeline = Pipeline(tmp_path, provision, replace=replace)
    pipeline.run()
    old = pipeline.objects()["corp", "uid=ann.lee,ou=Engineering"]["anchor"]
    pipeline.people[0]["employee_id"] = "E9"      # re-hired under a new employee id, same account name
    pipeline.groups = [("G1", "Everyone", ["E9", "E2", "E3"])]
    pipeline.write_hr()
    # the plan shows what run sends, decided by compute: one replace, or the delete going first
    planned = tmp_path / "replace.plan"
    assert provision("plan", pipeline.manifest, "--out", planned).code == 0
    items = [json.loads(line) for line in planned.read_text().splitlines()[1:]]
    users = sorted((i["action"], i["anchor"]) for i in items if i["object_type"] == "user")
    assert users == ([("replace", "E9")] if replace else [("add", "E9"), ("delete_first", "E1")])
    result = provision("apply", planned, "--output", "json", "--log-file", tmp_path / "log.jsonl")
    assert result.code == 0, result.out + result.err
    counts = result.json()["object_types"]
    assert counts["user"]["added"] == 1 and counts["user"]["deleted"] == 1 and counts["user"]["failed"] == 0
    new = pipeline.objects()["corp", "uid=ann.lee,ou=Engineering"]
    assert new["anchor"] != old
    kinds = [e["kind"] for e in pipeline.journal() if e["name"] == "uid=ann.lee,ou=Engineering"]
    sent = [(e["action"], e["anchor"]) for e in pipeline.log() if e["anchor"] in ("E1", "E9")][1:]
    if replace:  # one operation (the plugin journals the old anchor's end and the new one's start)
        assert sent == [("replace", "E9")] and kinds[-1] == "replace"
    else:
        assert sent == [("delete", "E1"), ("add", "E9")] and kinds[1:] == ["delete", "add"]
    assert new["anchor"] in pipeline.objects()["corp", "cn=Everyone,ou=Groups"]["attributes"]["member"]
    assert all(c["unchanged"] == c["imported"] for c in pipeline.run().values())


def test_full_export_repairs_a_drifted_target_without_duplicates(pipeline: Pipeline):
    pipeline.run()
    file = pipeline.tmp / "dir/corp/ou=Engineering/uid=ann.lee.json"
    doc = json.loads(file.read_text())
    doc["attributes"]["cn"] = "Someone Else"
    file.write_text(json.dumps(doc))
    assert pipeline.run()["user"]["updated"] == 0           # a delta run trusts the state store
    count = len(pipeline.objects())
    counts = pipeline.run("--full-export")
    # the target is read first: only the object that really differed is sent and counted
    assert counts["user"]["updated"] == 1 and counts["orgunit"]["updated"] == 0 and counts["group"]["updated"] == 0
    assert counts["user"]["reconciled"]["drifted"] == 1
    assert counts["user"]["added"] == 0
    assert len(pipeline.objects()) == count
    assert pipeline.objects()["corp", "uid=ann.lee,ou=Engineering"]["attributes"]["cn"] == "Ann Lee"


@pytest.mark.parametrize(("normalizations", "updates"), [("{mail: [case_insensitive]}", 0), ("{}", 1)])
def test_normalizations_decide_what_counts_as_a_change(tmp_path: Path, provision, normalizations: str, updates: int):
    pipeline = Pipeline(tmp_path, provision, normalizations=normalizations)
    pipeline.run()
    pipeline.people[0]["email"] = "Ann.Lee@Example.org"      # the same address to a case-insensitive system
    pipeline.write_hr()
    assert pipeline.run()["user"]["updated"] == updates


@pytest.mark.parametrize("concurrency", [None, 1])
def test_concurrent_exports_record_every_result_once(tmp_path: Path, provision, concurrency: int | None):
    pipeline = Pipeline(tmp_path, provision, concurrency=concurrency)
    pipeline.people = [person(f"E{i:03d}", f"P{i}", "Many", dept=("Engineering", "Sales")[i % 2]) for i in range(120)]
    pipeline.groups = [("G1", "Everyone", [p["employee_id"] for p in pipeline.people])]
    pipeline.write_hr()
    counts = pipeline.run()
    assert counts["user"]["added"] == 120 and counts["user"]["failed"] == 0
    objects = pipeline.objects()
    users = [o for (_, n), o in objects.items() if n.startswith("uid=")]
    assert len(users) == 120 and len({u["anchor"] for u in users}) == 120
    assert len(objects["corp", "cn=Everyone,ou=Groups"]["attributes"]["member"]) == 120
    assert len([e for e in pipeline.log() if e["object_type"] == "user" and e["action"] == "add"]) == 120
    assert all(c["unchanged"] == c["imported"] for c in pipeline.run().values())


DELTA_MANIFEST = """
version: 1
name: delta
state: "sqlite:///{tmp}/state.db"
connectors:
  hr:
    type: jsondir
    root: "{tmp}/hr"
    objects: [people]
    partitions: [emea, amer]
  app:
    type: sql
    url: "sqlite:///{tmp}/app.db"
    init_sql: app.sql
    create: true
    objects: {{users: {{table: users, key: id, generated_key: true}}}}
object_types:
  - name: user
    source: {{connector: hr, object: people, anchor: employee_id, partitions: [emea, amer]}}
    target: {{connector: app, object: users, correlate: [employee_id]}}
    mapping:
      - {{target: employee_id, source: employee_id}}
      - {{target: title, source: title}}
"""


def test_partitions_are_read_alone_and_by_delta(tmp_path: Path, provision):
    from provision_jsondir import JsonDirConnector

    from runner.connectors.base import ConnectorContext, Operation

    (tmp_path / "app.sql").write_text("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                                      " employee_id TEXT UNIQUE, title TEXT);")
    manifest = tmp_path / "delta.yaml"
    manifest.write_text(DELTA_MANIFEST.format(tmp=tmp_path))
    hr = JsonDirConnector({"root": str(tmp_path / "hr"), "objects": ["people"], "partitions": ["emea", "amer"]},
                          ConnectorContext("hr", tmp_path))
    hr.open()
    ops = [Operation(i, "add", "people", name=f"uid=e{i}", partition=("emea", "amer")[i % 2],
                     attributes={"employee_id": f"E{i}", "title": "Engineer"}) for i in range(10)]
    anchors = {op.attributes["employee_id"]: r.anchor for op, r in zip(ops, hr.apply(ops), strict=True)}

    def change(eid: str, kind: str = "update", **attributes: str) -> None:
        result = list(hr.apply([Operation(0, kind, "people", anchor=anchors[eid], attributes=attributes)]))
        assert result[0].ok, result[0].error

    def run(*extra: str) -> dict[str, int]:
        result = provision("run", manifest, "--output", "json", *extra)
        assert result.code == 0, result.err
        return result.json()["object_types"]["user"]

    def titles() -> dict[str, str]:
        import sqlite3
        con = sqlite3.connect(tmp_path / "app.db")
        try:
            return dict(con.execute("SELECT employee_id, title FROM users"))
        finally:
            con.close()

    first = run()
    assert first["imported"] == 10 and first["added"] == 10
    change("E3", title="Director")                         # E3 lives in amer
    delta = run()
    assert delta["imported"] == 1 and delta["updated"] == 1  # only the change was read
    assert titles()["E3"] == "Director"

    change("E4", kind="delete")                            # E4 lives in emea
    gone = run()
    assert gone["imported"] == 0 and gone["deleted"] == 1 and "E4" not in titles()

    change("E2", title="Emea change")
    change("E5", title="Amer change")
    alone = run("--partition", "amer")
    assert alone["imported"] == 1 and alone["updated"] == 1
    assert titles()["E5"] == "Amer change" and titles()["E2"] == "Engineer"
    rest = run()
    assert rest["imported"] == 1 and titles()["E2"] == "Emea change"

    full = run("--full")
    assert full["imported"] == 9 and full["unchanged"] == 9
    hr.close()


NESTED = """
version: 1
name: nested
state: "sqlite:///{tmp}/state.db"
connectors:
  hr: {{type: csv, path: "{tmp}/hr"}}
  dir: {{type: jsondir, root: "{tmp}/dir", objects: [orgunits], concurrency: 4}}
object_types:
  - name: orgunit
    source: {{connector: hr, object: units, anchor: id}}
    target: {{connector: dir, object: orgunits, name: "{{dn}}"}}
    mapping:
      - {{target: dn, source: dn}}
"""


def test_parents_of_one_type_go_first_even_in_parallel(tmp_path: Path, provision):
    """A tree inside one object type, four threads: every parent is confirmed before its children."""
    (tmp_path / "hr").mkdir()
    units = [{"id": "1", "dn": "ou=a"}] + [{"id": f"{i}", "dn": f"ou=c{i},ou=b{i % 3},ou=a"} for i in range(10, 40)]
    units += [{"id": f"b{j}", "dn": f"ou=b{j},ou=a"} for j in range(3)]
    write_csv(tmp_path / "hr" / "units.csv", units)
    manifest = tmp_path / "nested.yaml"
    manifest.write_text(NESTED.format(tmp=tmp_path))
    result = provision("run", manifest, "--output", "json")
    assert result.code == 0, result.out + result.err
    assert result.json()["object_types"]["orgunit"]["added"] == len(units)
    write_csv(tmp_path / "hr" / "units.csv", [])
    assert provision("run", manifest).code == 3  # the deletion guard: an empty source looks like a broken export
    gone = provision("run", manifest, "--output", "json", "--allow-deletes", "all")
    assert gone.code == 0, gone.out
    assert gone.json()["object_types"]["orgunit"]["deleted"] == len(units)   # children before parents
    assert not list((tmp_path / "dir").rglob("*.json"))


def test_a_connection_lost_mid_batch_keeps_what_was_confirmed(pipeline: Pipeline, monkeypatch):
    """Fault injection: the directory goes away after two operations. The two confirmed adds are
    recorded; the next run finishes the rest without duplicating anything."""
    from provision_jsondir import JsonDirConnector

    from runner.connectors.base import ConnectionFailed

    real_apply = JsonDirConnector.apply
    lock, done = threading.Lock(), [0]

    def flaky(self, operations):
        for op in operations:
            with lock:
                done[0] += 1
                if done[0] > 2:
                    raise ConnectionFailed("directory went away")
            yield from real_apply(self, [op])

    monkeypatch.setattr(JsonDirConnector, "apply", flaky)
    result = pipeline.provision("run", pipeline.manifest, "--output", "json")
    assert result.code == 1 and result.json()["status"] == "failed"
    assert result.json()["object_types"]["orgunit"]["added"] == 2
    monkeypatch.setattr(JsonDirConnector, "apply", real_apply)
    counts = pipeline.run()
    assert counts["orgunit"]["added"] == 2 and counts["orgunit"]["failed"] == 0   # the two never confirmed
    assert counts["user"]["added"] == 3 and counts["group"]["added"] == 1
    assert len([n for _, n in pipeline.objects() if n.startswith("ou=")]) == 4


def test_match_rules_fold_what_the_target_declares(tmp_path: Path, provision):
    """The target declares mail remove_diacritics: an existing zoe.odegard@ is adopted for Zoë."""
    from provision_jsondir import JsonDirConnector

    from runner.connectors.base import ConnectorContext, Operation

    pipeline = Pipeline(tmp_path, provision, normalizations="{mail: [case_insensitive, remove_diacritics]}")
    pipeline.people = [person("E1", "Zoë", "Ødegård", email="Zoë.Ødegård@example.org")]
    pipeline.groups = []
    pipeline.departments = [("D1", "Engineering", "corp")]
    pipeline.write_hr()
    pipeline.manifest.write_text(pipeline.manifest.read_text().replace(
        "    when_out_of_scope: delete", "    match: [{source: email, target: mail}]\n    when_out_of_scope: delete"))
    config = {"root": str(tmp_path / "dir"), "objects": ["orgunits", "users", "groups"], "partitions": ["corp", "lab"]}
    existing = JsonDirConnector(config, ConnectorContext("dir", tmp_path))
    existing.open()
    results = list(existing.apply([
        Operation(1, "add", "orgunits", name="ou=Engineering", partition="corp", attributes={"ou": "Engineering"}),
        Operation(2, "add", "users", name="uid=zoe,ou=Engineering", partition="corp",
                  attributes={"uid": "zoe", "mail": "ZOE.Odegard@example.org"})]))
    existing.close()
    assert all(r.ok for r in results)

    result = provision("run", pipeline.manifest, "--output", "json")
    # the orgunit exists already and has no match rule: its add finds it there, and it is adopted by name
    assert result.code == 0, result.out
    assert result.json()["object_types"]["orgunit"]["failed"] == 0
    assert len([k for k in pipeline.objects() if k[1] == "ou=Engineering"]) == 1
    users = result.json()["object_types"]["user"]
    assert users["added"] == 0 and users["renamed"] == 1, result.out    # adopted, then moved to its mapped name
    adopted = pipeline.objects()["corp", "uid=zoë.ødegård,ou=Engineering"]
    assert adopted["anchor"] == results[1].anchor


def test_target_concurrency_lowers_the_threads(tmp_path: Path, provision, monkeypatch):
    """Instrumented apply: how many calls overlap, with the connector's 4 and with concurrency: 1."""
    import time

    from provision_jsondir import JsonDirConnector

    real_apply = JsonDirConnector.apply
    lock, now, peak = threading.Lock(), [0], [0]

    def counting(self, operations):
        if operations[0].object != "users":  # only the object type whose concurrency is set
            yield from real_apply(self, operations)
            return
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        try:
            time.sleep(0.02)
            yield from real_apply(self, operations)
        finally:
            with lock:
                now[0] -= 1

    monkeypatch.setattr(JsonDirConnector, "apply", counting)
    for concurrency, expected in ((None, 4), (1, 1)):
        peak[0] = 0
        root = tmp_path / f"c{concurrency}"
        root.mkdir()
        pipeline = Pipeline(root, provision, concurrency=concurrency)
        pipeline.people = [person(f"E{i:03d}", f"P{i}", "Many") for i in range(40)]
        pipeline.write_hr()
        assert pipeline.run()["user"]["added"] == 40
        assert peak[0] == expected


def test_connectors_command_lists_plugins_with_version_and_capabilities(provision):
    listed = {row["type"]: row for row in json.loads(provision("connectors", "--output", "json").out)}
    assert {"csv", "sql", "jsondir"} <= set(listed)
    jsondir = listed["jsondir"]
    assert jsondir["distribution"] == "provision-jsondir" and jsondir["version"] == "0.1.0"
    assert {"partitions", "hierarchical", "delta_read", "delete_add_as_replace"} <= set(jsondir["capabilities"])
    assert "rename" in jsondir["operations"]
    assert listed["csv"]["operations"] == ["add", "delete", "disable", "update"]  # a source, and a file target
    text = provision("connectors").out
    assert "jsondir  (provision-jsondir 0.1.0" in text


def test_retryable_errors_are_retried_in_the_run_with_backoff(pipeline: Pipeline, monkeypatch):
    """Fault injection: the directory throttles each object twice (retry_after 0.05 s); the run
    still ends ok, with nothing failed; an object throttled more often fails and stays pending."""
    import time

    from provision_jsondir import JsonDirConnector

    from runner.connectors.base import Result, RetryableError

    real_apply = JsonDirConnector.apply
    seen: dict[str, int] = {}
    calls: list[float] = []
    limit = [2]

    def throttled(self, operations):
        for op in operations:
            key = op.name or op.anchor or str(op.id)
            seen[key] = seen.get(key, 0) + 1
            calls.append(time.monotonic())
            if seen[key] <= limit[0]:
                yield Result.failed(op, RetryableError("429 Too Many Requests", retry_after=0.05))
            else:
                yield from real_apply(self, [op])

    monkeypatch.setattr(JsonDirConnector, "apply", throttled)
    counts = pipeline.run()
    assert all(c["failed"] == 0 for c in counts.values())
    assert counts["user"]["added"] == 3 and counts["group"]["added"] == 1
    assert calls[-1] - calls[0] >= 0.1                   # it waited between attempts
    assert not [e for e in pipeline.log() if e["result"] == "failed"]

    limit[0] = 10  # throttled for good: three retries, then the object fails and stays pending
    seen.clear()
    pipeline.people.append(person("E7", "Eve", "Late"))
    pipeline.write_hr()
    result = pipeline.provision("run", pipeline.manifest, "--output", "json")
    assert result.code == 1 and result.json()["object_types"]["user"]["failed"] == 1
    assert seen["uid=eve.late,ou=Engineering"] == 4      # the first try and three retries
    monkeypatch.setattr(JsonDirConnector, "apply", real_apply)
    assert pipeline.run()["user"]["added"] == 1


def test_an_add_that_finds_the_object_already_there_is_adopted_and_brought_in_line_at_once(pipeline: Pipeline, monkeypatch):
    """Someone creates Eva's account just after the match rules looked for it (fault injection:
    the lookup misses it). The add meets AlreadyExists; the engine looks the object up by its
    name, adopts it and brings it in line in the same run: never a duplicate, nothing left over."""
    from provision_jsondir import JsonDirConnector

    from runner.connectors.base import Operation

    pipeline.manifest.write_text(pipeline.manifest.read_text().replace(
        "    when_out_of_scope: delete", "    match: [{source: email, target: mail}]\n    when_out_of_scope: delete"))
    pipeline.run()
    pipeline.people.append(person("E5", "Eva", "Nyberg"))
    pipeline.write_hr()
    real_lookup, real_apply = JsonDirConnector.lookup, JsonDirConnector.apply
    raced: list[bool] = []

    def lookup_then_someone_adds(self, object, values, *, partition=None):
        found = real_lookup(self, object, values, partition=partition)
        if object == "users" and not raced:   # after the lookup, before the export
            raced.append(True)
            assert all(r.ok for r in real_apply(self, [Operation(1, "add", "users", partition="corp",
                                                                 name="uid=eva.nyberg,ou=Engineering",
                                                                 attributes={"mail": "eva.nyberg@example.org"})]))
        return found

    monkeypatch.setattr(JsonDirConnector, "lookup", lookup_then_someone_adds)
    result = pipeline.provision("run", pipeline.manifest, "--output", "json", "--log-file", pipeline.tmp / "race.log")
    assert raced and result.code == 0, result.out
    assert json.loads(result.out)["object_types"]["user"]["failed"] == 0
    monkeypatch.setattr(JsonDirConnector, "lookup", real_lookup)
    eva = pipeline.objects()["corp", "uid=eva.nyberg,ou=Engineering"]
    assert eva["attributes"]["cn"] == "Eva Nyberg"     # adopted and brought in line, not duplicated
    assert all(c["unchanged"] == c["imported"] for c in pipeline.run().values())
