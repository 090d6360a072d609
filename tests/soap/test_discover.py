"""`provision discover` on the SOAP example: the WSDL's operations with their argument types, and the
fields the list operations return."""

from __future__ import annotations

from .world import env_for, hr_manifest


def test_discover_lists_operations_with_their_signatures_and_the_fields_of_records(provision, tmp_path,
                                                                                   soapservice, monkeypatch):
    manifest = hr_manifest(tmp_path, people=10, groups=1)
    for k, v in env_for(soapservice.wsdl, tmp_path).items():
        monkeypatch.setenv(k, v)
    assert provision("run", manifest).code == 0
    found = provision("discover", manifest, "--connector", "svc")
    assert found.code == 0, found.err
    text = found.out
    assert "UserManagement.UserManagement.createUser: (user: ns0:User) -> createUserResult: ns0:User" in text
    assert ("listUsers: (modifiedSince: xsd:dateTime, offset: xsd:integer, limit: xsd:integer) -> "
            "listUsersResult: ns0:UserArray") in text
    assert "setUserActive: (userName: xsd:string, active: xsd:boolean)" in text
    as_json = provision("discover", manifest, "--connector", "svc", "--output", "json").json()
    [svc] = [d for d in as_json if d["connector"] == "svc"]
    fields = {o["name"]: {a["name"]: a["type"] for a in o["attributes"]} for o in svc["objects"]}
    assert fields["users"]["active"] == "boolean" and fields["users"]["email"] == "string"
    assert fields["groups"]["members"] == "array"
