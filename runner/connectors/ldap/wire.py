"""The requests an export sends by the thousand (Add and Modify), BER-encoded without pyasn1.

ldap3 builds every request as a tree of pyasn1 objects, encodes it, then decodes it back into a
dict for its log: for an inetOrgPerson add that is about two thirds of the client's CPU, and an
export's threads share one interpreter lock, so it bounds how fast a run writes. An LDAP message
is a handful of tag-length-value triples (RFC 4511 §5.1: BER, definite lengths, primitive
strings), so the connector encodes these two requests itself, byte for byte as ldap3 would
(tests/ldap/test_wire.py compares them on generated entries), and hands them to the
connection's own socket. Everything else stays ldap3's: the bind, TLS, message IDs, reading and
decoding the answer (its fast decoder), timeouts and the exceptions a broken connection raises.

A control here is ``(oid, criticality, value)`` with the value already encoded (or None), the
form ldap3 itself accepts, so the same list serves both paths.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ldap3
from ldap3.core import exceptions as lx

Control = tuple[str, bool, bytes | None]

# RFC 4511 tags: universal, [APPLICATION n] constructed, [0] constructed (controls)
_INTEGER, _OCTETS, _ENUMERATED, _BOOLEAN, _SEQUENCE, _SET = 0x02, 0x04, 0x0A, 0x01, 0x30, 0x31
_ADD_REQUEST, _MODIFY_REQUEST, _CONTROLS = 0x68, 0x66, 0xA0
_EQUALITY_MATCH = 0xA3  # Filter's equalityMatch [3], constructed
_MODIFY_OPERATION = {ldap3.MODIFY_ADD: 0, ldap3.MODIFY_DELETE: 1, ldap3.MODIFY_REPLACE: 2, ldap3.MODIFY_INCREMENT: 3}


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _length(len(body)) + body


def _octets(value: str | bytes) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return _tlv(_OCTETS, raw)


def _integer(tag: int, n: int) -> bytes:
    return _tlv(tag, n.to_bytes(n.bit_length() // 8 + 1, "big", signed=True))


def _values(values: Iterable[str | bytes]) -> bytes:
    return _tlv(_SET, b"".join(_octets(v) for v in values))


def _controls(controls: Sequence[Control]) -> bytes:
    if not controls:
        return b""
    encoded = []
    for oid, critical, value in controls:
        body = _octets(oid) + (_tlv(_BOOLEAN, b"\xff") if critical else b"")
        encoded.append(_tlv(_SEQUENCE, body + (_octets(value) if value is not None else b"")))
    return _tlv(_CONTROLS, b"".join(encoded))


def _message(message_id: int, operation: bytes, controls: Sequence[Control]) -> bytes:
    return _tlv(_SEQUENCE, _integer(_INTEGER, message_id) + operation + _controls(controls))


def add_message(message_id: int, dn: str, attributes: Mapping[str, Sequence[str | bytes]],
                controls: Sequence[Control] = ()) -> bytes:
    """An LDAPMessage holding an AddRequest: every attribute with its values, in the given order."""
    listed = b"".join(_tlv(_SEQUENCE, _octets(name) + _values(values)) for name, values in attributes.items())
    return _message(message_id, _tlv(_ADD_REQUEST, _octets(dn) + _tlv(_SEQUENCE, listed)), controls)


def modify_message(message_id: int, dn: str, changes: Mapping[str, Sequence[tuple[str, Sequence[str | bytes]]]],
                   controls: Sequence[Control] = ()) -> bytes:
    """An LDAPMessage holding a ModifyRequest; ``changes`` as ldap3 takes them
    (``{attribute: [(MODIFY_ADD, [values]), ...]}``), one change per step, in order."""
    encoded = []
    for name, steps in changes.items():
        for kind, values in steps:
            partial = _tlv(_SEQUENCE, _octets(name) + _values(values))
            encoded.append(_tlv(_SEQUENCE, _integer(_ENUMERATED, _MODIFY_OPERATION[kind]) + partial))
    return _message(message_id, _tlv(_MODIFY_REQUEST, _octets(dn) + _tlv(_SEQUENCE, b"".join(encoded))), controls)


def equality_filter(attribute: str, value: str) -> bytes:
    """The Filter ``(attribute=value)`` (the value as it is, not escaped): an Assertion control's value."""
    return _tlv(_EQUALITY_MATCH, _octets(attribute) + _octets(value))


