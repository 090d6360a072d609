"""The connector's own BER encoding of Add and Modify requests (runner/connectors/ldap/wire.py).

It replaces ldap3's pyasn1 path on the export's hot path, so it must send exactly what ldap3
would: the first test compares the bytes on generated requests (non-ASCII, lengths across the
one-, two- and three-byte length forms, every modify operation, controls with and without
values and criticality). The others run against the real slapd: what is written reads back
as sent, values ldap3 would convert still go through ldap3, a closed connection raises what
ldap3 raises, and the connector's pooled connections really take the encoded path.
"""

from __future__ import annotations

from pathlib import Path

import ldap3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ldap3.core import exceptions as lx
from ldap3.operation.add import add_operation
from ldap3.operation.modify import modify_operation
from ldap3.protocol.rfc4511 import LDAPMessage, MessageID, ProtocolOp
from ldap3.strategy.base import build_controls_list
from ldap3.utils.asn1 import encode
from servers.slapd import Slapd

from runner.connectors.ldap import wire
from runner.connectors.ldap.connection import assert_uuid, permissive_modify, post_read

from .helpers import admin, connector, new_base, op

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40) | st.text(min_size=120, max_size=300)
value = text | st.binary(max_size=300) | st.just("x" * 70_000)
values = st.lists(value, max_size=4)
names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9-]{0,20}(;binary)?", fullmatch=True)
controls = st.lists(st.sampled_from([permissive_modify(), post_read(["entryUUID"]), post_read(["entryUUID", "cn"]),
                                     assert_uuid("6c2e4e2a-1d7f-103f-8a5b-5d2f1c7e9a01"), ("1.2.3", True, b"")]),
                    max_size=3)
message_ids = st.integers(1, 2**31 - 1)


def ldap3_bytes(message_id: int, kind: str, request: object, controls: list[wire.Control]) -> bytes:
    """What ldap3's send() encodes for the same request."""
    message = LDAPMessage()
    message["messageID"] = MessageID(message_id)
    message["protocolOp"] = ProtocolOp().setComponentByName(kind, request)
    built = build_controls_list(controls)
    if built is not None:
        message["controls"] = built
    return encode(message)


@settings(max_examples=300, deadline=None)
@given(message_ids, text, st.dictionaries(names, values.filter(bool), max_size=6), controls)
def test_an_add_encodes_as_ldap3_encodes_it(message_id: int, dn: str, attributes: dict, chosen: list) -> None:
    ours = wire.add_message(message_id, dn, attributes, chosen)
    assert ours == ldap3_bytes(message_id, "addRequest", add_operation(dn, attributes, True), chosen)


@settings(max_examples=300, deadline=None)
@given(message_ids, text,
       st.dictionaries(names, st.lists(st.tuples(st.sampled_from([ldap3.MODIFY_ADD, ldap3.MODIFY_DELETE,
                                                                   ldap3.MODIFY_REPLACE, ldap3.MODIFY_INCREMENT]),
                                                 values), min_size=1, max_size=3), max_size=5),
       controls)
def test_a_modify_encodes_as_ldap3_encodes_it(message_id: int, dn: str, changes: dict, chosen: list) -> None:
    ours = wire.modify_message(message_id, dn, changes, chosen)
    assert ours == ldap3_bytes(message_id, "modifyRequest", modify_operation(dn, changes, True), chosen)


def entry(server: Slapd, dn: str) -> dict:
    conn = admin(server)
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["*", "entryUUID"])
    assert conn.result["result"] == 0, conn.result
    found = dict(conn.response[0]["raw_attributes"])
    conn.unbind()
    return found


