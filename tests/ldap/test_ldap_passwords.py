"""Passwords: in the add itself, hashed before they leave provision, and never sent again.

slapd logs writes as it receives them (the accesslog holds every reqMod), so the accesslog is
where a clear-text password would show: it must hold only ``{SSHA}`` values. The created user
can bind with the password; a later run does not send the password again. Every other
``password_hash`` is checked the same way: the stored value's scheme, and a simple bind with the
clear password (slapd verifies ``{CRYPT}`` with crypt(3), and ``{SSHA256}``/``{SSHA512}`` with its
pw-sha2 module, which tests/servers/slapd.py loads).
"""

from __future__ import annotations

import ldap3
import pytest

from runner import sampledata
from runner.connectors.base import ConfigurationError
from runner.connectors.ldap import write

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


def stored_password(server, dn: str) -> str:
    conn = admin(server)  # the root DN reads userPassword (the ACL lets nobody else)
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["userPassword"])
    [value] = conn.response[0]["attributes"]["userPassword"]
    conn.unbind()
    return value.decode() if isinstance(value, bytes) else value


@pytest.mark.parametrize("scheme, prefix", [("crypt", "{CRYPT}$6$"), ("ssha256", "{SSHA256}"),
                                            ("ssha512", "{SSHA512}"), ("ssha", "{SSHA}")])
def test_every_hash_scheme_is_stored_as_such_and_the_user_binds_with_the_clear_password(
        directory, tmp_path, scheme: str, prefix: str):
    dir = connector(directory, tmp_path, password_hash=scheme)
    dir.open()
    dn = f"uid=hashed-{scheme},dc=example,dc=org"
    try:
        [added] = dir.apply([op("add", name=dn, attributes={"cn": "Hashed", "sn": scheme}, password=SECRET)])
        assert added.ok, added.error
        [changed] = dir.apply([op("set_password", 2, anchor=added.anchor, name=dn, password=SECRET + "-2")])
        assert changed.ok, changed.error
    finally:
        dir.close()
    value = stored_password(directory, dn)
    assert value.startswith(prefix) and SECRET not in value, value
    server = ldap3.Server(directory.url, get_info=ldap3.NONE)
    assert ldap3.Connection(server, dn, SECRET + "-2").bind(), f"{scheme}: slapd verifies the stored hash"
    assert not ldap3.Connection(server, dn, SECRET).bind(), "the old password no longer works"


def test_crypt_without_a_crypt_module_is_a_configuration_error_at_open(directory, tmp_path, monkeypatch):
    """Python 3.13 removed the crypt module: password_hash: crypt then says what to do, before any write."""
    monkeypatch.setattr(write, "_crypt", lambda: None)
    dir = connector(directory, tmp_path, password_hash="crypt")
    with pytest.raises(ConfigurationError, match=r"crypt.*Python 3\.13.*crypt-r.*ssha512"):
        dir.open()
    dir.close()
    assert write.hash_problem("ssha512") is None
