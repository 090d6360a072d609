"""Files as targets: `provision run` from a CSV HR export into csv, jsonl and ldif files.

Each format in both modes: the first run writes every object; a second run changes nothing (a
snapshot stays byte for byte the same, no change record is appended); a changed person is
updated, a terminated one disabled and a removed one deleted. In snapshot mode the file is the
target: a row deleted by hand is found missing by `provision check` and put back by a
reconciling run. What the csv writer writes, the csv source reads back unchanged (quotes, commas,
line breaks, leading spaces, non-ASCII, lists in one cell). docs/files.md describes it all.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import group, person, write_hr

from runner.connectors.base import ConnectorContext
from runner.connectors.csvfile import CsvConnector as CsvSource
from runner.connectors.files import rfc2849

REPO = Path(__file__).resolve().parents[2]

USER_MAPPING = """
      - {target: user_name, expression: "lower(split(email, '@')[0])"}
      - {target: display_name, expression: "join(' ', [coalesce(preferred_name, first_name), last_name])"}
      - {target: email, source: email}
      - {target: title, source: title}
      - {target: manager, source: manager_id, reference: user}
      - {target: active, constant: true}"""
GROUP_MAPPING = """
      - {target: name, source: name}
      - {target: description, source: description}
      - {target: members, source: members, reference: user, multi_valued: true}"""

BLOCKS = {
    "csv": """
    type: csv
    path: out
    mode: {mode}
    objects:
      users:
        key: user_name
        columns: [user_name, display_name, email, title, manager, active]
        types: {{active: boolean}}
      groups: {{key: name, columns: [name, description, members], multi_valued: {{members: ";"}}}}""",
    "jsonl": """
    type: jsonl
    path: out
    mode: {mode}
    objects:
      users: {{key: user_name}}
      groups: {{key: name}}""",
}

MANIFEST = """version: 1
name: files-{fmt}
state: "sqlite:///{tmp}/state.db"
connectors:
  hr:
    type: csv
    path: hr
    objects: {{groups: {{multi_valued: {{members: ";"}}}}}}
  out:{block}
object_types:
  - name: user
    source: {{connector: hr, object: people, anchor: employee_id}}
    target: {{connector: out, object: users, disable: {{active: false}}}}
    scope: {{any: [{{attribute: status, op: in, value: [active, leave]}}]}}
    when_out_of_scope: disable
    when_deleted: delete
    mapping:{users}
  - name: group
    source: {{connector: hr, object: groups, anchor: group_id}}
    target: {{connector: out, object: groups}}
    when_deleted: delete
    mapping:{groups}
"""

# The "review an LDAP export as LDIF" case: manifests/hr-to-ldap.yaml's mappings, an ldif target.
LDIF_MANIFEST = """version: 1
name: files-ldif
state: "sqlite:///{tmp}/state.db"
connectors:
  hr:
    type: csv
    path: hr
    objects: {{groups: {{multi_valued: {{members: ";"}}}}}}
  out:
    type: ldif
    path: out
    mode: {mode}
    objects:
      inetOrgPerson: {{file: users.ldif}}
      groupOfNames: {{file: groups.ldif}}
object_types:
  - name: user
    source: {{connector: hr, object: people, anchor: employee_id}}
    target:
      connector: out
      object: inetOrgPerson
      name: "uid={{uid}},ou={{ou}},ou=people,dc=example,dc=org"
      disable: {{employeeType: disabled}}
    scope: {{any: [{{attribute: status, op: in, value: [active, leave]}}]}}
    when_out_of_scope: disable
    when_deleted: delete
    mapping: {repo}/mappings/person-to-ldap-inetorgperson.yaml
  - name: group
    source: {{connector: hr, object: groups, anchor: group_id}}
    target: {{connector: out, object: groupOfNames, name: "cn={{cn}},ou=groups,dc=example,dc=org"}}
    when_deleted: delete
    mapping: {repo}/mappings/group-to-ldap-groupofnames.yaml
