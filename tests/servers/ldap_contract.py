"""The LDAP connector's entry in the contract suite (tests/contract/conftest.py wires it in).

One slapd per session (:mod:`servers.slapd`) with two suffixes, the connector's two partitions;
each test starts with both emptied, so tests never see each other's entries. Names are relative
to the partition (``names: relative``), which is what lets "the same name in two partitions" hold.
The sample person's RDN is ``uid=<employeeNumber>``: the RDN attribute is not one the tests
assert on, because a rename replaces it (as a manifest's name template would).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ldap3
from contract.harness import Made

from runner.connectors.base import ConnectorContext
from runner.connectors.ldap.connector import LdapConnector

from .slapd import Slapd


@dataclass(frozen=True)
class Partitions:
    """A test's own two partitions on the session's slapd."""

    server: Slapd
    here: str
    there: str


def admin(server: Slapd) -> ldap3.Connection:
    return ldap3.Connection(ldap3.Server(server.url, get_info=ldap3.NONE), server.root_dn, server.root_password,
                            auto_bind=True)


def session_server(folder: Path) -> Iterator[Slapd]:
    server = Slapd.start(folder)
    try:
        yield server
    finally:
        server.stop()


def fresh_partitions(server: Slapd) -> Partitions:
    """The server's two suffixes, emptied (and made again when a test removed one)."""
    conn = admin(server)
    for suffix in server.suffixes[:2]:
        conn.search(suffix, "(objectClass=*)", ldap3.SUBTREE, attributes=["1.1"])
        found = sorted((e["dn"] for e in conn.response if e.get("type") == "searchResEntry"),
                       key=lambda d: d.count(","), reverse=True)
        for dn in found:
            if dn.lower() != suffix.lower():
                conn.delete(dn)
        if not found:
            value = suffix.split(",")[0].split("=")[1]
            conn.add(suffix, ["dcObject", "organization"], {"dc": value, "o": value})
    conn.unbind()
    return Partitions(server, server.suffixes[0], server.suffixes[1])


def person(i: int) -> dict[str, Any]:
    """The i-th sample person as slapd stores it; every third has no phone."""
    return {
        "employeeNumber": f"E{i:04d}",
        "cn": f"User {i}",
        "sn": f"Number {i}",
        "displayName": f"User Number {i}",
        "telephoneNumber": None if i % 3 == 2 else f"+1 555 010{i:04d}",
        "mail": [f"user{i:03d}@example.org"],
    }


def alias(i: int) -> str:
    return f"alias{i}@example.org"


def name_of(attributes: Any, parent: str | None) -> str:
    return f"uid={attributes['employeeNumber']}" + (f",{parent}" if parent else "")


def container(label: str) -> tuple[str, dict[str, Any], str]:
    return "organizationalUnit", {"ou": label}, f"ou={label}"


def make(tmp_path: Path, page_size: int | None = None, server: Partitions | None = None) -> Any:
    url = server.server.url if server else "ldap://127.0.0.1:1"
    here, there = (server.here, server.there) if server else ("dc=example,dc=org", "dc=other,dc=org")
    config: dict[str, Any] = {
        "type": "ldap", "url": url, "bind_dn": server.server.root_dn if server else "cn=admin,dc=example,dc=org",
        "password": server.server.root_password if server else "probe", "partitions": [here, there],
        "names": "relative", "concurrency": 4, "create_parents": False,
        "objects": {"inetOrgPerson": {"multi_valued": ["mail"]}, "organizationalUnit": {}},
        "normalizations": {"title": ["case_insensitive", "trim", "collapse_spaces"], "manager": ["dn"]},
    }
    if page_size:
        config["page_size"] = page_size
    return Made(LdapConnector(config, ConnectorContext("directory", tmp_path)), "inetOrgPerson", here)


def entry_dn(server: Slapd, base: str, anchor: str) -> str:
    conn = admin(server)
    conn.search(base, f"(entryUUID={anchor})", attributes=["1.1"])
    found = conn.response[0]["dn"] if conn.response else None
    conn.unbind()
    assert found, f"no entry with entryUUID {anchor}"
    return found


def bind_works(made: Any, tmp_path: Path, anchor: str, password: str) -> bool:
    """A simple bind as the entry with that password succeeds (slapd checks the {SSHA} hash)."""
    config = made.connector.config
    server = ldap3.Server(config["url"], get_info=ldap3.NONE)
    target = entry_dn(_server_of(made), made.partition, anchor)
    conn = ldap3.Connection(server, target, password)
    try:
        return bool(conn.bind())
    finally:
        conn.unbind()


_SERVERS: dict[str, Slapd] = {}


def _server_of(made: Any) -> Slapd:
    return _SERVERS[made.connector.config["url"]]


def remember(server: Slapd) -> None:
    _SERVERS[server.url] = server


def break_source(made: Any, tmp_path: Path) -> None:
    """The partition's base entry goes (a restore gone wrong): a read must fail, not look empty."""
    conn = admin(_server_of(made))
    conn.search(made.partition, "(objectClass=*)", ldap3.SUBTREE, attributes=["1.1"])
    for dn in sorted((e["dn"] for e in conn.response), key=len, reverse=True):
        conn.delete(dn)
    conn.unbind()


def drop_connections(made: Any, server: Partitions) -> None:
    """slapd restarts: every connection the connector holds is gone."""
    server.server.restart()
