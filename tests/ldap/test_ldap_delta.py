"""Delta imports from a real slapd: the accesslog, and modifyTimestamp where there is no accesslog.

Changes are made behind the connector's back (another LDAP client, as an admin would), and the
next delta read returns exactly the entries they touched, in their current state, under their
entryUUID: a modify, a modDN (new name, same anchor), an add and a delete. On a slapd without
the accesslog overlay the connector reads ``modifyTimestamp >=`` instead.
"""

from __future__ import annotations

import time

import ldap3
import pytest
from servers.slapd import Slapd

from .helpers import admin, connector, op


def person(i: int) -> dict:
    return {"cn": f"Person {i}", "sn": f"P{i}", "employeeNumber": f"E{i}"}


def seed(dir, count: int, base: str = "dc=example,dc=org") -> dict[int, str]:
    results = list(dir.apply([op("add", i + 1, name=f"uid=p{i},{base}", attributes=person(i)) for i in range(count)]))
    assert all(r.ok for r in results), [r.error for r in results]
    return {i: r.anchor for i, r in enumerate(results)}


def read(dir, watermark=None, partition="dc=example,dc=org"):
    pages = list(dir.read("inetOrgPerson", partition, watermark, page_size=2))
    return [r for p in pages for r in p.records], pages[-1].watermark


def test_the_accesslog_returns_what_another_client_changed_each_once(directory, tmp_path):
    dir = connector(directory, tmp_path)
    dir.open()
    try:
        anchors = seed(dir, 6)
        full, watermark = read(dir)
        assert len(full) == 6 and dir.delta_mode == "accesslog"
        conn = admin(directory)
        conn.modify("uid=p1,dc=example,dc=org", {"sn": [(ldap3.MODIFY_REPLACE, ["First"])]})
        conn.modify("uid=p1,dc=example,dc=org", {"sn": [(ldap3.MODIFY_REPLACE, ["Second"])]})
        conn.modify_dn("uid=p2,dc=example,dc=org", "uid=moved")
        conn.delete("uid=p3,dc=example,dc=org")
        conn.add("uid=new,dc=example,dc=org", ["inetOrgPerson"], person(9))
        conn.add("uid=elsewhere,dc=other,dc=org", ["inetOrgPerson"], person(10))  # another partition
        conn.unbind()
        changes, next_mark = read(dir, watermark)
        by_anchor = {r.anchor: r for r in changes}
        assert len(changes) == len(by_anchor) == 4, [(r.name, r.deleted) for r in changes]
        assert by_anchor[anchors[1]].attributes["sn"] == "Second"
        assert by_anchor[anchors[2]].name.lower() == "uid=moved,dc=example,dc=org"
        assert by_anchor[anchors[3]].deleted
        [added] = [r for r in changes if r.anchor not in anchors.values()]
        assert added.attributes["employeeNumber"] == "E9"
        assert read(dir, next_mark)[0] == [], "nothing changed since"
        other, _ = read(dir, None, partition="dc=other,dc=org")
        assert [r.attributes["employeeNumber"] for r in other] == ["E10"]
    finally:
        dir.close()


def test_changes_made_by_provision_itself_come_back_too(directory, tmp_path):
    dir = connector(directory, tmp_path)
    dir.open()
    try:
        anchors = seed(dir, 3)
        _, watermark = read(dir)
        [done] = dir.apply([op("update", 9, anchor=anchors[0], attributes={"title": "Boss"})])
        assert done.ok
        changes, _ = read(dir, watermark)
        assert [(r.anchor, r.attributes["title"]) for r in changes] == [(anchors[0], "Boss")]
    finally:
        dir.close()


@pytest.fixture(scope="module")
def plain_slapd(tmp_path_factory) -> Slapd:
    server = Slapd.start(tmp_path_factory.mktemp("plain") / "slapd", ("dc=example,dc=org",), accesslog=False)
    yield server
    server.stop()


def test_without_an_accesslog_modify_timestamp_finds_adds_and_changes(plain_slapd, tmp_path):
    dir = connector(plain_slapd, tmp_path, partitions=["dc=example,dc=org"])
    dir.open()
    try:
        assert dir.delta_mode == "modify_timestamp"
        anchors = seed(dir, 3)
        full, watermark = read(dir)
        assert len(full) == 3
        assert read(dir, watermark)[0] == [], "what the full read returned is not returned again"
        time.sleep(1.05)  # modifyTimestamp counts seconds
        conn = admin(plain_slapd)
        conn.modify("uid=p0,dc=example,dc=org", {"sn": [(ldap3.MODIFY_REPLACE, ["Changed"])]})
        conn.add("uid=new,dc=example,dc=org", ["inetOrgPerson"], person(7))
        conn.unbind()
        changes, next_mark = read(dir, watermark)
        assert sorted(r.attributes["sn"] for r in changes) == ["Changed", "P7"]
        assert anchors[0] in {r.anchor for r in changes}
        assert read(dir, next_mark)[0] == []
    finally:
        dir.close()
