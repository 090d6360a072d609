"""Delta imports from a real slapd: the accesslog, and modifyTimestamp where there is no accesslog.

Changes are made behind the connector's back (another LDAP client, as an admin would), and the
next delta read returns exactly the entries they touched, in their current state, under their
entryUUID: a modify, a modDN (new name, same anchor), an add and a delete. On a slapd without
the accesslog overlay the connector reads ``modifyTimestamp >=`` instead. An accesslog purged
past the watermark, or a directory older than it, asks for a full read, and a run then reads
everything and warns why.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import ldap3
import pytest
import sqlalchemy as sa
from servers.slapd import Slapd

from runner.connectors.base import WatermarkExpired

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


def csn_of(conn: ldap3.Connection, dn: str) -> str:
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["entryCSN"])
    return str(conn.response[0]["attributes"]["entryCSN"][0])


def purge_accesslog(conn: ldap3.Connection, through: str) -> int:
    """Delete the accesslog's entries up to CSN ``through``, oldest first, as slapd's
    olcAccessLogPurge does with entries past their age; how many went."""
    conn.search("cn=accesslog", f"(&(objectClass=auditWriteObject)(entryCSN<={through}))", ldap3.LEVEL,
                attributes=["1.1"])
    doomed = [e["dn"] for e in conn.response if e.get("type") == "searchResEntry"]
    for dn in doomed:
        assert conn.delete(dn), conn.result
    return len(doomed)


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


# ---- a watermark the directory no longer reaches: a full read, with a warning that says why ----


def test_an_accesslog_purged_past_the_watermark_asks_for_a_full_read(directory, tmp_path):
    """Two changes after the last read, and the log purged through the first of them: a delta
    read would return only the second. The log holds nothing back to the watermark while the
    suffix changed since, so the read refuses, saying so."""
    dir = connector(directory, tmp_path)
    dir.open()
    try:
        seed(dir, 3)
        _, watermark = read(dir)
        conn = admin(directory)
        conn.modify("uid=p1,dc=example,dc=org", {"sn": [(ldap3.MODIFY_REPLACE, ["Purged"])]})
        first = csn_of(conn, "uid=p1,dc=example,dc=org")
        conn.modify("uid=p2,dc=example,dc=org", {"sn": [(ldap3.MODIFY_REPLACE, ["Kept"])]})
        assert [r.attributes["sn"] for r in read(dir, watermark)[0]] == ["Purged", "Kept"]  # the log intact: a delta
        assert purge_accesslog(conn, first) >= 4
        conn.unbind()
        since = json.loads(watermark)["marks"]["dc=example,dc=org"]
        with pytest.raises(WatermarkExpired, match=f"cn=accesslog holds no write logged at or before the stored "
                                                   f"watermark {since}, yet dc=example,dc=org changed since"):
            read(dir, watermark)
        full, watermark = read(dir)
        assert sorted(r.attributes["sn"] for r in full) == ["Kept", "P0", "Purged"]
        assert read(dir, watermark)[0] == []  # and from there on, deltas again
    finally:
        dir.close()


def test_a_watermark_newer_than_the_directory_asks_for_a_full_read(directory, tmp_path):
    """A directory restored from a backup older than the last read: its contextCSN is older than
    the watermark."""
    dir = connector(directory, tmp_path)
    dir.open()
    try:
        seed(dir, 1)
        _, watermark = read(dir)
        marks = json.loads(watermark)
        later = "29991231235959.000000Z#000000#000#000000"
        marks["marks"]["dc=example,dc=org"] = later
        with pytest.raises(WatermarkExpired, match=f"dc=example,dc=org's contextCSN is .*, older than the stored "
                                                   f"watermark {later}: the directory was restored from an older "
                                                   "backup"):
            read(dir, json.dumps(marks))
    finally:
        dir.close()


PIPELINE = """version: 1
name: directory-to-app
state: "sqlite:///{folder}/state.db"
connectors:
  dir:
    type: ldap
    url: "{url}"
    bind_dn: "{bind_dn}"
    password: "{password}"
    partitions: ["dc=example,dc=org"]
  app:
    type: sql
    url: "sqlite:///{folder}/app.db"
    create: true
    init_sql: app.sql
    objects: {{accounts: {{table: accounts, key: number}}}}
object_types:
  - name: person
    source: {{connector: dir, object: inetOrgPerson, anchor: employeeNumber}}
    target: {{connector: app, object: accounts}}
    when_deleted: delete
    mapping:
      - {{target: number, source: employeeNumber, apply: on_create}}
      - {{target: surname, source: sn}}
"""


def test_a_run_after_the_accesslog_was_purged_reads_everything_and_says_why(directory, tmp_path: Path, provision):
    """The directory as a source, its accesslog purged past the last run's watermark (a deletion
    and a change among the purged writes): the next run warns why, reads the directory whole,
    and the target gets the change and loses the deleted person; exit 0. The run after is a
    delta again."""
    (tmp_path / "app.sql").write_text("CREATE TABLE IF NOT EXISTS accounts (number VARCHAR(16) PRIMARY KEY, "
                                      "surname VARCHAR(64))")
    manifest = tmp_path / "pipeline.yaml"
    manifest.write_text(PIPELINE.format(folder=tmp_path, url=directory.url, bind_dn=directory.root_dn,
                                        password=directory.root_password))
    conn = admin(directory)
    for i in range(4):
        conn.add(f"uid=p{i},dc=example,dc=org", ["inetOrgPerson"], person(i))

    def run() -> tuple[dict, str]:
        result = provision("run", manifest, "--output", "json")
        assert result.code == 0, result.err + result.out
        return result.json()["object_types"]["person"], result.err

    def app() -> dict[str, str]:
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
        with engine.connect() as db:
            rows = dict(db.execute(sa.text("SELECT number, surname FROM accounts")).all())
        engine.dispose()
        return rows

    try:
        assert run()[0]["added"] == 4
        conn.delete("uid=p3,dc=example,dc=org")
        conn.modify("uid=p1,dc=example,dc=org", {"sn": [(ldap3.MODIFY_REPLACE, ["Purged"])]})
        purge_accesslog(conn, csn_of(conn, "uid=p1,dc=example,dc=org"))
        conn.modify("uid=p2,dc=example,dc=org", {"sn": [(ldap3.MODIFY_REPLACE, ["Kept"])]})
        counts, warned = run()
        assert "provision: person: cn=accesslog holds no write logged at or before the stored watermark" in warned
        assert "the accesslog was purged past the watermark" in warned and "; reading everything instead" in warned
        assert app() == {"E0": "P0", "E1": "Purged", "E2": "Kept"}
        assert (counts["imported"], counts["updated"], counts["deleted"]) == (3, 2, 1)
        counts, warned = run()
        assert (counts["imported"], warned) == (0, "")
    finally:
        conn.unbind()