"""

FILES = {"csv": ("users.csv", "groups.csv"), "jsonl": ("users.jsonl", "groups.jsonl"),
         "ldif": ("users.ldif", "groups.ldif")}


def people() -> list[dict[str, str]]:
    """Eight people, with the values files get wrong: quotes, commas, line breaks, leading spaces, non-ASCII."""
    return [
        person("E1", "ann", "lee", title="Head of Sales"),
        person("E2", "bob", "ray", manager="E1", title='Lead "Platform", EMEA'),
        person("E3", "cy", "oak", manager="E1", title=" leading space"),
        person("E4", "dee", "fox", manager="E2", title="two\nlines"),
        person("E5", "łukasz", "żółw", manager="E2", first_name="Łukasz", last_name="Żółw",
               email="lukasz.zolw@example.org", title="Ingénieur"),
        person("E6", "eve", "kim", manager="E3", title=": colon first"),
        person("E7", "fay", "lin", manager="E3", title="<angle"),
        person("E8", "gus", "moe", status="terminated", title="Gone"),
    ]


def groups() -> list[dict[str, str]]:
    return [group("G1", "Everyone", ["E1", "E2", "E3", "E4", "E5", "E6", "E7"], description="All, of us"),
            group("G2", "Leads", ["E1", "E2"], description="")]


class Files:
    """A pipeline from hand-made HR data (tmp/hr) into one format's files (tmp/out)."""

    def __init__(self, tmp: Path, provision: Any, fmt: str, mode: str = "snapshot"):
        self.tmp, self.provision, self.fmt, self.mode = tmp, provision, fmt, mode
        self.people, self.groups = people(), groups()
        self.manifest = tmp / "files.yaml"
        tmp.mkdir(parents=True, exist_ok=True)
        if fmt == "ldif":
            text = LDIF_MANIFEST.format(tmp=tmp, mode=mode, repo=REPO)
        else:
            text = MANIFEST.format(tmp=tmp, fmt=fmt, block=BLOCKS[fmt].format(mode=mode), users=USER_MAPPING,
                                   groups=GROUP_MAPPING)
        self.manifest.write_text(text)
        self.write_hr()

    def write_hr(self) -> None:
        write_hr(self.tmp / "hr", self.people, self.groups)

    def person(self, eid: str) -> dict[str, str]:
        return next(p for p in self.people if p["employee_id"] == eid)

    def run(self, *extra: str) -> dict[str, Any]:
        result = self.provision("run", self.manifest, "--output", "json", *extra)
        assert result.code == 0, result.err + result.out
        return result.json()["object_types"]

    def path(self, which: int = 0) -> Path:
        return self.tmp / "out" / FILES[self.fmt][which]

    def snapshot(self) -> tuple[bytes, bytes]:
        return self.path(0).read_bytes(), self.path(1).read_bytes()

    def users(self) -> dict[str, dict[str, Any]]:
        """The user file's objects by user name (in changes mode: the change records folded)."""
        return read_objects(self.fmt, self.mode, self.path(0))


def read_objects(fmt: str, mode: str, path: Path) -> dict[str, dict[str, Any]]:
    if fmt == "csv" and mode == "snapshot":  # read by the csv *source*: the round trip
        source = CsvSource({"type": "csv", "path": str(path.parent), "objects": {"users": {"file": path.name}}},
                           ConnectorContext("back", path.parent))
        return {r.attributes["user_name"]: {k: v for k, v in r.attributes.items() if v is not None}
                for page in source.read("users") for r in page.records}
    if fmt == "csv":
        folded: dict[str, dict[str, Any]] = {}
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                op = row.pop("op")
                row.pop("op_key"), row.pop("time")
                if op == "delete":
                    folded.pop(row["user_name"], None)
                else:
                    folded[row["user_name"]] = {k: v for k, v in row.items() if v != ""}
        return folded
    if fmt == "jsonl" and mode == "snapshot":
        return {o["user_name"]: o for o in map(json.loads, path.read_text(encoding="utf-8").splitlines())}
    if fmt == "jsonl":
        folded = {}
        for record in map(json.loads, path.read_text(encoding="utf-8").splitlines()):
            folded.pop(record.get("old_id"), None)
            if record["op"] == "delete":
                folded.pop(record["id"], None)
            else:
                folded[record["id"]] = record["attributes"]
        return folded
    entries = {}
    for found in rfc2849.parse(path.read_text(encoding="utf-8")):
        assert found.changetype is None, "a change record in a snapshot"
        attributes = {k: v[0] if len(v) == 1 else v for k, v in found.attributes().items()}
        entries[attributes["uid"]] = {"dn": found.dn, **attributes}
    return entries