def attribute_selection(attributes: Sequence[str]) -> bytes:
    """An AttributeSelection (SEQUENCE OF LDAPString): a Pre/Post-Read control's value."""
    return _tlv(_SEQUENCE, b"".join(_octets(a) for a in attributes))


# ---- sending on an ldap3 connection --------------------------------------------------------------


def usable(conn: ldap3.Connection) -> bool:
    """Whether ``conn`` can take a request encoded here: ldap3's synchronous strategy, no message
    signing (DIGEST-MD5, which the connector does not offer), no usage counters."""
    return (conn.strategy_type == ldap3.SYNC and not conn.lazy and not conn.usage
            and conn.sasl_mechanism != ldap3.DIGEST_MD5)


def _plain(values: Sequence[Any]) -> bool:
    return all(isinstance(v, str | bytes) for v in values)


def add(conn: ldap3.Connection, dn: str, attributes: Mapping[str, Sequence[str | bytes]],
        controls: Sequence[Control] = ()) -> None:
    """``conn.add(dn, attributes=attributes, controls=controls)``, encoded here when it can be;
    the answer is in ``conn.result`` either way."""
    if not (usable(conn) and all(_plain(v) for v in attributes.values())):
        conn.add(dn, attributes=attributes, controls=list(controls) or None)
        return
    request = {"type": "addRequest", "entry": dn, "attributes": attributes, "controls": controls}
    _exchange(conn, request, lambda message_id: add_message(message_id, dn, attributes, controls))


def modify(conn: ldap3.Connection, dn: str, changes: Mapping[str, Sequence[tuple[str, Sequence[str | bytes]]]],
           controls: Sequence[Control] = ()) -> None:
    """``conn.modify(dn, changes, controls=controls)``, encoded here when it can be."""
    if not (usable(conn) and all(kind in _MODIFY_OPERATION and _plain(values)
                                 for steps in changes.values() for kind, values in steps)):
        conn.modify(dn, changes, controls=list(controls) or None)
        return
    request = {"type": "modifyRequest", "entry": dn, "changes": changes, "controls": controls}
    _exchange(conn, request, lambda message_id: modify_message(message_id, dn, changes, controls))


def _exchange(conn: ldap3.Connection, request: dict[str, Any], encode: Any) -> None:
    """Send one encoded request and wait for its answer the way ldap3's ``send`` and
    ``post_send_single_response`` do: the same outstanding-request bookkeeping, the same
    exceptions when the socket is closed or breaks, ``conn.result`` set from the answer."""
    strategy = conn.strategy
    with conn.connection_lock:
        conn.last_error = None
        conn.request = None
        if not conn.listening:
            conn.last_error = "unable to send message, socket is not open"
            raise lx.LDAPSocketOpenError(conn.last_error)
        message_id = conn.server.next_message_id()
        payload = encode(message_id)
        conn.request = request
        strategy._outstanding[message_id] = request
        try:
            conn.socket.sendall(payload)
        except OSError as exc:
            conn.last_error = "socket sending error" + str(exc)
            raise lx.communication_exception_factory(lx.LDAPSocketSendError, type(exc)(str(exc)))(
                conn.last_error) from None
        strategy.post_send_single_response(message_id)
        conn._entries = []
        result = conn.result or {}
        if result.get("result") not in (0, None) and not conn.last_error:
            conn.last_error = result.get("description")
