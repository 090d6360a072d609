"""Export options: parents made and removed, disable by moving, subtree deletes, and one object
type spread over two partitions (naming contexts) by its DN template."""

from __future__ import annotations

from pathlib import Path

import ldap3

from runner.connectors.base import ObjectError

from .helpers import admin, connector, manifest, op


def exists(server, dn: str) -> bool:
    conn = admin(server)
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["1.1"])
    found = conn.result["result"] == 0
    conn.unbind()
    return found


def person(uid: str) -> dict:
    return {"cn": uid, "sn": uid}


def test_missing_parents_are_created_and_empty_ones_removed_when_asked(directory, tmp_path):
    dir = connector(directory, tmp_path, remove_empty_parents=True)
    dir.open()
    try:
        dn = "uid=a,ou=Team \\+ Friends,ou=Sales\\, EMEA,ou=people,dc=example,dc=org"
        [added] = dir.apply([op("add", name=dn, attributes=person("a"))])
        assert added.ok, added.error
        assert exists(directory, "ou=Sales\\, EMEA,ou=people,dc=example,dc=org")
        [gone] = dir.apply([op("delete", 2, anchor=added.anchor, name=dn)])
        assert gone.ok, gone.error
        assert not exists(directory, "ou=people,dc=example,dc=org"), "the emptied OUs went too"
        assert exists(directory, "dc=example,dc=org"), "never the partition itself"
    finally:
        dir.close()


def test_disable_can_move_the_entry_to_a_disabled_ou(directory, tmp_path):
    dir = connector(directory, tmp_path, objects={"inetOrgPerson": {"disable": {"move_to": "ou=disabled"}}})
    dir.open()
    try:
        [added] = dir.apply([op("add", name="uid=leaver,ou=people,dc=example,dc=org", attributes=person("leaver"))])
        [disabled] = dir.apply([op("disable", 2, anchor=added.anchor, name="uid=leaver,ou=people,dc=example,dc=org",
                                   attributes={"employeeType": "disabled"})])
        assert disabled.ok, disabled.error
        assert disabled.name.lower() == "uid=leaver,ou=disabled,dc=example,dc=org"
        record = dir.get("inetOrgPerson", added.anchor)
        assert record.name.lower() == disabled.name.lower() and record.attributes["employeeType"] == "disabled"
        [again] = dir.apply([op("disable", 3, anchor=added.anchor, name="uid=leaver,ou=people,dc=example,dc=org",
                                attributes={"employeeType": "disabled"})])
        assert again.ok and again.name.lower() == disabled.name.lower(), "a replayed disable stays put"
    finally:
        dir.close()


def test_a_container_with_entries_below_is_deleted_only_with_delete_subtree(directory, tmp_path):
    for subtree in (False, True):
        dir = connector(directory, tmp_path, delete_subtree=subtree)
        dir.open()
        try:
            old = f"ou=old{int(subtree)},dc=example,dc=org"
            [ou] = dir.apply([op("add", object="organizationalUnit", name=old, attributes={"ou": f"old{int(subtree)}"})])
            [child] = dir.apply([op("add", 2, name=f"uid=c,ou=x,{old}", attributes=person("c"))])
            assert ou.ok and child.ok, (ou.error, child.error)
            [deleted] = dir.apply([op("delete", 3, object="organizationalUnit", anchor=ou.anchor)])
            if subtree:
                assert deleted.ok and not exists(directory, old)
            else:
                assert not deleted.ok and isinstance(deleted.error, ObjectError)
                assert "delete_subtree" in str(deleted.error)
                assert exists(directory, f"uid=c,ou=x,{old}")
        finally:
            dir.close()


OBJECT_TYPES = """\
  - name: user
    source: {connector: hr, object: people, anchor: id}
    target: {connector: dir, object: inetOrgPerson, name: "uid={uid},ou=people,dc={o},dc=org"}
    when_deleted: delete
    mapping:
      - {target: uid, source: uid}
      - {target: cn, source: uid}
      - {target: sn, source: uid}
      - {target: o, source: company}
"""


def test_one_object_type_spans_two_partitions_and_moves_between_them(provision, directory, tmp_path: Path):
    data = tmp_path / "hr"
    data.mkdir()
    people = data / "people.csv"
    people.write_text("id,uid,company\n1,ann,example\n2,bob,other\n3,cy,other\n")
    pipe = manifest(tmp_path, directory, "ldap-partitions", OBJECT_TYPES, data,
                    partitions=("dc=example,dc=org", "dc=other,dc=org"))
    first = provision("run", pipe, "--output", "json")
    assert first.code == 0, first.out + first.err
    assert exists(directory, "uid=ann,ou=people,dc=example,dc=org")
    assert exists(directory, "uid=bob,ou=people,dc=other,dc=org")
    people.write_text("id,uid,company\n1,ann,example\n2,bob,other\n")
    second = provision("run", pipe, "--output", "json")
    assert second.code == 0, second.out + second.err
    assert second.json()["object_types"]["user"]["deleted"] == 1
    assert not exists(directory, "uid=cy,ou=people,dc=other,dc=org")
    again = provision("run", pipe, "--output", "json").json()["object_types"]["user"]
    assert again["added"] + again["updated"] + again["renamed"] + again["deleted"] == 0, again