def records(fmt: str, path: Path) -> list[dict[str, Any]]:
    """The change records of a change file: op, the object's key, the operation's key."""
    if fmt == "jsonl":
        return [{"op": r["op"], "id": r["id"], "key": r["key"]} for r in map(json.loads, path.read_text().splitlines())]
    if fmt == "csv":
        with open(path, newline="", encoding="utf-8") as handle:
            return [{"op": r["op"], "id": r.get("user_name") or r.get("name"), "key": r["op_key"]}
                    for r in csv.DictReader(handle)]
    text = path.read_text(encoding="utf-8")
    keys = [line.split(" key: ")[1] for line in text.splitlines() if line.startswith("# ") and " key: " in line]
    found = list(rfc2849.parse(text))
    assert len(keys) == len(found), "every change record carries its operation's key"
    return [{"op": r.changetype, "id": r.dn, "key": k} for r, k in zip(found, keys, strict=True)]


def user_name(fmt: str, p: dict[str, str]) -> str:
    return p["email"].split("@")[0].lower()


DISABLED = {"csv": ("active", "false"), "jsonl": ("active", False), "ldif": ("employeeType", "disabled")}
TITLE = {"csv": "title", "jsonl": "title", "ldif": "title"}


@pytest.fixture(params=["csv", "jsonl", "ldif"])
def fmt(request: pytest.FixtureRequest) -> str:
    return request.param


def test_a_snapshot_is_the_whole_target_rewritten_only_when_something_changed(tmp_path: Path, provision, fmt: str):
    files = Files(tmp_path, provision, fmt)
    counts = files.run()
    assert (counts["user"]["added"], counts["group"]["added"]) == (7, 2)
    users = files.users()
    assert sorted(users) == sorted(user_name(fmt, p) for p in files.people if p["status"] == "active")
    for p in files.people[:7]:  # every awkward title comes back exactly
        assert users[user_name(fmt, p)][TITLE[fmt]] == p["title"]
    assert not list((tmp_path / "out").glob(".*")), "no journal or temporary file is left after a run"

    before = files.snapshot()
    stamps = [files.path(i).stat().st_mtime_ns for i in (0, 1)]
    again = files.run()
    assert all(c["unchanged"] == c["imported"] - c["out_of_scope"] for c in again.values()), again
    assert files.snapshot() == before, "a run that changes nothing leaves the files byte for byte the same"
    assert [files.path(i).stat().st_mtime_ns for i in (0, 1)] == stamps, "and does not even rewrite them"

    files.person("E2")["title"] = "Chief"
    files.person("E3")["status"] = "terminated"
    files.people = [p for p in files.people if p["employee_id"] != "E7"]
    files.groups[1]["members"] = "E1;E4"
    files.write_hr()
    counts = files.run()
    assert (counts["user"]["updated"], counts["user"]["disabled"], counts["user"]["deleted"]) == (1, 1, 1), counts
    users = files.users()
    assert users[user_name(fmt, files.person("E2"))][TITLE[fmt]] == "Chief"
    attribute, value = DISABLED[fmt]
    assert users[user_name(fmt, files.person("E3"))][attribute] == value
    assert "fay.lin" not in users
    check = provision("check", files.manifest, "--output", "json")
    assert check.code == 0, check.out + check.err  # what the file holds is what the mappings say


