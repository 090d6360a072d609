"""Groups: membership changes by difference, and an emptied groupOfNames stays valid.

A one-member change to a 5,000-member group is one modify carrying one value (the accesslog
shows what slapd received). A group whose members all leave keeps the configured placeholder
member (groupOfNames needs one), and the placeholder never shows in what the connector reads.
"""

from __future__ import annotations

import ldap3

from .helpers import admin, connector, op

BIG = 5000


def member(i: int) -> str:
    return f"uid=m{i:05d},ou=people,dc=example,dc=org"


def last_modify(server, dn: str) -> list[str]:
    """The reqMod values of the newest logged modify of ``dn``."""
    conn = admin(server)
    conn.search("cn=accesslog", f"(&(objectClass=auditModify)(reqDN={dn}))", ldap3.LEVEL, attributes=["reqMod", "reqStart"])
    newest = max(conn.response, key=lambda e: e["attributes"]["reqStart"])
    conn.unbind()
    return [v.decode() if isinstance(v, bytes) else v for v in newest["attributes"]["reqMod"]]


def test_one_member_added_and_one_removed_is_one_modify_of_two_values(directory, tmp_path):
    dir = connector(directory, tmp_path)
    dir.open()
    try:
        group = "cn=everyone,dc=example,dc=org"
        [added] = dir.apply([op("add", object="groupOfNames", name=group,
                                attributes={"cn": "everyone", "member": [member(i) for i in range(BIG)]})])
        assert added.ok, added.error
        [changed] = dir.apply([op("update", 2, object="groupOfNames", anchor=added.anchor, name=group,
                                  add_values={"member": [member(BIG)]}, remove_values={"member": [member(7)]})])
        assert changed.ok, changed.error
        sent = [m for m in last_modify(directory, group) if m.lower().startswith("member:")]
        assert sorted(sent) == sorted([f"member:+ {member(BIG)}", f"member:- {member(7)}"]), sent[:5]
        record = dir.get("groupOfNames", added.anchor)
        assert len(record.attributes["member"]) == BIG
        assert member(BIG) in record.attributes["member"] and member(7) not in record.attributes["member"]
    finally:
        dir.close()


def test_a_group_whose_members_all_leave_keeps_the_placeholder_which_is_never_read(directory, tmp_path):
    placeholder = "cn=nobody,dc=example,dc=org"
    dir = connector(directory, tmp_path, objects={"groupOfNames": {"placeholder": placeholder}})
    dir.open()
    try:
        group = "cn=team,dc=example,dc=org"
        [added] = dir.apply([op("add", object="groupOfNames", name=group, attributes={"cn": "team", "member": []})])
        assert added.ok, added.error
        assert not dir.get("groupOfNames", added.anchor).attributes.get("member")
        [grew] = dir.apply([op("update", 2, object="groupOfNames", anchor=added.anchor,
                               add_values={"member": [member(1), member(2)]})])
        assert grew.ok, grew.error
        assert sorted(dir.get("groupOfNames", added.anchor).attributes["member"]) == [member(1), member(2)]
        [emptied] = dir.apply([op("update", 3, object="groupOfNames", anchor=added.anchor,
                                  remove_values={"member": [member(1), member(2)]})])
        assert emptied.ok, emptied.error
        assert dir.get("groupOfNames", added.anchor).attributes.get("member") == []
        conn = admin(directory)
        conn.search(group, "(objectClass=*)", ldap3.BASE, attributes=["member"])
        assert conn.response[0]["attributes"]["member"] == [placeholder], "slapd holds the placeholder"
        conn.unbind()
        [back] = dir.apply([op("update", 4, object="groupOfNames", anchor=added.anchor,
                               add_values={"member": [member(3)]})])
        assert back.ok and dir.get("groupOfNames", added.anchor).attributes["member"] == [member(3)]
    finally:
        dir.close()
