"""Reconciliation through `provision run` and `provision check` on the jsondir plugin: the tree is the truth.

The plugin reads (full and delta), so a reconciliation applies to it. Each situation is made by
hand in the folder tree, as someone with a text editor or a restore would: an object file
deleted, a value edited, an object file added, the state store lost. What a user sees is
asserted: exit codes, what `check` lists, and the files in the tree afterwards (anchors and
references resolved to the names of the files they point at).
"""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from runner import cli

MANIFEST = """
version: 1
name: dirreconcile
state: "sqlite:///{tmp}/state.db"
connectors:
  hr:
    type: csv
    path: "{tmp}/hr"
    objects: {{groups: {{multi_valued: {{members: ";"}}}}}}
  dir:
    type: jsondir
    root: "{tmp}/dir"
    objects: [users, groups]
    partitions: [corp]
    fsync: false
object_types:
  - name: user
    source: {{connector: hr, object: people, anchor: employee_id}}
    target: {{connector: dir, object: users, name: "uid={{uid}}", partition: corp, disable: {{active: false}}{boundary}}}
    scope: {{any: [{{attribute: status, op: in, value: [active, leave]}}]}}
    when_out_of_scope: disable
    when_deleted: delete{reaction}
    mapping:
      - {{target: uid, expression: "lower(split(email, '@')[0])"}}
      - {{target: cn, expression: "join(' ', [first_name, last_name])"}}
      - {{target: mail, source: email}}
      - {{target: title, source: title}}
      - {{target: manager, source: manager_id, reference: user}}
      - {{target: active, constant: true}}
  - name: group
    source: {{connector: hr, object: groups, anchor: group_id}}
    target: {{connector: dir, object: groups, name: "cn={{cn}}", partition: corp}}
    when_deleted: delete
    mapping:
      - {{target: cn, source: name}}
      - {{target: member, source: members, reference: user, multi_valued: true}}
"""

PEOPLE = [  # employee_id, first, last, title, manager, status
    ("E1", "Ann", "Lee", "Director", "", "active"),
    ("E2", "Bob", "Ray", "Engineer", "E1", "active"),
    ("E3", "Cy", "Oak", "Engineer", "E1", "active"),
    ("E4", "Dee", "Fox", "Analyst", "E1", "leave"),
    ("E5", "Eve", "Kim", "Analyst", "E4", "active"),
    ("E6", "Fay", "Orr", "Engineer", "E1", "terminated"),
]
GROUPS = [("G1", "Engineering", ["E1", "E2", "E3"]), ("G2", "Everyone", ["E1", "E2", "E3", "E4", "E5"])]
PROVISIONED = 5 + 2  # E6 is terminated: never provisioned


