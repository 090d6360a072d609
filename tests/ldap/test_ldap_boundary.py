"""Nothing is written outside the connector's partitions, and no entry gets a broken RDN.

A DN template whose fixed end lies outside every partition, or whose first RDN has no ``attr=``
or an empty value, is refused by ``provision validate`` at the template's line. Where only the
values decide the DN (a template that is one mapped attribute), the run fails those objects
alone, says why in ``provision status``, and slapd holds nothing outside the partition, not
even in a suffix it serves but the connector was not given.
"""

from __future__ import annotations

from pathlib import Path

import ldap3

from .helpers import admin, connector, manifest, op

PARTITION = "dc=example,dc=org"


def user_type(name: str, template: str) -> str:
    """An object type (YAML under ``object_types:``) of people from hr into ``dir`` named by ``template``."""
    return f"""\
  - name: {name}
    source: {{connector: hr, object: people, anchor: id}}
    target: {{connector: dir, object: inetOrgPerson, name: "{template}"}}
    mapping:
      - {{target: uid, source: uid}}
      - {{target: cn, source: uid}}
      - {{target: sn, source: uid}}
      - {{target: description, source: dn}}
"""


def entries(server, base: str) -> list[str]:
    """Every DN below ``base`` (itself included), lower-case."""
    conn = admin(server)
    conn.search(base, "(objectClass=*)", ldap3.SUBTREE, attributes=["1.1"])
    found = [e["dn"].lower() for e in conn.response if e.get("type") == "searchResEntry"]
    conn.unbind()
    return found


def problem_lines(err: str) -> dict[int, str]:
    """``FILE:LINE:COL: path: message`` lines of ``provision validate`` by line number."""
    out = {}
    for line in err.splitlines():
        _, number, _, rest = line.split(":", 3)
        out[int(number)] = rest.strip()
    return out


def line_of(path: Path, snippet: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if snippet in line)


def test_validate_refuses_templates_outside_the_partition_or_without_an_rdn(provision, slapd, tmp_path: Path):
    outside = "uid={uid},ou=people,dc=nonexistent,dc=com"
    types = (user_type("outside", outside) + user_type("bare", "{uid},ou=people,dc=example,dc=org")
             + user_type("empty", "uid=,ou=people,dc=example,dc=org")
             + user_type("by_company", "uid={uid},ou=people,dc={sn},dc=org"))  # the value picks the partition
    path = manifest(tmp_path, slapd, "boundary", types, tmp_path / "hr", partitions=(PARTITION, "dc=other,dc=org"))
    result = provision("validate", path)
    assert result.code == 2, result.out + result.err
    assert all(line.startswith(f"{path}:") for line in result.err.splitlines()), result.err
    found = problem_lines(result.err)
    assert sorted(found) == [line_of(path, outside), line_of(path, "{uid},ou=people,dc=example"),
                             line_of(path, "uid=,ou=people")], result.err
    assert found[line_of(path, outside)] == (
        f"object_types[0].target.name: DN '{outside}' lies outside every partition of connector 'dir' "
        "(dc=example,dc=org; dc=other,dc=org); fix target.name or add the partition")
    assert "RDN without an attribute type, '{uid}'" in found[line_of(path, "{uid},ou=people,dc=example")]
    assert "RDN with an empty value, 'uid='" in found[line_of(path, "uid=,ou=people")]


def test_validate_refuses_a_full_dn_outside_the_partitions_with_relative_names(provision, slapd, tmp_path: Path):
    path = manifest(tmp_path, slapd, "relative", user_type("user", "uid={uid},ou=people,dc=example,dc=com"),
                    tmp_path / "hr")
    path.write_text(path.read_text().replace("    partitions:", "    names: relative\n    partitions:"))
    result = provision("validate", path)
    assert result.code == 2
    assert f"{path}:{line_of(path, 'dc=example,dc=com')}:" in result.err
    assert "ends in a domain component" in result.err and "names: relative" in result.err
    path.write_text(path.read_text().replace(",dc=example,dc=com", ""))
    assert provision("validate", path).code == 0, "a name relative to the partition is fine"