def test_changes_mode_appends_one_record_per_operation_carrying_its_key(tmp_path: Path, provision, fmt: str):
    files = Files(tmp_path, provision, fmt, mode="changes")
    files.run()
    first = records(fmt, files.path(0))
    assert [r["op"] for r in first] == ["add"] * 7
    assert all(r["key"].startswith(f"files-{fmt}/user/E") for r in first)
    before = files.snapshot()
    files.run()
    assert files.snapshot() == before, "a run with nothing to do appends nothing"

    files.person("E2")["title"] = "Chief"
    files.people = [p for p in files.people if p["employee_id"] != "E7"]
    files.write_hr()
    files.run()
    added = records(fmt, files.path(0))[len(first):]
    ops = sorted(r["op"] for r in added)
    assert ops == ["delete", "modify"], added
    if fmt != "ldif":
        assert files.users() == read_objects(fmt, "changes", files.path(0))
        users = files.users()
        assert users["bob.ray"]["title"] == "Chief" and "fay.lin" not in users
        assert sorted(users) == ["ann.lee", "bob.ray", "cy.oak", "dee.fox", "eve.kim", "lukasz.zolw"]
    assert provision("check", files.manifest).code == 0


def test_a_row_deleted_by_hand_is_missing_to_check_and_put_back_by_a_reconciling_run(tmp_path: Path, provision):
    files = Files(tmp_path, provision, "csv")
    files.run()
    whole = files.path(0).read_bytes()
    lines = whole.decode().split("\r\n")
    files.path(0).write_text("\r\n".join(line for line in lines if not line.startswith("cy.oak,")), newline="")
    check = provision("check", files.manifest, "--output", "json")
    assert check.code == 1
    missing = [(d["situation"], d["anchor"]) for d in check.json()["check"]["differences"] if d["object_type"] == "user"
               and d["situation"] == "missing"]
    assert missing == [("missing", "E3")]  # (and what refers to it: cy.oak's reports, the group holding it)
    counts = files.run("--reconcile")
    assert counts["user"]["added"] == 1
    assert files.path(0).read_bytes() == whole


def test_what_the_csv_writer_writes_the_csv_source_reads_back(tmp_path: Path, provision):
    files = Files(tmp_path, provision, "csv")
    files.run()
    users = files.users()  # read with the HR source connector
    assert users["bob.ray"] == {"user_name": "bob.ray", "display_name": "bob ray", "email": "bob.ray@example.org",
                                "title": 'Lead "Platform", EMEA', "manager": "ann.lee", "active": "true"}
    assert users["dee.fox"]["title"] == "two\nlines" and users["cy.oak"]["title"] == " leading space"
    assert users["lukasz.zolw"]["display_name"] == "Łukasz Żółw"
    source = CsvSource({"type": "csv", "path": "out", "objects": {"groups": {"multi_valued": {"members": ";"}}}},
                       ConnectorContext("back", tmp_path))
    everyone = next(r for page in source.read("groups") for r in page.records if r.attributes["name"] == "Everyone")
    assert sorted(everyone.attributes["members"]) == sorted(users)
    assert everyone.attributes["description"] == "All, of us"


def test_a_value_the_file_cannot_give_back_fails_that_object_alone(tmp_path: Path, provision):
    files = Files(tmp_path, provision, "csv")
    files.people.append(person("E9", "semi", "colon", email="semi;colon@example.org"))
    files.groups.append(group("G3", "Odd", ["E1", "E9"]))  # a member list cell joins user names with ';'
    files.write_hr()
    result = provision("run", files.manifest, "--output", "json")
    assert result.code == 1, result.err
    counts = result.json()["object_types"]
    assert (counts["user"]["added"], counts["group"]["added"], counts["group"]["failed"]) == (8, 2, 1)
    assert "a value of 'members' contains its separator ';', so it would read back split" in result.out
    assert "Odd" not in files.path(1).read_text()


def test_validate_names_what_a_written_object_lacks(tmp_path: Path, provision):
    files = Files(tmp_path, provision, "csv")
    text = files.manifest.read_text()
    files.manifest.write_text(text.replace("        key: user_name\n", "").replace(
        "[name, description, members]", "[name, members, size]").replace("    mode: snapshot", "    mode: changes"))
    result = provision("validate", files.manifest)
    assert result.code == 2
    assert "connectors.out.objects.users: object 'users' is written to a CSV file, so it needs `key:`" in result.err
    assert "'description' is written to 'groups' but not among its columns" in result.err
    assert "column 'size' is not a mapped attribute" in result.err
    assert "Traceback" not in result.out + result.err


