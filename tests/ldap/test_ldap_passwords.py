"""Passwords: in the add itself, hashed before they leave provision, and never sent again.

slapd logs writes as it receives them (the accesslog holds every reqMod), so the accesslog is
where a clear-text password would show: it must hold only ``{SSHA}`` values. The created user
can bind with the password; a later run does not send the password again.
"""

from __future__ import annotations

import ldap3

from runner import sampledata

from .helpers import REPO, admin, connector, op

SECRET = "Initial-Passw0rd-9e1c!"


def logged_passwords(server) -> list[str]:
    conn = admin(server)
    conn.search("cn=accesslog", "(reqMod=*)", ldap3.LEVEL, attributes=["reqMod"])
    values = [v.decode() if isinstance(v, bytes) else v for e in conn.response for v in e["attributes"]["reqMod"]]
    conn.unbind()
    return [v for v in values if v.lower().startswith("userpassword:")]


def test_the_password_goes_in_the_add_hashed_and_the_user_can_bind_with_it(directory, tmp_path):
    dir = connector(directory, tmp_path)
    dir.open()
    try:
        dn = "uid=newbie,dc=example,dc=org"
        [added] = dir.apply([op("add", name=dn, attributes={"cn": "New Bie", "sn": "Bie"}, password=SECRET)])
        assert added.ok, added.error
        assert SECRET not in repr(dir.get("inetOrgPerson", added.anchor))
    finally:
        dir.close()
    server = ldap3.Server(directory.url, get_info=ldap3.NONE)
    assert ldap3.Connection(server, dn, SECRET).bind(), "the created user binds with the initial password"
    assert not ldap3.Connection(server, dn, SECRET + "x").bind()
    logged = logged_passwords(directory)
    assert logged and all(v.split(" ", 1)[1].startswith("{SSHA}") for v in logged), logged
    assert not any(SECRET in v for v in logged)
    assert SECRET.encode() not in (directory.folder / "slapd.log").read_bytes()


def test_a_second_run_does_not_send_the_initial_passwords_again(provision, directory, tmp_path, monkeypatch):
    data = tmp_path / "hr"
    sampledata.make(data, 20, 3, 2)
    for name, value in {"PROVISION_DATA": data, "LDAP_URL": directory.url, "LDAP_BIND_DN": directory.root_dn,
                        "LDAP_PASSWORD": directory.root_password, "LDAP_BASE_DN": "dc=example,dc=org",
                        "PROVISION_STATE": tmp_path / "state.db"}.items():
        monkeypatch.setenv(name, str(value))
    manifest = REPO / "manifests" / "hr-to-ldap.yaml"
    earlier = len(logged_passwords(directory))  # the session's accesslog holds other tests' writes
    first = provision("run", manifest, "--output", "json")
    assert first.code == 0, first.out + first.err
    added = first.json()["object_types"]["user"]["added"]
    assert added > 10 and len(logged_passwords(directory)) == earlier + added
    sampledata.mutate(data, 1, 30.0)
    again = provision("run", manifest, "--output", "json")
    assert again.code == 0, again.out + again.err
    newly = again.json()["object_types"]["user"]["added"]
    assert len(logged_passwords(directory)) == earlier + added + newly, "only the new people got a password"
    assert directory.root_password not in first.out + first.err + again.out + again.err
