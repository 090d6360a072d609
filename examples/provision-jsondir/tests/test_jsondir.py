"""The jsondir connector driven through its public interface (open/apply/read/discover/close),
with real files in a temporary folder."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from runner.connectors.base import (
    INTERFACE_VERSION,
    AlreadyExists,
    ConfigurationError,
    ConnectionFailed,
    ConnectorContext,
    NotFound,
    ObjectError,
    Operation,
    PermanentError,
    Record,
    Result,
    WatermarkExpired,
)
from runner.connectors.registry import connector_class

from provision_jsondir import JsonDirConnector

OBJECTS = ["users", "groups", "orgunits"]


@pytest.fixture
def make(tmp_path: Path):
    """Build and open a connector on ``tmp_path/tree``; every one is closed afterwards."""
    opened: list[JsonDirConnector] = []

    def make(**config: Any) -> JsonDirConnector:
        connector = JsonDirConnector({"type": "jsondir", "root": "tree", "objects": OBJECTS, **config},
                                     ConnectorContext("directory", tmp_path))
        connector.open()
        opened.append(connector)
        return connector

    yield make
    for connector in opened:
        connector.close()


@pytest.fixture
def conn(make) -> JsonDirConnector:
    return make()


def run(connector: JsonDirConnector, kind: str, object: str = "users", **fields: Any) -> Result:
    [result] = list(connector.apply([Operation(1, kind, object, **fields)]))
    return result


def ok(connector: JsonDirConnector, kind: str, object: str = "users", **fields: Any) -> str:
    result = run(connector, kind, object, **fields)
    assert result.ok, result.error
    assert result.anchor
    return result.anchor


def fails(connector: JsonDirConnector, kind: str, error: type, object: str = "users", **fields: Any) -> str:
    result = run(connector, kind, object, **fields)
    assert not result.ok
    assert type(result.error) is error, result.error
    return str(result.error)


def read(connector: JsonDirConnector, object: str = "users", partition: str | None = None,
         watermark: str | None = None) -> tuple[list[Record], str | None]:
    pages = list(connector.read(object, partition, watermark))
    assert pages and all(p.watermark is None for p in pages[:-1])
    return [r for p in pages for r in p.records], pages[-1].watermark


def doc(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def journal(root: Path, partition: str = "default") -> list[dict[str, Any]]:
    return [json.loads(line) for line in (root / partition / ".journal.jsonl").read_text().splitlines()]


def people(connector: JsonDirConnector, partition: str | None = None) -> str:
    return ok(connector, "add", "orgunits", name="ou=people", attributes={"ou": "people"}, partition=partition)


# ---- plugin, configuration, capabilities --------------------------------------------------------


def test_registered_under_the_provision_connectors_entry_point_group():
    [ep] = [ep for ep in entry_points(group="provision.connectors") if ep.name == "jsondir"]
    assert ep.value == "provision_jsondir:JsonDirConnector"
    assert ep.load() is JsonDirConnector


def test_written_for_connector_interface_2_which_provision_loads():
    """The registry refuses a plugin written for another interface version."""
    assert JsonDirConnector.interface_version == INTERFACE_VERSION == 2
    assert connector_class("jsondir") is JsonDirConnector


def test_capabilities_follow_the_configuration(tmp_path):
    context = ConnectorContext("d", tmp_path)
    caps = JsonDirConnector({"root": "t", "objects": ["users"]}, context).capabilities()
    assert (caps.partitions, caps.hierarchical, caps.delta_read, caps.full_export) == (True, True, True, True)
    assert caps.delete_add_as_replace and caps.password_in_first_pass and caps.multi_valued_deltas
    assert caps.max_concurrency == 4
    assert dict(caps.normalizations) == {"mail": ("case_insensitive",)}
    assert caps.operations == {"add", "update", "rename", "disable", "delete", "replace", "set_password"}
    # names find objects (no correlation attributes), anchors are made up on add, references are anchors
    assert (caps.correlation, caps.generated_anchor, caps.reference_form("members")) == ((), True, "anchor")
    assert (caps.export_style, caps.versioned, caps.max_values_per_operation) == ("delta", False, 0)

    caps = JsonDirConnector({"root": "t", "objects": ["users"], "delete_add_as_replace": False,
                             "password_in_first_pass": False, "concurrency": 2,
                             "normalizations": {"*": ["trim"]}}, context).capabilities()
    assert not caps.delete_add_as_replace and not caps.password_in_first_pass
    assert "replace" not in caps.operations and caps.max_concurrency == 2
    assert dict(caps.normalizations) == {"*": ("trim",)}


def test_capabilities_are_the_same_for_every_object_type_and_after_open(make):
    conn = make()
    assert conn.capabilities("users") == conn.capabilities("groups") == conn.capabilities() == conn.negotiate("users")


def test_config_schema_rejects_unknown_normalizations_and_bad_partitions():
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(JsonDirConnector.config_schema)
    good = {"type": "jsondir", "root": "t", "objects": ["users"], "partitions": ["sales", "research"]}
    assert not list(validator.iter_errors(good))
    for bad in ({"normalizations": {"mail": ["shout"]}}, {"partitions": ["../up"]}, {"partitions": [".hidden"]},
                {"objects": []}, {"concurrency": 0}, {"colour": "blue"}):
        assert list(validator.iter_errors({**good, **bad})), bad


def test_check_reports_partitions_that_collide_on_case_insensitive_file_systems(tmp_path):
    connector = JsonDirConnector({"root": "t", "objects": ["users"], "partitions": ["Sales", "sales"]},
                                 ConnectorContext("d", tmp_path))
    assert [path for path, _ in connector.check()] == [("partitions", 1)]


def test_open_creates_the_root_and_one_folder_per_partition(make, tmp_path):
    make(partitions=["sales", "research"])
    assert (tmp_path / "tree" / "sales" / ".journal.jsonl").is_file()
    assert (tmp_path / "tree" / "research" / ".journal.jsonl").is_file()


def test_a_root_that_cannot_be_created_is_a_connection_failure(tmp_path):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    for root in ("blocker", "blocker/tree"):
        connector = JsonDirConnector({"root": root, "objects": ["users"]}, ConnectorContext("d", tmp_path))
        with pytest.raises(ConnectionFailed, match="blocker"):
            connector.open()
        connector.close()  # safe after a failed open


def test_using_a_connector_that_is_not_open_is_a_connection_failure(tmp_path):
    connector = JsonDirConnector({"root": "t", "objects": ["users"]}, ConnectorContext("d", tmp_path))
    with pytest.raises(ConnectionFailed, match="not open"):
        list(connector.apply([Operation(1, "add", "users", name="uid=a")]))


# ---- add ----------------------------------------------------------------------------------------


def test_add_writes_one_file_per_object_in_nested_folders(conn, tmp_path):
    people(conn)
    anchor = ok(conn, "add", name="uid=jsmith,ou=people", attributes={"uid": "jsmith", "cn": "John Smith"})
    assert uuid.UUID(anchor).version == 4
    path = tmp_path / "tree" / "default" / "ou=people" / "uid=jsmith.json"
    assert doc(path) == {"anchor": anchor, "name": "uid=jsmith,ou=people", "object": "users",
                         "attributes": {"uid": "jsmith", "cn": "John Smith"}}
    assert (tmp_path / "tree" / "default" / "ou=people.json").is_file()
    assert not [p for p in (tmp_path / "tree").rglob("*.tmp")]  # atomic writes leave no temp files


def test_add_of_a_name_that_is_taken_is_already_exists_whatever_the_case(conn):
    ok(conn, "add", name="uid=jsmith", attributes={})
    message = fails(conn, "add", AlreadyExists, name="UID=JSmith", attributes={})
    assert "uid=jsmith" in message


def test_add_under_a_parent_that_does_not_exist_fails(conn, tmp_path):
    message = fails(conn, "add", ObjectError, name="uid=jsmith,ou=people,ou=sales", attributes={})
    assert "parent 'ou=people,ou=sales' does not exist" in message
    assert not [p for p in (tmp_path / "tree" / "default").iterdir() if p.name != ".journal.jsonl"]


def test_add_needs_a_valid_name(conn):
    assert "needs a name" in fails(conn, "add", ObjectError, attributes={})
    # a name that is no name stays refused until the source data changes: not retried meanwhile
    assert "type=value" in fails(conn, "add", PermanentError, name="jsmith", attributes={})
    assert "does not fit" in fails(conn, "add", PermanentError, name="cn=" + "x" * 300, attributes={})


def test_names_with_escaped_commas_and_unsafe_characters_round_trip(conn, tmp_path):
    people(conn)
    anchor = ok(conn, "add", name=r"cn=Smith\, John / Sales: 100%,ou=people", attributes={})
    [file] = (tmp_path / "tree" / "default" / "ou=people").iterdir()
    assert "/" not in file.name and ":" not in file.name
    records, _ = read(conn)
    assert [(r.anchor, r.name) for r in records] == [(anchor, r"cn=Smith\, John / Sales: 100%,ou=people")]


def test_a_value_json_cannot_hold_fails_that_object_only(conn, tmp_path):
    result = list(conn.apply([Operation(1, "add", "users", name="uid=a", attributes={"x": object()}),
                              Operation(2, "add", "users", name="uid=b", attributes={})]))
    assert [r.ok for r in result] == [False, True] and isinstance(result[0].error, PermanentError)
    assert not (tmp_path / "tree" / "default" / "uid=a.json").exists()
    ok(conn, "add", name="uid=a", attributes={})  # the name was not kept reserved


def test_an_operation_on_an_object_type_not_served_fails(conn):
    assert "not served" in fails(conn, "add", ObjectError, object="printers", name="cn=p1", attributes={})


# ---- update, disable --------------------------------------------------------------------------------


def test_update_replaces_attributes_and_clears_none(conn):
    anchor = ok(conn, "add", name="uid=a", attributes={"uid": "a", "title": "Dev", "phone": "1"})
    assert ok(conn, "update", anchor=anchor, attributes={"title": "Lead", "phone": None}) == anchor
    [record], _ = read(conn)
    assert record.attributes == {"uid": "a", "title": "Lead"}


def test_update_adds_and_removes_values_of_multi_valued_attributes(conn):
    group = ok(conn, "add", "groups", name="cn=admins", attributes={"members": ["u1", "u2"]})
    ok(conn, "update", "groups", anchor=group, add_values={"members": ["u3", "u1"]},
       remove_values={"members": ["u2"]})
    [record], _ = read(conn, "groups")
    assert record.attributes["members"] == ["u1", "u3"]
    ok(conn, "update", "groups", anchor=group, remove_values={"members": ["u1", "u3"]})
    [record], _ = read(conn, "groups")
    assert record.attributes["members"] == []


def test_update_of_an_unknown_anchor_is_not_found(conn):
    fails(conn, "update", NotFound, anchor=str(uuid.uuid4()), attributes={"x": 1})
    user = ok(conn, "add", name="uid=a", attributes={})
    fails(conn, "update", NotFound, object="groups", anchor=user, attributes={"x": 1})  # wrong type


def test_disable_sets_the_given_attributes_and_disabled(conn):
    anchor = ok(conn, "add", name="uid=a", attributes={"active": True})
    ok(conn, "disable", anchor=anchor, attributes={"active": False})
    [record], _ = read(conn)
    assert record.attributes == {"active": False, "disabled": True}


def test_normalizations_are_applied_when_values_are_stored(make):
    conn = make(normalizations={"mail": ["case_insensitive"], "phone": ["phone_digits"], "*": ["trim"]})
    anchor = ok(conn, "add", name="uid=a", attributes={"mail": " JSmith@Example.ORG ", "phone": "+1 (555) 010-99",
                                                        "cn": "  John  "})
    ok(conn, "update", anchor=anchor, add_values={"mail": ["Other@Example.org"]})
    [record], _ = read(conn)
    assert record.attributes == {"mail": ["jsmith@example.org", "other@example.org"], "phone": "+155501099",
                                 "cn": "John"}


# ---- passwords ----------------------------------------------------------------------------------


def test_passwords_are_stored_only_as_a_sha256(conn, tmp_path):
    anchor = ok(conn, "add", name="uid=a", attributes={}, password="first-Secret-1")
    path = tmp_path / "tree" / "default" / "uid=a.json"
    assert doc(path)["password_hash"] == hashlib.sha256(b"first-Secret-1").hexdigest()
    ok(conn, "set_password", anchor=anchor, password="second-Secret-2")
    assert doc(path)["password_hash"] == hashlib.sha256(b"second-Secret-2").hexdigest()
    for file in (tmp_path / "tree").rglob("*"):
        if file.is_file():
            assert b"Secret" not in file.read_bytes(), file
    [record], _ = read(conn)
    assert "password_hash" not in record.attributes
    assert "without a password" in fails(conn, "set_password", ObjectError, anchor=anchor)


def test_without_password_in_first_pass_an_add_with_a_password_is_refused(make, tmp_path):
    conn = make(password_in_first_pass=False)
    assert "set_password" in fails(conn, "add", ObjectError, name="uid=a", attributes={}, password="pw")
    anchor = ok(conn, "add", name="uid=a", attributes={})
    ok(conn, "set_password", anchor=anchor, password="pw")
    assert doc(tmp_path / "tree" / "default" / "uid=a.json")["password_hash"] == hashlib.sha256(b"pw").hexdigest()


# ---- rename -----------------------------------------------------------------------------------


def test_rename_moves_the_file_and_keeps_the_anchor(conn, tmp_path):
    people(conn)
    ok(conn, "add", "orgunits", name="ou=staff", attributes={})
    anchor = ok(conn, "add", name="uid=a,ou=people", attributes={"uid": "a"})
    assert ok(conn, "rename", anchor=anchor, name="uid=a,ou=staff", old_name="uid=a,ou=people") == anchor
    base = tmp_path / "tree" / "default"
    assert not (base / "ou=people" / "uid=a.json").exists()
    assert doc(base / "ou=staff" / "uid=a.json")["name"] == "uid=a,ou=staff"
    [record], _ = read(conn)
    assert (record.anchor, record.name) == (anchor, "uid=a,ou=staff")
    ok(conn, "update", anchor=anchor, attributes={"title": "moved"})  # still reachable by anchor


def test_rename_moves_the_children_with_their_parent(conn, tmp_path):
    sales = ok(conn, "add", "orgunits", name="ou=sales", attributes={})
    ok(conn, "add", "orgunits", name="ou=people,ou=sales", attributes={})
    anchors = {ok(conn, "add", name=f"uid=u{i},ou=people,ou=sales", attributes={}) for i in range(3)}
    ok(conn, "rename", "orgunits", anchor=sales, name="ou=Marketing")
    base = tmp_path / "tree" / "default"
    assert not (base / "ou=sales").exists()
    assert sorted(p.name for p in (base / "ou=Marketing" / "ou=people").iterdir()) == [
        "uid=u0.json", "uid=u1.json", "uid=u2.json"]
    records, _ = read(conn)
    assert {r.anchor for r in records} == anchors
    assert {r.name for r in records} == {f"uid=u{i},ou=people,ou=Marketing" for i in range(3)}
    for i in range(3):
        assert doc(base / "ou=Marketing" / "ou=people" / f"uid=u{i}.json")["name"] == f"uid=u{i},ou=people,ou=Marketing"
    new = ok(conn, "add", name="uid=new,OU=People,ou=marketing", attributes={})  # the moved parent takes children
    assert doc(base / "ou=Marketing" / "ou=people" / "uid=new.json") == {
        "anchor": new, "name": "uid=new,ou=people,ou=Marketing", "object": "users", "attributes": {}}
    fails(conn, "add", ObjectError, name="uid=late,ou=people,ou=sales", attributes={})


def test_rename_errors(conn):
    people(conn)
    staff = ok(conn, "add", "orgunits", name="ou=staff", attributes={})
    a = ok(conn, "add", name="uid=a,ou=people", attributes={})
    ok(conn, "add", name="uid=b,ou=people", attributes={})
    fails(conn, "rename", AlreadyExists, anchor=a, name="uid=B,ou=people")
    assert "does not exist" in fails(conn, "rename", ObjectError, anchor=a, name="uid=a,ou=nowhere")
    assert "under itself" in fails(conn, "rename", ObjectError, "orgunits", anchor=staff, name="ou=x,ou=staff")
    fails(conn, "rename", NotFound, anchor=str(uuid.uuid4()), name="uid=c")


def test_rename_that_only_changes_case(conn, tmp_path):
    anchor = ok(conn, "add", name="uid=jsmith", attributes={})
    ok(conn, "rename", anchor=anchor, name="uid=JSmith")
    assert [p.name for p in (tmp_path / "tree" / "default").glob("*.json")] == ["uid=JSmith.json"]
    [record], _ = read(conn)
    assert record.name == "uid=JSmith"


# ---- delete, replace ------------------------------------------------------------------------------


def test_delete_of_an_object_with_children_fails_until_they_are_deleted(conn, tmp_path):
    ou = people(conn)
    child = ok(conn, "add", name="uid=a,ou=people", attributes={})
    assert "still has 1 child" in fails(conn, "delete", ObjectError, "orgunits", anchor=ou)
    ok(conn, "delete", anchor=child)
    ok(conn, "delete", "orgunits", anchor=ou)
    assert sorted(p.name for p in (tmp_path / "tree" / "default").iterdir()) == [".journal.jsonl"]
    fails(conn, "delete", NotFound, anchor=child)


def test_replace_gives_a_new_anchor_and_keeps_name_and_children(conn, tmp_path):
    ou = people(conn)
    child = ok(conn, "add", name="uid=a,ou=people", attributes={})
    new = ok(conn, "replace", "orgunits", anchor=ou, name="ou=people", attributes={"description": "again"})
    assert new != ou
    fails(conn, "update", NotFound, "orgunits", anchor=ou, attributes={})
    [record], _ = read(conn, "orgunits")
    assert (record.anchor, record.name, record.attributes) == (new, "ou=people", {"description": "again"})
    assert doc(tmp_path / "tree" / "default" / "ou=people.json")["anchor"] == new
    ok(conn, "update", anchor=child, attributes={"still": "here"})
    assert "has child objects" in fails(conn, "replace", ObjectError, "orgunits", anchor=new, name="ou=other",
                                        attributes={})


def test_replace_under_a_new_name_moves_the_object(conn, tmp_path):
    old = ok(conn, "add", name="uid=a", attributes={"x": 1})
    new = ok(conn, "replace", anchor=old, name="uid=b", attributes={"y": 2}, password="pw")
    base = tmp_path / "tree" / "default"
    assert not (base / "uid=a.json").exists()
    assert doc(base / "uid=b.json") == {"anchor": new, "name": "uid=b", "object": "users", "attributes": {"y": 2},
                                        "password_hash": hashlib.sha256(b"pw").hexdigest(), "replaces": old}


def test_without_delete_add_as_replace_a_replace_is_refused(make):
    conn = make(delete_add_as_replace=False)
    anchor = ok(conn, "add", name="uid=a", attributes={})
    assert "delete_add_as_replace" in fails(conn, "replace", ObjectError, anchor=anchor, attributes={})


# ---- partitions and object types -------------------------------------------------------------------------


def test_partitions_are_isolated(make, tmp_path):
    conn = make(partitions=["sales", "research"])
    in_sales = ok(conn, "add", name="uid=a", attributes={"p": "sales"}, partition="sales")
    in_research = ok(conn, "add", name="uid=a", attributes={"p": "research"}, partition="research")
    assert (tmp_path / "tree" / "sales" / "uid=a.json").is_file()
    assert (tmp_path / "tree" / "research" / "uid=a.json").is_file()
    sales, _ = read(conn, partition="sales")
    research, _ = read(conn, partition="research")
    assert [(r.anchor, r.partition) for r in sales] == [(in_sales, "sales")]
    assert [(r.anchor, r.partition) for r in research] == [(in_research, "research")]
    fails(conn, "update", NotFound, anchor=in_sales, partition="research", attributes={})
    fails(conn, "add", ObjectError, name="uid=b,ou=people", partition="research", attributes={})
    assert "unknown partition" in fails(conn, "add", ObjectError, name="uid=b", partition="hr", attributes={})
    ok(conn, "delete", anchor=in_sales)  # partition taken from where the anchor lives
    assert [r.anchor for r in read(conn, partition="research")[0]] == [in_research]
    assert [e["kind"] for e in journal(tmp_path / "tree", "sales")] == ["add", "delete"]
    assert [e["kind"] for e in journal(tmp_path / "tree", "research")] == ["add"]


def test_one_tree_holds_several_object_types(conn):
    people(conn)
    user = ok(conn, "add", name="uid=a,ou=people", attributes={})
    group = ok(conn, "add", "groups", name="cn=g,ou=people", attributes={"members": [user]})
    assert [r.anchor for r in read(conn, "users")[0]] == [user]
    assert [r.anchor for r in read(conn, "groups")[0]] == [group]
    with pytest.raises(ConfigurationError):
        read(conn, "printers")


# ---- full and delta reads ---------------------------------------------------------------------------


def test_full_read_returns_everything_parents_first_with_the_last_seq_as_watermark(make, tmp_path):
    conn = make(page_size=2)
    assert read(conn) == ([], "0")
    people(conn)
    anchors = [ok(conn, "add", name=f"uid=u{i},ou=people", attributes={"i": i}) for i in range(5)]
    records, watermark = read(conn)
    assert sorted(r.anchor for r in records) == sorted(anchors)
    assert watermark == "6" == str(journal(tmp_path / "tree")[-1]["seq"])
    assert len(list(conn.read("users"))) == 3  # pages of two


def test_delta_read_returns_only_what_changed_since_the_watermark(conn, tmp_path):
    people(conn)
    a = ok(conn, "add", name="uid=a,ou=people", attributes={"v": 1})
    b = ok(conn, "add", name="uid=b,ou=people", attributes={"v": 1})
    c = ok(conn, "add", name="uid=c,ou=people", attributes={"v": 1})
    _, watermark = read(conn)
    assert read(conn, watermark=watermark) == ([], watermark)

    ok(conn, "update", anchor=a, attributes={"v": 2})
    ok(conn, "delete", anchor=b)
    d = ok(conn, "add", name="uid=d,ou=people", attributes={"v": 1})
    ok(conn, "update", anchor=a, attributes={"v": 3})
    ok(conn, "add", "groups", name="cn=g", attributes={})  # another object type: not in a users read
    records, new_watermark = read(conn, watermark=watermark)
    assert int(new_watermark) == int(watermark) + 5
    by_anchor = {r.anchor: r for r in records}
    assert set(by_anchor) == {a, b, d}
    assert by_anchor[a].attributes == {"v": 3} and not by_anchor[a].deleted
    assert by_anchor[b].deleted and by_anchor[b].name == "uid=b,ou=people"
    assert by_anchor[d].name == "uid=d,ou=people"
    assert c not in by_anchor
    assert read(conn, watermark=new_watermark) == ([], new_watermark)


def test_delta_read_reports_children_renamed_with_their_parent(conn):
    ou = people(conn)
    child = ok(conn, "add", name="uid=a,ou=people", attributes={})
    _, watermark = read(conn)
    ok(conn, "rename", "orgunits", anchor=ou, name="ou=staff")
    [record], _ = read(conn, watermark=watermark)
    assert (record.anchor, record.name) == (child, "uid=a,ou=staff")


def test_the_journal_has_one_line_per_write(conn, tmp_path):
    anchor = ok(conn, "add", name="uid=a", attributes={})
    ok(conn, "update", anchor=anchor, attributes={"x": 1})
    ok(conn, "set_password", anchor=anchor, password="pw")
    ok(conn, "rename", anchor=anchor, name="uid=b")
    ok(conn, "disable", anchor=anchor, attributes={})
    new = ok(conn, "replace", anchor=anchor, attributes={})
    ok(conn, "delete", anchor=new)
    fails(conn, "delete", NotFound, anchor=new)  # a failed write is not journaled
    lines = journal(tmp_path / "tree")
    assert [e["seq"] for e in lines] == list(range(1, 9))
    assert [e["kind"] for e in lines] == ["add", "update", "set_password", "rename", "disable", "delete",
                                          "replace", "delete"]
    assert {k for e in lines for k in e} == {"seq", "time", "anchor", "kind", "name", "partition", "object"}
    assert lines[3]["name"] == "uid=b" and lines[6]["anchor"] == new


def test_watermarks_the_journal_never_returned_are_expired_so_the_engine_reads_everything(conn):
    ok(conn, "add", name="uid=a", attributes={})
    for watermark in ("99", "yesterday", "-1"):
        with pytest.raises(WatermarkExpired, match="full import"):
            read(conn, watermark=watermark)
    assert [r.name for r in read(conn)[0]] == ["uid=a"]


# ---- reopening, discover ------------------------------------------------------------------------


def test_reopening_rebuilds_the_index_and_continues_the_journal(make, tmp_path):
    conn = make()
    people(conn)
    anchor = ok(conn, "add", name="uid=a,ou=people", attributes={"x": 1})
    _, watermark = read(conn)
    conn.close()
    with open(tmp_path / "tree" / "default" / ".journal.jsonl", "ab") as handle:
        handle.write(b'{"seq": 3, "ti')  # a line cut short by a crash
    (tmp_path / "tree" / "default" / ".uid=a.json.x1.tmp").write_text("half")  # a write cut short

    again = make()
    ok(again, "update", anchor=anchor, attributes={"x": 2})
    assert [e["seq"] for e in journal(tmp_path / "tree")] == [1, 2, 3]
    [record], _ = read(again, watermark=watermark)
    assert (record.anchor, record.attributes) == (anchor, {"x": 2})
    fails(again, "add", AlreadyExists, name="uid=A,ou=People", attributes={})
    assert not list((tmp_path / "tree").rglob("*.tmp"))


@pytest.mark.parametrize(("file", "content"), [("uid=x.json", "{not json"), ("uid=x.json", "[]"),
                                               ("notes.json", "{}"), (".journal.jsonl", "garbage\n")])
def test_a_damaged_tree_stops_the_open(make, tmp_path, file, content):
    make().close()
    (tmp_path / "tree" / "default" / file).write_text(content)
    with pytest.raises(ConnectionFailed, match=file.replace(".", r"\.")):
        make()


def test_discover_lists_each_object_type_with_the_attributes_seen(conn):
    ok(conn, "add", name="uid=a", attributes={"uid": "a", "age": 40, "active": True})
    ok(conn, "add", "groups", name="cn=g", attributes={"cn": "g", "members": ["x", "y"]})
    infos = {i.name: i for i in conn.discover()}
    assert set(infos) == set(OBJECTS)
    assert {(a.name, a.type, a.multi_valued) for a in infos["users"].attributes} == {
        ("uid", "string", False), ("age", "integer", False), ("active", "boolean", False)}
    assert [(a.name, a.multi_valued) for a in infos["groups"].attributes] == [("cn", False), ("members", True)]
    assert infos["orgunits"].attributes == [] and list(infos["users"].partitions) == ["default"]


# ---- concurrency ------------------------------------------------------------------------------


def test_concurrent_apply_from_four_threads(make, tmp_path):
    conn = make(concurrency=4)
    people(conn)
    group = ok(conn, "add", "groups", name="cn=all", attributes={"members": []})
    results: list[Result] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(t: int) -> None:
        try:
            barrier.wait()
            for batch in range(5):
                ops = [Operation(t * 1000 + batch * 10 + i, "add", "users", name=f"uid=t{t}-{batch}-{i},ou=people",
                                 attributes={"thread": t, "mail": f"T{t}-{batch}-{i}@Example.org"})
                       for i in range(10)]
                results.extend(conn.apply(ops))
                members = [f"t{t}-{batch}-{i}" for i in range(10)]
                results.extend(conn.apply([Operation(t * 1000 + 900 + batch, "update", "groups", anchor=group,
                                                     add_values={"members": members})]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 220 and all(r.ok for r in results), [r.error for r in results if not r.ok]

    files = list((tmp_path / "tree" / "default" / "ou=people").glob("*.json"))
    assert len(files) == 200
    docs = [doc(f) for f in files]  # every file is whole JSON
    assert len({d["anchor"] for d in docs}) == 200
    assert {d["anchor"] for d in docs} == {r.anchor for r in results if r.op_id % 1000 < 900}
    assert all(d["attributes"]["mail"] == d["attributes"]["mail"].lower() for d in docs)
    [record] = read(conn, "groups")[0]
    assert len(record.attributes["members"]) == 200  # no lost update of the shared group
    lines = journal(tmp_path / "tree")
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1)) and len(lines) == 222
    users, watermark = read(conn)
    assert len(users) == 200 and watermark == "222"
    assert not list((tmp_path / "tree").rglob("*.tmp"))


@pytest.mark.parametrize("attempt", range(5))
def test_concurrent_child_adds_and_a_parent_delete_never_leave_orphans(make, tmp_path, attempt):
    conn = make(fsync=False)
    ou = ok(conn, "add", "orgunits", name="ou=tmp", attributes={})
    results: list[Result] = []
    barrier = threading.Barrier(4)

    def adds(t: int) -> None:
        barrier.wait()
        results.extend(conn.apply([Operation(i, "add", "users", name=f"uid={t}-{i},ou=tmp", attributes={})
                                   for i in range(10)]))

    def delete() -> None:
        barrier.wait()
        results.extend(conn.apply([Operation(-1, "delete", "orgunits", anchor=ou)]))

    threads = [threading.Thread(target=adds, args=(t,)) for t in range(3)] + [threading.Thread(target=delete)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [deleted] = [r for r in results if r.op_id == -1]
    added = [r for r in results if r.op_id != -1 and r.ok]
    folder = tmp_path / "tree" / "default" / "ou=tmp"
    if deleted.ok:  # then no child made it in, and nothing is left behind
        assert not added and not folder.exists()
    else:  # every child that made it in is there, under its parent
        assert "child" in str(deleted.error)
        assert added and len(list(folder.glob("*.json"))) == len(added)
        for r in added:
            ok(conn, "delete", anchor=r.anchor)
        ok(conn, "delete", "orgunits", anchor=ou)


def test_renames_of_a_parent_while_its_children_are_updated_lose_nothing(make, tmp_path):
    conn = make(fsync=False)
    ou = ok(conn, "add", "orgunits", name="ou=a", attributes={})
    children = [ok(conn, "add", name=f"uid=u{i},ou=a", attributes={"n": 0}) for i in range(4)]
    results: list[Result] = []

    def updates(anchor: str) -> None:
        for n in range(1, 26):
            results.extend(conn.apply([Operation(n, "update", "users", anchor=anchor, attributes={"n": n})]))

    def renames() -> None:
        for n in range(20):
            results.extend(conn.apply([Operation(100 + n, "rename", "orgunits", anchor=ou,
                                                 name="ou=b" if n % 2 == 0 else "ou=a")]))

    threads = [threading.Thread(target=updates, args=(a,)) for a in children] + [threading.Thread(target=renames)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    base = tmp_path / "tree" / "default"
    assert sorted(p.name for p in base.iterdir()) == [".journal.jsonl", "ou=a", "ou=a.json"]  # no stray folder
    records, _ = read(conn)
    assert {(r.name, r.attributes["n"]) for r in records} == {(f"uid=u{i},ou=a", 25) for i in range(4)}


# ---- interface 2: get, lookup, read keywords, ping, results -----------------------------------------


def test_get_by_anchor_finds_the_object_wherever_it_is_unless_a_partition_says_otherwise(make):
    conn = make(partitions=["sales", "research"])
    anchor = ok(conn, "add", name="uid=a", attributes={"uid": "a"}, partition="research")
    record = conn.get("users", anchor)
    assert (record.anchor, record.name, record.partition, record.attributes) == (anchor, "uid=a", "research",
                                                                                 {"uid": "a"})
    assert conn.get("users", anchor, partition="research").anchor == anchor
    assert conn.get("users", anchor, partition="sales") is None
    assert conn.get("groups", anchor) is None  # another object type
    assert conn.get("users", str(uuid.uuid4())) is None
    ok(conn, "delete", anchor=anchor, partition="research")
    assert conn.get("users", anchor) is None


def test_get_by_name_compares_names_the_way_the_tree_does(conn):
    people(conn)
    anchor = ok(conn, "add", name="uid=JSmith,ou=people", attributes={})
    for spelling in ("uid=JSmith,ou=people", "UID=jsmith , OU=People", "uid=jsmith,ou=PEOPLE"):
        record = conn.get("users", name=spelling)
        assert record is not None and (record.anchor, record.name) == (anchor, "uid=JSmith,ou=people"), spelling
    assert conn.get("users", name="uid=other,ou=people") is None
    assert conn.get("users", name="not a name") is None  # no object can have it
    assert conn.get("orgunits", name="uid=jsmith,ou=people") is None  # the name is a user's


def test_get_by_name_looks_in_the_partition_given_else_the_first(make):
    conn = make(partitions=["sales", "research"])
    in_sales = ok(conn, "add", name="uid=a", attributes={}, partition="sales")
    in_research = ok(conn, "add", name="uid=a", attributes={}, partition="research")
    assert conn.get("users", name="uid=a").anchor == in_sales
    assert conn.get("users", name="uid=a", partition="research").anchor == in_research


def test_get_and_lookup_refuse_what_the_configuration_does_not_serve(conn):
    with pytest.raises(ConfigurationError, match="not served"):
        conn.get("printers", name="cn=p")
    with pytest.raises(ConfigurationError, match="unknown partition"):
        conn.lookup("users", {"uid": "a"}, partition="hr")
    with pytest.raises(TypeError):
        conn.get("users")
    with pytest.raises(TypeError):
        conn.lookup("users", {})


def test_lookup_compares_values_through_the_normalizations(make):
    conn = make(normalizations={"mail": ["case_insensitive"], "phone": ["phone_digits"]})
    a = ok(conn, "add", name="uid=a", attributes={"uid": "a", "mail": "A@Example.org", "phone": "+1 555 0100"})
    ok(conn, "add", name="uid=b", attributes={"uid": "b", "mail": "b@example.org", "phone": "+15550100"})
    assert [r.anchor for r in conn.lookup("users", {"mail": "a@EXAMPLE.org"})] == [a]
    assert [r.anchor for r in conn.lookup("users", {"uid": "a", "phone": "+1 (555) 01-00"})] == [a]
    assert len(conn.lookup("users", {"phone": "+15550100"})) == 2
    assert conn.lookup("users", {"uid": "A"}) == []  # uid is not normalized: compared exactly
    assert conn.lookup("users", {"uid": "a", "mail": "b@example.org"}) == []  # every value must match
    assert [r.attributes for r in conn.lookup("users", {"uid": "a"})] == [conn.get("users", a).attributes]


def test_lookup_of_multi_valued_and_absent_attributes(conn):
    group = ok(conn, "add", "groups", name="cn=g", attributes={"members": ["u1", "u2"], "cn": "g"})
    assert [r.anchor for r in conn.lookup("groups", {"members": "u2"})] == [group]  # one of its values
    assert [r.anchor for r in conn.lookup("groups", {"members": ["u2", "u1"]})] == [group]  # all, any order
    assert conn.lookup("groups", {"members": ["u1"]}) == []
    assert [r.anchor for r in conn.lookup("groups", {"cn": "g", "description": None})] == [group]
    assert conn.lookup("groups", {"cn": 1}) == []


def test_lookup_follows_every_write_and_survives_a_reopen(make):
    conn = make(partitions=["sales", "research"])
    anchor = ok(conn, "add", name="uid=a", attributes={"uid": "a"}, partition="sales")
    ok(conn, "add", name="uid=a", attributes={"uid": "a"}, partition="research")
    assert [r.anchor for r in conn.lookup("users", {"uid": "a"})] == [anchor]  # the first partition
    ok(conn, "update", anchor=anchor, attributes={"uid": "renamed"}, partition="sales")
    assert conn.lookup("users", {"uid": "a"}) == []
    assert [r.partition for r in conn.lookup("users", {"uid": "a"}, partition="research")] == ["research"]
    conn.close()
    again = make(partitions=["sales", "research"])
    assert [r.anchor for r in again.lookup("users", {"uid": "renamed"})] == [anchor]
    new = ok(again, "replace", anchor=anchor, name="uid=b", attributes={"uid": "b"}, partition="sales")
    assert again.lookup("users", {"uid": "renamed"}) == []
    assert [r.anchor for r in again.lookup("users", {"uid": "b"})] == [new]


def test_read_takes_a_page_size_and_the_attributes_to_carry(make):
    conn = make(page_size=100)
    anchors = [ok(conn, "add", name=f"uid=u{i}", attributes={"uid": f"u{i}", "mail": f"u{i}@x.org", "n": i})
               for i in range(5)]
    pages = list(conn.read("users", page_size=2))
    assert [len(p.records) for p in pages] == [2, 2, 1] and pages[-1].watermark == "5"
    records = [r for p in conn.read("users", attributes=["uid", "title"]) for r in p.records]
    assert [r.attributes for r in records] == [{"uid": f"u{i}"} for i in range(5)]
    ok(conn, "update", anchor=anchors[0], attributes={"n": 9})
    [record] = [r for p in conn.read("users", "default", "5", attributes=["n"]) for r in p.records]
    assert (record.anchor, record.attributes) == (anchors[0], {"n": 9})
    with pytest.raises(ConfigurationError):
        list(conn.read("users", page_size=0))


def test_ping_says_when_the_tree_is_gone(make, tmp_path):
    conn = make()
    conn.ping()
    (tmp_path / "tree" / "default" / ".journal.jsonl").unlink()
    (tmp_path / "tree" / "default").rmdir()
    with pytest.raises(ConnectionFailed, match="default"):
        conn.ping()
    conn.close()
    with pytest.raises(ConnectionFailed, match="not open"):
        conn.ping()


def test_results_say_the_name_and_values_as_stored(conn):
    people(conn)
    [added] = list(conn.apply([Operation(7, "add", "users", name="UID=a , OU=People",
                                         attributes={"mail": "A@Example.org"})]))
    assert (added.op_id, added.name, added.stored) == (7, "UID=a,ou=people", {"mail": "a@example.org"})
    [updated] = list(conn.apply([Operation(8, "update", "users", anchor=added.anchor, name=added.name,
                                           add_values={"mail": ["B@example.org"]})]))
    assert (updated.anchor, updated.stored) == (added.anchor, {"mail": ["a@example.org", "b@example.org"]})
    [deleted] = list(conn.apply([Operation(9, "delete", "users", anchor=added.anchor, name=added.name)]))
    assert deleted.ok and deleted.anchor == added.anchor


def test_the_partition_an_operation_carries_is_used_and_a_move_between_partitions_refused(make):
    conn = make(partitions=["sales", "research"])
    anchor = ok(conn, "add", name="uid=a", attributes={}, partition="research")
    fails(conn, "update", NotFound, anchor=anchor, partition="sales", attributes={"x": 1})
    ok(conn, "update", anchor=anchor, partition="research", attributes={"x": 1})
    ok(conn, "update", anchor=anchor, attributes={"x": 2})  # without one: where the anchor lives
    message = fails(conn, "rename", PermanentError, anchor=anchor, name="uid=b", partition="sales",
                    old_partition="research")
    assert "between partitions" in message
    assert conn.get("users", anchor).name == "uid=a"
    ok(conn, "rename", anchor=anchor, name="uid=b", partition="research", old_partition="research")


# ---- replay: every operation is safe to apply twice -----------------------------------------------


def twice(connector: JsonDirConnector, kind: str, object: str = "users", **fields: Any) -> tuple[Result, Result]:
    """The same operation sent again, as the engine does after a crash left its outcome in doubt."""
    op = Operation(1, kind, object, key="pipeline/user/42/r1", **fields)
    [first] = list(connector.apply([op]))
    [second] = list(connector.apply([Operation(2, kind, object, key=op.key, attempt=2, **fields)]))
    return first, second


def test_a_replayed_add_is_already_exists_and_its_object_is_found_by_name(conn):
    first, second = twice(conn, "add", name="uid=a", attributes={"uid": "a"})
    assert first.ok and not second.ok and isinstance(second.error, AlreadyExists)
    assert first.anchor in str(second.error)
    assert conn.get("users", name="uid=a").anchor == first.anchor
    assert len(read(conn)[0]) == 1


def test_replayed_value_changes_leave_one_copy_and_removals_of_gone_values_succeed(conn):
    group = ok(conn, "add", "groups", name="cn=g", attributes={"members": ["u1"]})
    added = twice(conn, "update", "groups", anchor=group, add_values={"members": ["u2"]})
    removed = twice(conn, "update", "groups", anchor=group, remove_values={"members": ["u1", "never"]})
    assert all(r.ok for r in added + removed), [r.error for r in added + removed]
    assert conn.get("groups", group).attributes == {"members": ["u2"]}


def test_replayed_update_disable_and_set_password_end_in_the_same_state(conn, tmp_path):
    anchor = ok(conn, "add", name="uid=a", attributes={"title": "Dev", "phone": "1"})
    path = tmp_path / "tree" / "default" / "uid=a.json"
    for kind, fields in (("update", {"attributes": {"title": "Lead", "phone": None}}),
                         ("disable", {"attributes": {"active": False}}),
                         ("set_password", {"password": "pw-1"})):
        first, second = twice(conn, kind, anchor=anchor, **fields)
        after_first = doc(path)
        assert first.ok and second.ok, (kind, second.error)
        assert doc(path) == after_first, kind
    assert doc(path)["attributes"] == {"title": "Lead", "active": False, "disabled": True}


def test_a_replayed_rename_changes_nothing_and_journals_nothing(conn, tmp_path):
    anchor = ok(conn, "add", name="uid=a", attributes={})
    first, second = twice(conn, "rename", anchor=anchor, name="uid=b", old_name="uid=a")
    assert first.ok and second.ok and second.anchor == anchor and second.name == "uid=b"
    assert [e["kind"] for e in journal(tmp_path / "tree")] == ["add", "rename"]
    ok(conn, "rename", anchor=anchor, name="uid=B")  # a change of case is a rename, though
    assert conn.get("users", anchor).name == "uid=B"


def test_a_replayed_delete_or_replace_is_not_found(conn):
    gone = ok(conn, "add", name="uid=a", attributes={})
    first, second = twice(conn, "delete", anchor=gone, name="uid=a")
    assert first.ok and isinstance(second.error, NotFound)
    old = ok(conn, "add", name="uid=b", attributes={"v": 1})
    first, second = twice(conn, "replace", anchor=old, name="uid=c", attributes={"v": 2})
    assert first.ok and isinstance(second.error, NotFound)
    assert [(r.anchor, r.name) for r in read(conn)[0]] == [(first.anchor, "uid=c")]


# ---- a crash between the files of one operation: finished by the replay or the next open ------------------


class Crash(BaseException):
    """The process dies here: no handler of the connector runs (it catches Exception subclasses only)."""


def test_a_rename_cut_short_by_a_crash_is_finished_by_its_replay(make, tmp_path, monkeypatch):
    """The crash comes after the first of the two moves (children's folder, object's file)."""
    conn = make()
    ou = ok(conn, "add", "orgunits", name="ou=sales", attributes={})
    child = ok(conn, "add", name="uid=a,ou=sales", attributes={"x": 1})
    real, moves = os.replace, []

    def first_move_only(src: Any, dst: Any) -> None:
        if moves:
            raise Crash
        moves.append(dst)
        real(src, dst)

    monkeypatch.setattr(os, "replace", first_move_only)
    rename = Operation(1, "rename", "orgunits", anchor=ou, name="ou=revenue", old_name="ou=sales")
    with pytest.raises(Crash):
        list(conn.apply([rename]))
    monkeypatch.undo()
    conn.close()

    again = make()
    ok(again, "rename", "orgunits", anchor=ou, name="ou=revenue", old_name="ou=sales")  # the replay
    base = tmp_path / "tree" / "default"
    assert sorted(p.name for p in base.iterdir()) == [".journal.jsonl", "ou=revenue", "ou=revenue.json"]
    assert doc(base / "ou=revenue" / "uid=a.json")["name"] == "uid=a,ou=revenue"
    assert again.get("users", child).name == "uid=a,ou=revenue"
    ok(again, "add", name="uid=b,ou=revenue", attributes={})
    fails(again, "delete", ObjectError, "orgunits", anchor=ou)  # its children are counted


def test_a_replace_cut_short_by_a_crash_is_finished_by_the_next_open(make, tmp_path, monkeypatch):
    """The crash comes after the new object's file is written, before the old one is removed."""
    conn = make()
    old = ok(conn, "add", name="uid=a", attributes={"v": 1})

    def crash(self: Path, missing_ok: bool = False) -> None:
        raise Crash

    monkeypatch.setattr(Path, "unlink", crash)
    with pytest.raises(Crash):
        list(conn.apply([Operation(1, "replace", "users", anchor=old, name="uid=b", attributes={"v": 2})]))
    monkeypatch.undo()
    conn.close()
    base = tmp_path / "tree" / "default"
    assert sorted(p.name for p in base.glob("*.json")) == ["uid=a.json", "uid=b.json"]  # what the crash left

    again = make()
    [record] = read(again)[0]
    assert (record.name, record.attributes) == ("uid=b", {"v": 2})
    assert not (base / "uid=a.json").exists()
    assert [(e["kind"], e["anchor"]) for e in journal(tmp_path / "tree")][-2:] == [("delete", old),
                                                                                   ("replace", record.anchor)]
    fails(again, "replace", NotFound, anchor=old, name="uid=b", attributes={"v": 2})  # its replay
    again.close()
    make()  # and a later open has nothing left to finish
    assert len(journal(tmp_path / "tree")) == 3


def test_a_replace_whose_old_file_cannot_be_removed_fails_and_leaves_the_old_object(conn, tmp_path, monkeypatch):
    old = ok(conn, "add", name="uid=a", attributes={"v": 1})
    real = Path.unlink

    def refuse(self: Path, missing_ok: bool = False) -> None:
        if self.name == "uid=a.json":
            raise PermissionError(13, "Permission denied", str(self))
        real(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse)
    fails(conn, "replace", ObjectError, anchor=old, name="uid=b", attributes={"v": 2})
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "tree" / "default").glob("*.json")) == ["uid=a.json"]
    assert [r.anchor for r in read(conn)[0]] == [old]