def test_the_manifest_schema_describes_each_file_connector_as_it_checks_it():
    from runner.connectors.registry import connector_class
    from runner.manifest import schema

    def checks(node: Any, declarations: bool = False) -> Any:
        """The schema without its annotations (the manifest schema's descriptions and examples are
        written for editors); names under properties are kept whatever they are called."""
        if isinstance(node, dict):
            return {k: checks(v, k in ("properties", "patternProperties") and not declarations)
                    for k, v in node.items() if declarations or k not in ("description", "examples")}
        return [checks(v) for v in node] if isinstance(node, list) else node

    defs = schema.load_schema(schema.MANIFEST)["$defs"]
    for fmt in ("csv", "jsonl", "ldif"):
        assert checks(defs[f"{fmt}_connector"]) == checks(json.loads(json.dumps(connector_class(fmt).config_schema))), fmt


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_jsonl_as_a_source_is_read_whole_and_a_broken_line_stops_the_read_naming_it(tmp_path: Path, provision):
    files = Files(tmp_path, provision, "csv")
    text = files.manifest.read_text().replace("  hr:\n    type: csv\n    path: hr\n",
                                              "  hr:\n    type: jsonl\n    path: hr\n").replace(
        '    objects: {groups: {multi_valued: {members: ";"}}}\n', "")
    files.manifest.write_text(text)
    hr = [{**p, "manager_id": p["manager_id"] or None} for p in files.people]
    write_jsonl(tmp_path / "hr" / "people.jsonl", hr)
    write_jsonl(tmp_path / "hr" / "groups.jsonl", [{**g, "members": g["members"].split(";")} for g in files.groups])
    counts = files.run()
    assert (counts["user"]["added"], counts["group"]["added"]) == (7, 2)
    assert files.users()["lukasz.zolw"]["display_name"] == "Łukasz Żółw"

    write_jsonl(tmp_path / "hr" / "people.jsonl", [p for p in hr if p["employee_id"] != "E7"])  # E7 left
    assert files.run()["user"]["deleted"] == 1
    written = files.path(0).read_bytes()

    lines = (tmp_path / "hr" / "people.jsonl").read_text().splitlines()
    lines[2] = lines[2][:-5]  # a line cut short
    (tmp_path / "hr" / "people.jsonl").write_text("\n".join(lines) + "\n")
    result = provision("run", files.manifest)
    assert result.code == 1
    assert "hr/people.jsonl:3: not JSON (" in result.err and "nobody is marked deleted" in result.err
    assert "Traceback" not in result.err + result.out
    assert files.path(0).read_bytes() == written  # nothing deleted, nothing written

    lines[2] = "[1, 2]"
    (tmp_path / "hr" / "people.jsonl").write_text("\n".join(lines) + "\n")
    result = provision("run", files.manifest)
    assert result.code == 1 and "hr/people.jsonl:3: a JSON array, not an object" in result.err


# ---- LDIF into a real directory: what a reviewer reads is what ldapadd / ldapmodify would do ----


def containers(*departments: str) -> str:
    entries = ["dn: ou=people,dc=example,dc=org\nobjectClass: organizationalUnit\nou: people\n",
               "dn: ou=groups,dc=example,dc=org\nobjectClass: organizationalUnit\nou: groups\n"]
    entries += [f"dn: ou={d},ou=people,dc=example,dc=org\nobjectClass: organizationalUnit\nou: {d}\n"
                for d in departments]
    return "\n".join(entries) + "\n"


def directory(server: Any) -> dict[str, dict[str, list[str]]]:
    """Every entry below the people and group containers: DN -> attributes (userPassword aside)."""
    import ldap3

    conn = ldap3.Connection(ldap3.Server(server.url), server.root_dn, server.root_password, auto_bind=True)
    found = {}
    for base in ("ou=people,dc=example,dc=org", "ou=groups,dc=example,dc=org"):
        conn.search(base, "(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))", attributes=["*"])
        for entry in conn.response:
            attributes = {k.casefold(): sorted(v.decode() for v in values) for k, values in entry["raw_attributes"].items()
                          if k.casefold() not in ("userpassword", "objectclass")}
            found[entry["dn"].casefold()] = attributes
    conn.unbind()
    return found