def test_what_is_sent_encoded_here_reads_back_exactly(directory: Slapd) -> None:
    base = new_base(directory, "wire")
    conn = admin(directory)
    assert wire.usable(conn)
    dn = f"cn=Zoë \\+ Ödegård,{base}"
    long = "ż" * 40_000  # an 80,000-byte value: a three-byte BER length
    wire.add(conn, dn, {"objectClass": ["inetOrgPerson"], "cn": ["Zoë + Ödegård"], "sn": ["Ödegård"],
                        "description": [long, "second"], "jpegPhoto": [bytes(range(256))]},
             [post_read(["entryUUID"])])
    assert conn.result["result"] == 0, conn.result
    uuid = conn.result["controls"][post_read(["entryUUID"])[0]]["value"]["result"]["entryUUID"][0]
    stored = entry(directory, dn)
    assert stored["entryUUID"] == [uuid.encode()]
    assert sorted(stored["description"]) == sorted([long.encode(), b"second"])
    assert stored["jpegPhoto"] == [bytes(range(256))]

    wire.modify(conn, dn, {"description": [(ldap3.MODIFY_DELETE, ["second"]), (ldap3.MODIFY_ADD, ["third"])],
                           "title": [(ldap3.MODIFY_REPLACE, ["Ingénieur"])]},
                [permissive_modify(), assert_uuid(uuid)])
    assert conn.result["result"] == 0, conn.result
    stored = entry(directory, dn)
    assert sorted(stored["description"]) == sorted([long.encode(), b"third"])
    assert stored["title"] == ["Ingénieur".encode()]

    # the assertion guards: another entryUUID is refused, and nothing changes
    wire.modify(conn, dn, {"title": [(ldap3.MODIFY_REPLACE, ["Other"])]},
                [assert_uuid("00000000-0000-1000-8000-000000000000")])
    assert conn.result["result"] == 122, conn.result  # assertionFailed
    assert entry(directory, dn)["title"] == ["Ingénieur".encode()]
    conn.unbind()


def test_answers_and_errors_are_ldap3s(directory: Slapd) -> None:
    base = new_base(directory, "wire-errors")
    conn = admin(directory)
    person = {"objectClass": ["inetOrgPerson"], "cn": ["A"], "sn": ["B"]}
    wire.add(conn, f"cn=A,{base}", person)
    assert conn.result["result"] == 0
    wire.add(conn, f"cn=A,{base}", person)
    assert (conn.result["result"], conn.result["description"]) == (68, "entryAlreadyExists")
    wire.add(conn, f"cn=A,ou=missing,{base}", person)
    assert conn.result["result"] == 32 and conn.last_error == "noSuchObject"
    wire.modify(conn, f"cn=A,{base}", {"undefinedThing": [(ldap3.MODIFY_REPLACE, ["x"])]})
    assert conn.result["result"] == 17, conn.result  # undefinedAttributeType, with slapd's message
    assert conn.result["message"]
    conn.unbind()
    with pytest.raises(lx.LDAPSocketOpenError):
        wire.add(conn, f"cn=C,{base}", person)


def test_values_ldap3_would_convert_still_go_through_ldap3(directory: Slapd) -> None:
    base = new_base(directory, "wire-fallback")
    conn = admin(directory)
    wire.add(conn, f"cn=N,{base}", {"objectClass": ["inetOrgPerson"], "cn": ["N"], "sn": ["N"],
                                    "employeeNumber": [42]})  # an int: ldap3 turns it into "42"
    assert conn.result["result"] == 0, conn.result
    assert entry(directory, f"cn=N,{base}")["employeeNumber"] == [b"42"]
    conn.unbind()


def test_the_connectors_pooled_connections_take_the_encoded_path(directory: Slapd, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Were ldap3's own add or modify called, the export would lose the speed this module is for."""
    base = new_base(directory, "wire-pool")

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("the export went through ldap3's pyasn1 path")

    monkeypatch.setattr(ldap3.Connection, "add", refused)
    monkeypatch.setattr(ldap3.Connection, "modify", refused)
    c = connector(directory, tmp_path, concurrency=2)
    c.open()
    try:
        [added] = c.apply([op("add", name=f"uid=w1,{base}", attributes={"uid": "w1", "cn": "W", "sn": "One"})])
        assert added.ok, added.error
        [updated] = c.apply([op("update", name=f"uid=w1,{base}", anchor=added.anchor, attributes={"sn": "Two"})])
        assert updated.ok, updated.error
    finally:
        c.close()
    assert entry(directory, f"uid=w1,{base}")["sn"] == [b"Two"]