def test_a_move_into_the_other_partition_re_creates_the_entry_there(provision, directory, tmp_path: Path):
    """LDAP cannot modDN across databases (affectsMultipleDSAs): the entry is deleted and added at
    its new DN with what it held, in the same run; its group membership follows by DN, and a
    second run changes nothing."""
    data = tmp_path / "hr"
    data.mkdir()
    people = data / "people.csv"
    people.write_text("id,uid,company\n1,ann,example\n2,bob,other\n")
    (data / "groups.csv").write_text("id,cn,members\nG,all,1;2\n")
    types = OBJECT_TYPES.replace('name: "uid={uid},ou=people,dc={o},dc=org"}',
                                 'name: "uid={uid},ou=people,dc={o},dc=org", partition: "dc={o},dc=org"}') + """\
  - name: group
    source: {connector: hr, object: groups, anchor: id}
    target: {connector: dir, object: groupOfNames, name: "cn={cn},ou=groups,dc=example,dc=org"}
    mapping:
      - {target: cn, source: cn}
      - {target: member, source: members, reference: user, multi_valued: true}
"""
    pipe = manifest(tmp_path, directory, "ldap-cross", types, data, partitions=("dc=example,dc=org", "dc=other,dc=org"),
                    hr_objects='{groups: {multi_valued: {members: ";"}}}')
    assert provision("run", pipe).code == 0
    people.write_text("id,uid,company\n1,ann,other\n2,bob,other\n")
    moved = provision("run", pipe, "--output", "json")
    assert moved.code == 0, moved.out + moved.err
    assert moved.json()["object_types"]["user"]["renamed"] == 1
    assert exists(directory, "uid=ann,ou=people,dc=other,dc=org")
    assert not exists(directory, "uid=ann,ou=people,dc=example,dc=org")
    conn = admin(directory)
    conn.search("cn=all,ou=groups,dc=example,dc=org", "(objectClass=*)", ldap3.BASE, attributes=["member"])
    members = {m.lower() for m in conn.response[0]["attributes"]["member"]}
    conn.unbind()
    assert members == {"uid=ann,ou=people,dc=other,dc=org", "uid=bob,ou=people,dc=other,dc=org"}
    again = provision("run", pipe, "--output", "json").json()["object_types"]
    assert all(c["added"] + c["updated"] + c["renamed"] + c["deleted"] == 0 for c in again.values()), again


KILL_AFTER_DELETE = """
import os, signal, sys
import ldap3
from runner import cli
original = ldap3.Connection.delete
def delete(self, *a, **kw):
    answer = original(self, *a, **kw)
    os.kill(os.getpid(), signal.SIGKILL)  # the move deleted the entry; its add never happens
    return answer
ldap3.Connection.delete = delete
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_run_killed_between_the_delete_and_the_add_of_a_move_converges(directory, tmp_path: Path, provision):
    import os
    import signal
    import subprocess
    import sys

    data = tmp_path / "hr"
    data.mkdir()
    people = data / "people.csv"
    people.write_text("id,uid,company\n1,ann,example\n2,bob,other\n")
    types = OBJECT_TYPES.replace('name: "uid={uid},ou=people,dc={o},dc=org"}',
                                 'name: "uid={uid},ou=people,dc={o},dc=org", partition: "dc={o},dc=org"}')
    pipe = manifest(tmp_path, directory, "ldap-cross-kill", types, data,
                    partitions=("dc=example,dc=org", "dc=other,dc=org"))
    script = tmp_path / "kill_after_delete.py"
    script.write_text(KILL_AFTER_DELETE)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def run():  # in this process: only the run to be killed needs one of its own
        return provision("run", pipe, "--output", "json")

    assert run().code == 0
    people.write_text("id,uid,company\n1,ann,other\n2,bob,other\n")
    killed = subprocess.run([sys.executable, str(script), "run", str(pipe), "--output", "json"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not exists(directory, "uid=ann,ou=people,dc=example,dc=org")  # deleted, not added yet
    rerun = run()
    assert rerun.code == 0, rerun.err + rerun.out
    assert exists(directory, "uid=ann,ou=people,dc=other,dc=org")
    conn = admin(directory)
    conn.search("dc=other,dc=org", "(uid=ann)", ldap3.SUBTREE, attributes=["1.1"])
    assert len(conn.response) == 1  # one entry for ann, not two
    conn.unbind()
    again = run().json()["object_types"]
    assert all(c["added"] + c["updated"] + c["renamed"] + c["deleted"] + c["failed"] == 0 for c in again.values())
