"""Partitions through ``provision serve``: one served resource type spans two LDAP suffixes.

The ECMA Connector Host serves one partition; here the SCIM Users Entra sends land in the suffix
their organization names (``dc=example,dc=org`` or ``dc=other,dc=org``, the two suffixes of a
throwaway slapd started for this module and stopped by its PID), a change of organization moves
the entry to the other suffix, and a DELETE removes it from the one it is in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest
from servers.pipelineendpoint import TOKEN_ENV
from servers.scimendpoint import TOKEN
from servers.slapd import Slapd

from runner.serve.patch import parse_patch
from runner.serve.pipeline import PipelineStore
from runner.serve.schema import KINDS

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

MANIFEST = """\
version: 1
name: entra-partitions
state: "sqlite:///{folder}/state.db"
serve: {{token: "${{env:SCIM_ENDPOINT_TOKEN}}"}}
connectors:
  entra: {{type: scim-endpoint}}
  dir:
    type: ldap
    url: "{url}"
    bind_dn: "{bind_dn}"
    password: "{password}"
    partitions: ["dc=example,dc=org", "dc=other,dc=org"]
object_types:
  - name: user
    source: {{connector: entra, object: Users, anchor: id}}
    target: {{connector: dir, object: inetOrgPerson, name: "uid={{uid}},ou=people,dc={{o}},dc=org",
             partition: "dc={{o}},dc=org"}}
    when_deleted: delete
    mapping:
      - {{target: uid, expression: "split(userName, '@')[0]"}}
      - {{target: cn, source: userName}}
      - {{target: sn, expression: "name.familyName"}}
      - {{target: o, expression: '"{enterprise}".organization'}}
"""


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = Slapd.start(tmp_path_factory.mktemp("serve-partitions") / "slapd")
    yield server
    server.stop()


def entries(server: Slapd) -> set[str]:
    conn = ldap3.Connection(ldap3.Server(server.url, get_info=ldap3.NONE), server.root_dn, server.root_password,
                            auto_bind=True)
    found = set()
    for suffix in ("dc=example,dc=org", "dc=other,dc=org"):
        conn.search(suffix, "(objectClass=inetOrgPerson)", ldap3.SUBTREE, attributes=["1.1"])
        found |= {e["dn"].lower() for e in conn.response if e.get("type") == "searchResEntry"}
    conn.unbind()
    return found


def user(name: str, organization: str) -> dict:
    return {"userName": f"{name}@example.com", "active": True, "name": {"familyName": name.title()},
            ENTERPRISE: {"organization": organization}}


def test_users_land_in_the_suffix_of_their_organization_and_move_between_suffixes(
        slapd: Slapd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    manifest = tmp_path / "partitions.yaml"
    manifest.write_text(MANIFEST.format(folder=tmp_path, url=slapd.url, bind_dn=slapd.root_dn,
                                        password=slapd.root_password, enterprise=ENTERPRISE))
    with PipelineStore(manifest) as store:
        ann = store.create("User", user("ann", "example"))
        bob = store.create("User", user("bob", "other"))
        assert entries(slapd) == {"uid=ann,ou=people,dc=example,dc=org", "uid=bob,ou=people,dc=other,dc=org"}
        moved = {"schemas": [PATCH_OP], "Operations": [
            {"op": "Replace", "path": f"{ENTERPRISE}:organization", "value": "other"}]}
        store.patch("User", ann.id, parse_patch(KINDS["User"], moved))
        assert entries(slapd) == {"uid=ann,ou=people,dc=other,dc=org", "uid=bob,ou=people,dc=other,dc=org"}
        store.delete("User", bob.id)
        assert entries(slapd) == {"uid=ann,ou=people,dc=other,dc=org"}
