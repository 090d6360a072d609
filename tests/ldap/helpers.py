"""Helpers of the LDAP connector's tests: open a connector on the test slapd, build operations and
manifests, and dump a subtree as comparable data (DNs relative to the base, values sorted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ldap3
from servers import ldap_contract
from servers.slapd import Slapd

from runner.connectors.base import ConnectorContext, Operation
from runner.connectors.ldap.connector import LdapConnector
from runner.names import normalize_dn

REPO = Path(__file__).resolve().parents[2]
SKIP = {"entryuuid", "entrycsn", "createtimestamp", "modifytimestamp", "creatorsname", "modifiersname",
        "userpassword", "structuralobjectclass", "entrydn", "subschemasubentry", "hassubordinates"}


def admin(server: Slapd) -> ldap3.Connection:
    return ldap_contract.admin(server)


def new_base(server: Slapd, label: str) -> str:
    """A fresh OU below the first suffix, for a test's entries."""
    base = f"ou={label},{server.suffixes[0]}"
    conn = admin(server)
    conn.add(base, ["organizationalUnit"], {"ou": label})
    assert conn.result["result"] == 0, conn.result
    conn.unbind()
    return base


def connector(server: Slapd, tmp_path: Path, url: str | None = None, **options: Any) -> LdapConnector:
    config: dict[str, Any] = {"type": "ldap", "url": url or server.url, "bind_dn": server.root_dn,
                              "password": server.root_password, "partitions": list(server.suffixes)}
    config.update(options)
    return LdapConnector(config, ConnectorContext("directory", tmp_path))


def op(kind: str, n: int = 1, **fields: Any) -> Operation:
    fields.setdefault("object", "inetOrgPerson")
    return Operation(n, kind, **fields)


def dump(server: Slapd, base: str) -> dict[str, dict[str, Any]]:
    """Every entry below ``base``: normalized relative DN -> attributes (DN values normalized and
    made relative too), without operational attributes and passwords."""
    conn = admin(server)
    entries = conn.extend.standard.paged_search(base, "(objectClass=*)", attributes=["*", "memberOf"],
                                                paged_size=500, generator=False)
    root = normalize_dn(base)

    def rel(dn: str) -> str:
        folded = normalize_dn(dn)
        return folded[: -len(root) - 1] if folded.endswith("," + root) else folded

    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e.get("type") != "searchResEntry" or normalize_dn(e["dn"]) == root:
            continue
        attributes = {}
        for name, values in e["attributes"].items():
            if name.lower() in SKIP:
                continue
            values = values if isinstance(values, list) else [values]
            if name.lower() in ("member", "manager", "memberof", "seealso"):
                values = [rel(str(v)) for v in values]
            attributes[name] = sorted(str(v) for v in values)
        out[rel(e["dn"])] = attributes
    conn.unbind()
    return out


def manifest(tmp_path: Path, server: Slapd, name: str, object_types: str, data: Path,
             partitions: tuple[str, ...] = ("dc=example,dc=org",), hr_objects: str = "{}") -> Path:
    """A manifest in ``tmp_path``: CSV files in ``data`` -> connector ``dir`` on ``server``, then
    ``object_types`` (YAML text, as written under ``object_types:``)."""
    quoted = ", ".join(f'"{p}"' for p in partitions)
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""version: 1
name: {name}
state: "sqlite:///{tmp_path / 'state.db'}"
connectors:
  hr: {{type: csv, path: "{data}", objects: {hr_objects}}}
  dir:
    type: ldap
    url: "{server.url}"
    bind_dn: "{server.root_dn}"
    password: "{server.root_password}"
    partitions: [{quoted}]
object_types:
{object_types}""")
    return path