class Tree:
    """The pipeline's files: a manifest, HR CSV files, a jsondir tree and a state store in ``tmp``."""

    def __init__(self, tmp: Path, capsys: pytest.CaptureFixture[str], boundary: str = "", reaction: str = ""):
        self.tmp, self.capsys = tmp, capsys
        self.manifest = tmp / "dirreconcile.yaml"
        self.manifest.write_text(MANIFEST.format(tmp=tmp, boundary=boundary, reaction=reaction))
        (tmp / "hr").mkdir()
        with open(tmp / "hr" / "people.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["employee_id", "first_name", "last_name", "email", "title", "manager_id", "status"])
            writer.writerows((e, fn, ln, f"{fn}.{ln}@example.org".lower(), t, m, s) for e, fn, ln, t, m, s in PEOPLE)
        with open(tmp / "hr" / "groups.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["group_id", "name", "members"])
            writer.writerows((g, n, ";".join(m)) for g, n, m in GROUPS)

    def provision(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = cli.main([args[0], str(self.manifest), *args[1:]])
        out, err = self.capsys.readouterr()
        return code, out, err

    def run(self, *extra: str) -> dict[str, Any]:
        code, out, err = self.provision("run", "--output", "json", *extra)
        assert code == 0, err + out
        return json.loads(out)["object_types"]

    def check(self, *extra: str) -> tuple[int, dict[str, Any]]:
        code, out, err = self.provision("check", "--output", "json", *extra)
        assert code in (0, 1), err + out
        return code, json.loads(out)["check"]

    def path(self, name: str) -> Path:
        return self.tmp / "dir" / "corp" / f"{name}.json"

    def docs(self) -> dict[str, dict[str, Any]]:
        """name -> the stored document, straight from the files."""
        found: dict[str, dict[str, Any]] = {}
        for file in (self.tmp / "dir").rglob("*.json"):
            doc = json.loads(file.read_text())
            assert doc["name"] not in found, f"two files named {doc['name']}"
            found[doc["name"]] = doc
        return found

    def content(self) -> dict[str, dict[str, Any]]:
        """name -> attributes, references shown as the name of the file they point at."""
        docs = self.docs()
        names = {d["anchor"]: name for name, d in docs.items()}
        out = {}
        for name, d in docs.items():
            attributes = dict(d["attributes"])
            if attributes.get("manager"):
                attributes["manager"] = names.get(attributes["manager"], "(no such object)")
            if "member" in attributes:
                attributes["member"] = sorted(names.get(m, "(no such object)") for m in attributes["member"])
            out[name] = attributes
        return out

    def anchors(self) -> dict[str, str]:
        return {name: d["anchor"] for name, d in self.docs().items()}

    def edit(self, name: str, **attributes: Any) -> None:
        path = self.path(name)
        doc = json.loads(path.read_text())
        doc["attributes"].update(attributes)
        path.write_text(json.dumps(doc))

    def write_object(self, name: str, object: str, attributes: dict[str, Any]) -> str:
        anchor = str(uuid.uuid4())
        self.path(name).write_text(json.dumps({"anchor": anchor, "name": name, "object": object,
                                               "attributes": attributes}))
        return anchor


@pytest.fixture
def tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Tree:
    tree = Tree(tmp_path, capsys)
    counts = tree.run()
    assert counts["user"]["added"] == 5 and counts["group"]["added"] == 2
    assert len(tree.docs()) == PROVISIONED
    return tree


def differences(report: dict[str, Any], situation: str) -> list[dict[str, Any]]:
    return [d for d in report["differences"] if d["situation"] == situation]


def test_an_object_file_deleted_by_hand_comes_back_with_run_reconcile(tree: Tree):
    before = tree.content()
    assert before["cn=Engineering"]["member"] == ["uid=ann.lee", "uid=bob.ray", "uid=cy.oak"]
    assert before["uid=bob.ray"]["manager"] == "uid=ann.lee"
    tree.path("uid=cy.oak").unlink()  # a member of both groups
    tree.path("uid=ann.lee").unlink()  # a member of both groups, and everyone's manager

    assert tree.run()["user"]["added"] == 0, "a delta run trusts the state: this is what --reconcile is for"
    assert "uid=cy.oak" not in tree.docs()
    code, report = tree.check()
    assert code == 1
    assert {d["anchor"] for d in differences(report, "missing")} == {"E1", "E3"}
    assert all(d["action"] == "add" for d in differences(report, "missing"))

    counts = tree.run("--reconcile")
    assert counts["user"]["reconciled"]["missing"] == 2 and counts["user"]["added"] == 2
    assert counts["user"]["failed"] == counts["group"]["failed"] == 0
    after = tree.content()
    assert set(after) == set(before), "both files are back, nothing else was added"
    for name in ("uid=ann.lee", "uid=cy.oak"):
        assert after[name] == before[name]
    assert all(after[n]["manager"] == "uid=ann.lee" for n in ("uid=bob.ray", "uid=cy.oak", "uid=dee.fox")), \
        "the people she manages point at the new file"
    for group in ("cn=Engineering", "cn=Everyone"):
        assert {"uid=ann.lee", "uid=cy.oak"} <= set(after[group]["member"]), "each group names them again"

    again = tree.run("--reconcile")
    assert again["user"]["reconciled"]["missing"] == 0 and again["user"]["added"] == 0
    assert again["user"]["reconciled"]["linked"] == 5


def test_the_groups_keep_no_reference_to_an_object_file_deleted_by_hand(tree: Tree):
    """The re-created user has a new anchor (jsondir makes one up on add): the groups must name
    the new one instead of the old one, not both."""
    before = tree.content()
    tree.path("uid=cy.oak").unlink()
    assert tree.run("--reconcile")["user"]["added"] == 1
    after = tree.content()
    assert after["cn=Engineering"]["member"] == before["cn=Engineering"]["member"]
    assert after["cn=Everyone"]["member"] == before["cn=Everyone"]["member"]
    assert after == before


def test_an_edited_value_is_found_by_check_and_repaired_by_check_fix(tree: Tree):
    before, anchors = tree.content(), tree.anchors()
    tree.edit("uid=bob.ray", title="Edited by hand", mail="someone.else@example.org")

    code, report = tree.check()
    assert code == 1
    assert report["situations"]["user"]["drifted"] == 1 and report["situations"]["user"]["linked"] == 4
    [drift] = differences(report, "drifted")
    assert drift["object_type"] == "user" and drift["anchor"] == "E2" and drift["name"] == "uid=bob.ray"
    assert drift["action"] == "update" and drift["target_anchor"] == anchors["uid=bob.ray"]
    assert drift["attributes"]["title"] == {"expected": "Engineer", "found": "Edited by hand"}
    assert drift["attributes"]["mail"] == {"expected": "bob.ray@example.org", "found": "someone.else@example.org"}
    code, out, _ = tree.provision("check")
    assert code == 1 and 'title: expected "Engineer"; found "Edited by hand"' in out
    assert tree.content()["uid=bob.ray"]["title"] == "Edited by hand", "check writes nothing to the tree"

    code, fixed = tree.check("--fix")
    assert code == 0 and fixed["fixed"] is True
    assert tree.content() == before
    assert tree.anchors() == anchors, "updated in place, not re-created"
    code, clean = tree.check()
    assert code == 0 and clean["differs"] is False


def test_an_extra_object_file_is_an_orphan_reported_and_left_alone(tree: Tree):
    before = tree.content()
    anchor = tree.write_object("uid=svc.backup", "users", {"uid": "svc.backup", "cn": "Backup", "active": True})

    code, report = tree.check()
    assert code == 1
    [orphan] = differences(report, "orphan")
    assert orphan["object_type"] == "user" and orphan["anchor"] == anchor and orphan["name"] == "uid=svc.backup"
    assert "claimed by no source object" in orphan["note"] and "action" not in orphan
    code, out, _ = tree.provision("check")
    assert f"orphan user {anchor}" in out and "1 orphan" in out

    counts = tree.run("--reconcile")
    assert counts["user"]["reconciled"]["orphan"] == 1 and counts["user"]["deleted"] == 0
    assert tree.content() == before | {"uid=svc.backup": {"uid": "svc.backup", "cn": "Backup", "active": True}}, \
        "no target.boundary: an orphan is only reported, never touched"


def test_orphans_inside_the_boundary_are_deleted_and_others_left_alone(tmp_path: Path, capsys):
    tree = Tree(tmp_path, capsys,
                boundary=", boundary: {all: [{attribute: mail, op: ends_with, value: '@example.org'}]}",
                reaction="\n    reconcile: {orphan: delete}")
    tree.run()
    before = tree.content()
    tree.write_object("uid=left.behind", "users", {"uid": "left.behind", "mail": "left.behind@example.org"})
    tree.write_object("uid=svc.backup", "users", {"uid": "svc.backup", "mail": "backup@ops.example.net"})

    code, report = tree.check()
    assert code == 1
    assert [o["name"] for o in differences(report, "orphan")] == ["uid=left.behind"], "outside: not even reported"
    assert {"uid=left.behind", "uid=svc.backup"} <= set(tree.docs()), "check deletes nothing"

    counts = tree.run("--reconcile")
    assert counts["user"]["reconciled"]["orphan"] == 1 and counts["user"]["deleted"] == 1
    assert set(tree.content()) == set(before) | {"uid=svc.backup"}


def test_a_lost_state_store_links_by_name_without_duplicates(tree: Tree):
    before, anchors = tree.content(), tree.anchors()
    for file in tree.tmp.glob("state.db*"):
        file.unlink()

    counts = tree.run()
    for name, linked in (("user", 5), ("group", 2)):
        assert counts[name]["added"] == counts[name]["updated"] == counts[name]["deleted"] == 0, counts[name]
        assert counts[name]["failed"] == 0
        assert counts[name]["reconciled"]["unlinked"] == linked
    assert tree.content() == before
    assert tree.anchors() == anchors, "every object linked, none added again under a new anchor"
    assert len(list((tree.tmp / "dir").rglob("*.json"))) == PROVISIONED

    code, clean = tree.check()
    assert code == 0, clean
    assert clean["situations"]["user"]["linked"] == 5 and clean["situations"]["group"]["linked"] == 2


def test_the_state_of_one_tree_is_not_taken_for_another(tree: Tree):
    tree.run()
    other = tree.tmp / "other"
    tree.manifest.write_text(tree.manifest.read_text().replace(f'root: "{tree.tmp}/dir"', f'root: "{other}"'))
    code, out, err = tree.provision("run")
    assert code == 4, out + err
    assert f"{tree.tmp}/dir" in err and str(other) in err and "--rebind" in err
    assert not list(other.rglob("*.json")), "nothing written to the new tree"
    counts = tree.run("--rebind")
    assert counts["user"]["added"] == 5 and counts["group"]["added"] == 2
    assert len(list(other.rglob("*.json"))) == PROVISIONED