def test_validate_refuses_a_disable_container_in_another_naming_context(provision, slapd, tmp_path: Path):
    path = manifest(tmp_path, slapd, "move-to", user_type("user", "uid={uid},ou=people,dc=example,dc=org"),
                    tmp_path / "hr")
    path.write_text(path.read_text().replace(
        "    partitions:", '    objects: {inetOrgPerson: {disable: {move_to: "ou=gone,dc=nonexistent,dc=com"}}}\n'
                           "    partitions:"))
    result = provision("validate", path)
    assert result.code == 2
    assert f"{path}:{line_of(path, 'move_to')}:" in result.err
    assert "connectors.dir.objects.inetOrgPerson.disable.move_to: disable.move_to 'ou=gone,dc=nonexistent,dc=com' " \
           "ends in a domain component" in result.err, result.err


def test_a_run_fails_only_the_objects_whose_dn_escapes_and_writes_nothing_outside(provision, directory,
                                                                                   tmp_path: Path):
    data = tmp_path / "hr"
    data.mkdir()
    rows = {"1": ("ann", "uid=ann,ou=people,dc=example,dc=org"),
            "2": ("bob", "uid=bob,ou=people,dc=nonexistent,dc=com"),
            "3": ("cy", "uid=cy,ou=people,dc=other,dc=org"),  # a suffix slapd serves, not a partition of dir
            "4": ("dee", "uid=,ou=people,dc=example,dc=org"),
            "5": ("eve", "eve,ou=people,dc=example,dc=org")}
    (data / "people.csv").write_text("id,uid,dn\n" + "".join(f'{k},{u},"{dn}"\n' for k, (u, dn) in rows.items()))
    # the HR system assigns each account its directory DN, kept on the entry in description
    path = manifest(tmp_path, directory, "boundary-run", user_type("user", "{description}"), data)
    assert provision("validate", path).code == 0, "only the values decide these DNs"

    run = provision("run", path, "--output", "json")
    assert run.code == 1, run.out + run.err
    counts = run.json()["object_types"]["user"]
    assert (counts["added"], counts["failed"]) == (1, 4), counts

    assert "uid=ann,ou=people,dc=example,dc=org" in entries(directory, PARTITION)
    assert not [dn for dn in entries(directory, PARTITION) if "nonexistent" in dn or "uid=," in dn or "eve" in dn]
    assert not [dn for dn in entries(directory, "dc=other,dc=org") if "cy" in dn]

    status = provision("status", path, "--failures", "all")
    assert ("DN 'uid=bob,ou=people,dc=nonexistent,dc=com' lies outside every partition of connector 'dir' "
            "(dc=example,dc=org); fix target.name or add the partition") in status.out, status.out
    assert "DN 'uid=cy,ou=people,dc=other,dc=org' lies outside every partition" in status.out
    assert "DN 'uid=,ou=people,dc=example,dc=org' has an RDN with an empty value, 'uid='" in status.out
    assert "DN 'eve,ou=people,dc=example,dc=org' has an RDN without an attribute type, 'eve'" in status.out


def test_an_export_stored_with_an_outside_dn_is_refused_by_the_write_itself(directory, tmp_path: Path):
    """Exports computed before names were checked are still in the state store of an upgraded
    installation: the add itself refuses them instead of creating ``dc=com`` below the partition."""
    dir = connector(directory, tmp_path, partitions=[PARTITION])
    dir.open()
    try:
        [refused] = dir.apply([op("add", name="uid=old,dc=nonexistent,dc=com", attributes={"cn": "o", "sn": "o"})])
    finally:
        dir.close()
    assert not refused.ok and "lies outside every partition of connector 'directory'" in str(refused.error)
    assert entries(directory, PARTITION) == [PARTITION]