def ldif_entries(*paths: Path) -> dict[str, dict[str, list[str]]]:
    found = {}
    for path in paths:
        for entry in rfc2849.parse(path.read_text(encoding="utf-8")):
            found[entry.dn.casefold()] = {k.casefold(): sorted(v) for k, v in entry.attributes().items()
                                          if k.casefold() not in ("userpassword", "objectclass")}
    return found


def ldapmodify(server: Any, ldif: bytes, tmp: Path, *flags: str) -> None:
    (tmp / "apply.ldif").write_bytes(ldif)
    done = subprocess.run(["ldapmodify", *flags, "-x", "-H", server.url, "-D", server.root_dn, "-w", server.root_password,
                           "-f", str(tmp / "apply.ldif")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def slapd(tmp_path: Path):
    from servers.slapd import Slapd

    started: list[Any] = []

    def start(preload: str | None = None) -> Any:
        folder = tmp_path / f"slapd-{len(started)}"
        folder.mkdir()
        path = None
        if preload is not None:
            path = folder / "preload.ldif"
            path.write_text(preload, encoding="utf-8")
        started.append(Slapd.start(folder, ("dc=example,dc=org",), accesslog=False, refint=False, preload=path))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_an_ldif_snapshot_loads_into_a_directory_with_every_value_intact(tmp_path: Path, provision, slapd):
    files = Files(tmp_path, provision, "ldif")
    files.run()
    body = [p.read_text(encoding="utf-8").removeprefix("version: 1\n") for p in (files.path(0), files.path(1))]
    assert all(len(line) <= 76 for p in (files.path(0), files.path(1)) for line in p.read_text().splitlines())
    server = slapd(containers("Engineering") + "".join(body))  # slapadd (no version line: it reads none) checks each entry
    held = directory(server)
    assert held == ldif_entries(files.path(0), files.path(1))
    lukasz = held["uid=lukasz.zolw,ou=engineering,ou=people,dc=example,dc=org"]
    assert lukasz["cn"] == ["Łukasz Żółw"] and lukasz["title"] == ["Ingénieur"]
    titles = {v["title"][0] for dn, v in held.items() if dn.startswith("uid=")}
    assert {" leading space", "two\nlines", ": colon first", "<angle", 'Lead "Platform", EMEA'} <= titles
    everyone = held["cn=everyone,ou=groups,dc=example,dc=org"]
    assert len(everyone["member"]) == 7 and everyone["description"] == ["All, of us"]


def test_ldif_change_records_applied_by_ldapmodify_make_the_snapshot_directory(tmp_path: Path, provision, slapd):
    changes = Files(tmp_path / "changes", provision, "ldif", mode="changes")
    snapshot = Files(tmp_path / "snapshot", provision, "ldif")
    server = slapd()
    ldapmodify(server, containers("Engineering", "Sales").encode(), tmp_path, "-a")  # content records: adds
    changes.run()
    snapshot.run()
    ldapmodify(server, changes.path(0).read_bytes() + changes.path(1).read_bytes()[len("version: 1\n"):], tmp_path)
    sizes = [changes.path(i).stat().st_size for i in (0, 1)]

    for files in (changes, snapshot):
        files.person("E2")["title"] = "Chief"
        files.person("E4")["department"] = "Sales"  # a move: changetype modrdn with newsuperior
        files.person("E3")["status"] = "terminated"
        files.people = [p for p in files.people if p["employee_id"] != "E7"]
        files.groups[1]["members"] = "E1;E4;E5"
        files.write_hr()
        files.run()
    text = changes.path(0).read_text()
    assert "changetype: modrdn\nnewrdn: uid=dee.fox\ndeleteoldrdn: 1\nnewsuperior: ou=Sales,ou=people," in text
    appended = b"".join(changes.path(i).read_bytes()[sizes[i]:] for i in (0, 1))
    ldapmodify(server, b"version: 1\n" + appended, tmp_path)
    held, reviewed = directory(server), ldif_entries(snapshot.path(0), snapshot.path(1))
    assert held == reviewed
