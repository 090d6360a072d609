"""The server's subschema at work: discover, validate --online, and values compared by matching rule.

An entry someone created by hand under the DN provision would use is adopted (entryAlreadyExists
on the add → found by its DN → linked), and values that differ only as the attribute's matching
rule ignores (``caseIgnoreMatch``: case and spaces) are not rewritten — on that run or any later.
"""

from __future__ import annotations

from pathlib import Path

import ldap3

from .helpers import admin, connector, manifest

OBJECT_TYPES = """\
  - name: user
    source: {connector: hr, object: people, anchor: id}
    target: {connector: dir, object: inetOrgPerson, name: "uid={uid},dc=example,dc=org"}
    mapping:
      - {target: uid, source: uid}
      - {target: cn, source: name}
      - {target: sn, source: surname}
      - {target: TITLE, source: title}
"""


def pipeline(tmp_path: Path, server, title: str = "title") -> Path:
    data = tmp_path / "hr"
    data.mkdir(exist_ok=True)
    (data / "people.csv").write_text("id,uid,name,surname,title\n1,jsmith,John Smith,Smith,Head of Sales\n"
                                     "2,adoe,Ann Doe,Doe,Engineer\n")
    return manifest(tmp_path, server, "ldap-schema", OBJECT_TYPES.replace("TITLE", title), data)


def test_discover_describes_object_classes_from_the_subschema(directory, tmp_path):
    dir = connector(directory, tmp_path)
    dir.open()
    try:
        infos = {i.name: i for i in dir.discover()}
        person = infos["inetOrgPerson"]
        assert person.complete and "dc=example,dc=org" in person.partitions
        attributes = {a.name: a for a in person.attributes}
        assert attributes["sn"].required and attributes["cn"].required and not attributes["mail"].required
        assert not attributes["displayName"].multi_valued and attributes["mail"].multi_valued
        assert attributes["manager"].type == "dn" and attributes["manager"].normalizations == ("dn",)
        assert "case_insensitive" in attributes["mail"].normalizations
        assert "objectClass" not in attributes
        assert dir.negotiate("inetOrgPerson").normalizations["cn"] == ("case_insensitive", "trim", "collapse_spaces")
        info = dir.server_info()
        assert "dc=example,dc=org" in info["naming_contexts"] and info["delta"] == "accesslog"
        assert any("Paged" in c for c in info["supported_controls"])
    finally:
        dir.close()


def test_validate_online_rejects_an_attribute_the_object_class_does_not_allow(provision, directory, tmp_path):
    assert provision("validate", "--online", pipeline(tmp_path, directory)).code == 0
    bad = provision("validate", "--online", pipeline(tmp_path, directory, title="titel"))
    assert bad.code == 2
    assert "titel" in bad.out + bad.err and "title" in (bad.out + bad.err).replace("titel", "")


def test_an_entry_made_by_hand_is_adopted_and_case_differences_are_not_rewritten(provision, directory, tmp_path):
    conn = admin(directory)
    conn.add("uid=jsmith,dc=example,dc=org", ["inetOrgPerson"],
             {"cn": "JOHN  SMITH", "sn": "smith", "title": "head of sales"})
    conn.unbind()
    pipe = pipeline(tmp_path, directory)
    first = provision("run", pipe, "--output", "json")
    assert first.code == 0, first.out + first.err
    conn = admin(directory)
    conn.search("dc=example,dc=org", "(objectClass=inetOrgPerson)", ldap3.SUBTREE, attributes=["cn", "title"])
    entries = {e["dn"].lower(): e["attributes"] for e in conn.response}
    conn.unbind()
    assert len(entries) == 2, "adopted, not added twice"
    assert entries["uid=jsmith,dc=example,dc=org"]["cn"] == ["JOHN  SMITH"], "equal under caseIgnoreMatch: left alone"
    assert entries["uid=jsmith,dc=example,dc=org"]["title"] == ["head of sales"]
    again = provision("run", pipe, "--output", "json").json()["object_types"]["user"]
    assert again["added"] + again["updated"] == 0, again


def test_an_entry_deleted_behind_provisions_back_is_created_again(provision, directory, tmp_path):
    """noSuchObject on the modify drops the link, and the same run adds the entry anew."""
    pipe = pipeline(tmp_path, directory)
    assert provision("run", pipe).code == 0
    conn = admin(directory)
    conn.delete("uid=adoe,dc=example,dc=org")
    conn.unbind()
    people = tmp_path / "hr" / "people.csv"
    people.write_text(people.read_text().replace("Engineer", "Architect"))
    repaired = provision("run", pipe, "--output", "json")
    user = repaired.json()["object_types"]["user"]
    assert repaired.code == 0 and (user["added"], user["failed"]) == (1, 0), repaired.out
    assert provision("run", pipe, "--output", "json").json()["object_types"]["user"]["added"] == 0
    conn = admin(directory)
    conn.search("uid=adoe,dc=example,dc=org", "(objectClass=*)", ldap3.BASE, attributes=["title"])
    assert conn.response[0]["attributes"]["title"] == ["Architect"]
    conn.unbind()
