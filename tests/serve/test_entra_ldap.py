"""``manifests/entra-to-ldap.yaml``: Microsoft Entra provisions through ``provision serve`` into LDAP.

The example manifest and its two mapping files, copied to a temporary folder, pointed at a
throwaway slapd (``tests/servers/slapd.py``, started here as ``tests/ldap/conftest.py`` starts it,
one per module, stopped by its PID) through the environment variables the example reads, and
served by ``provision serve`` as a real process (``tests/servers/pipelineendpoint.py``). Microsoft's
user and group sequence goes through it step by step (create two users, one the other's manager;
a group with both; a new title; active "False", which moves the entry to ``ou=disabled``, and
"True", which moves it back; a member removed; a user deleted), and after each step the test reads
the directory with ldap3. ``provision validate`` and ``provision test`` pass on the example itself.

The slapd here has no refint overlay: when the manager moves, the report's ``manager`` DN and the
group's ``member`` DNs follow because the endpoint writes them, in the same request.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest
from servers.pipelineendpoint import TOKEN_ENV, PipelineEndpoint
from servers.scimendpoint import TOKEN
from servers.slapd import Slapd

from runner.names import normalize_dn

from .test_entra import DISABLE_WITHOUT_FLAG, ENTERPRISE

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "manifests" / "entra-to-ldap.yaml"
MAPPINGS = ("entra-user-to-inetorgperson.yaml", "entra-group-to-groupofnames.yaml")
BASE = "dc=example,dc=org"
GROUPS = f"ou=groups,{BASE}"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMAS = ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE]

# "Disable User" as Entra sends it without the aadOptscim062020 flag, and its opposite
ENABLE_WITHOUT_FLAG = DISABLE_WITHOUT_FLAG.replace('"False"', '"True"')


def example_env(server: Slapd, folder: Path, base: str = BASE) -> dict[str, str]:
    """What the example reads from the environment, for the test slapd."""
    return {"SCIM_ENDPOINT_TOKEN": TOKEN, "LDAP_URL": server.url, "LDAP_BIND_DN": server.root_dn,
            "LDAP_PASSWORD": server.root_password, "LDAP_BASE_DN": base,
            "PROVISION_STATE": str(folder / "entra-to-ldap.state")}


def copy_example(folder: Path) -> Path:
    """The example manifest, its mapping tests and mappings in ``folder`` (the same layout)."""
    (folder / "manifests").mkdir(parents=True)
    (folder / "mappings").mkdir()
    shutil.copy(EXAMPLE, folder / "manifests")
    shutil.copy(EXAMPLE.with_name("entra-to-ldap.mapping-tests.yaml"), folder / "manifests")
    for name in MAPPINGS:
        shutil.copy(REPO / "mappings" / name, folder / "mappings")
    return folder / "manifests" / EXAMPLE.name


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = Slapd.start(tmp_path_factory.mktemp("entra-ldap") / "slapd", refint=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def served(slapd: Slapd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineEndpoint]:
    folder = tmp_path_factory.mktemp("entra-to-ldap")
    manifest = copy_example(folder)
    with pytest.MonkeyPatch.context() as env:  # the served process inherits the environment
        for name, value in example_env(slapd, folder).items():
            env.setenv(name, value)
        running = PipelineEndpoint.start_serving(manifest, folder)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def directory(slapd: Slapd) -> Iterator[ldap3.Connection]:
    conn = ldap3.Connection(ldap3.Server(slapd.url, get_info=ldap3.NONE), slapd.root_dn, slapd.root_password,
                            auto_bind=True)
    yield conn
    conn.unbind()


def entries(conn: ldap3.Connection, base: str, object_class: str) -> dict[str, dict[str, Any]]:
    """Every ``object_class`` entry below ``base``: normalized DN -> attributes (lists of text),
    with ``entryUUID``."""
    conn.search(base, f"(objectClass={object_class})", ldap3.SUBTREE, attributes=["*", "entryUUID"])
    assert conn.result["result"] in (0, 32), conn.result  # 32: noSuchObject, the container is not there yet
    return {normalize_dn(e["dn"]): {k: [str(v) for v in vs] if isinstance(vs, list) else [str(vs)]
                                    for k, vs in e["attributes"].items()}
            for e in conn.response if e.get("type") == "searchResEntry"}


def people(conn: ldap3.Connection, base: str = BASE) -> dict[str, dict[str, Any]]:
    return entries(conn, f"ou=people,{base}", "inetOrgPerson")


def members(conn: ldap3.Connection, cn: str) -> set[str]:
    found = entries(conn, GROUPS, "groupOfNames")
    return {normalize_dn(m) for m in found[normalize_dn(f"cn={cn},{GROUPS}")]["member"]}


def dn(uid: str, ou: str, base: str = BASE) -> str:
    return normalize_dn(f"uid={uid},ou={ou},ou=people,{base}")


def manager_of(conn: ldap3.Connection, uid: str, base: str = BASE) -> list[str]:
    [entry] = [e for e in people(conn, base).values() if e["uid"] == [uid]]
    return [normalize_dn(m) for m in entry.get("manager", [])]


def scim(answer: Any, status: int) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json() if answer.content else None


def user_body(user_name: str, given: str, family: str, department: str, title: str,
              manager: str | None = None) -> dict[str, Any]:
    """A Create User body as Entra sends it (Microsoft's, with the enterprise extension filled)."""
    enterprise: dict[str, Any] = {"department": department, "employeeNumber": user_name.split("@")[0]}
    if manager is not None:
        enterprise["manager"] = {"value": manager}
    return {"schemas": USER_SCHEMAS, "externalId": f"ext-{user_name}", "userName": user_name, "active": True,
            "displayName": f"{given} {family}", "title": title,
            "emails": [{"primary": True, "type": "work", "value": user_name}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": f"{given} {family}", "familyName": family, "givenName": given},
            "roles": [], ENTERPRISE: enterprise}


def test_the_example_validates_and_its_mapping_tests_pass(slapd: Slapd, tmp_path: Path, provision: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in example_env(slapd, tmp_path).items():
        monkeypatch.setenv(name, value)
    validated = provision("validate", EXAMPLE)
    assert validated.code == 0, validated.out + validated.err
    tested = provision("test", EXAMPLE)
    assert tested.code == 0, tested.out + tested.err
    assert "FAIL" not in tested.out and " passed" in tested.out


def test_microsofts_user_and_group_sequence_reaches_the_directory(served: PipelineEndpoint,
                                                                  directory: ldap3.Connection) -> None:
    # Create User: the manager, in Sales; an inetOrgPerson under ou=Sales,ou=people
    boss = scim(served.request("POST", "/Users", user_body("Alex.Wilber@contoso.com", "Alex", "Wilber", "Sales",
                                                          "Head of Sales")), 201)
    found = people(directory)
    assert list(found) == [dn("alex.wilber", "Sales")]
    alex = found[dn("alex.wilber", "Sales")]
    assert (alex["uid"], alex["mail"], alex["givenName"], alex["sn"], alex["title"], alex["cn"]) == (
        ["alex.wilber"], ["Alex.Wilber@contoso.com"], ["Alex"], ["Wilber"], ["Head of Sales"], ["Alex Wilber"])
    assert alex["employeeType"] == ["active"] and "manager" not in alex

    # Create User: the report, in Engineering, whose manager is the first: manager is the manager's DN
    body = user_body("Megan.Bowen@contoso.com", "Megan", "Bowen", "Engineering", "Engineer", manager=boss["id"])
    megan_user = scim(served.request("POST", "/Users", body), 201)
    assert megan_user[ENTERPRISE]["manager"]["value"] == boss["id"]
    found = people(directory)
    assert set(found) == {dn("alex.wilber", "Sales"), dn("megan.bowen", "Engineering")}
    megan = found[dn("megan.bowen", "Engineering")]
    assert [normalize_dn(m) for m in megan["manager"]] == [dn("alex.wilber", "Sales")]
    assert megan["mail"] == ["Megan.Bowen@contoso.com"] and megan["title"] == ["Engineer"]
    uuid = megan["entryUUID"]

    # Create Group with both as members: a groupOfNames under ou=groups with their DNs
    group = scim(served.request("POST", "/Groups", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "externalId": "8aa1a0c0-c4c3-4bc0",
        "displayName": "Sales and Engineering", "meta": {"resourceType": "Group"},
        "members": [{"value": boss["id"]}, {"value": megan_user["id"]}]}), 201)
    assert members(directory, "Sales and Engineering") == {dn("alex.wilber", "Sales"),
                                                           dn("megan.bowen", "Engineering")}

    # The manager changes department: the entry moves, and the report's manager DN and the group's
    # member DN follow in the same request (this slapd has no refint overlay to rewrite them)
    moved = {"schemas": [PATCH_OP], "Operations": [
        {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Marketing"}]}
    scim(served.request("PATCH", f"/Users/{boss['id']}", moved), 200)
    assert set(people(directory)) == {dn("alex.wilber", "Marketing"), dn("megan.bowen", "Engineering")}
    assert manager_of(directory, "megan.bowen") == [dn("alex.wilber", "Marketing")]
    assert members(directory, "Sales and Engineering") == {dn("alex.wilber", "Marketing"),
                                                           dn("megan.bowen", "Engineering")}

    # Update User [single-valued]: a new title
    retitled = {"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "title", "value": "Senior Engineer"}]}
    assert scim(served.request("PATCH", f"/Users/{megan_user['id']}", retitled), 200)["title"] == "Senior Engineer"
    assert people(directory)[dn("megan.bowen", "Engineering")]["title"] == ["Senior Engineer"]

    # Disable User, as Entra sends it ("False", a string): the entry moves to ou=disabled,ou=people
    assert scim(served.request("PATCH", f"/Users/{megan_user['id']}", DISABLE_WITHOUT_FLAG), 200)["active"] is False
    found = people(directory)
    assert set(found) == {dn("alex.wilber", "Marketing"), dn("megan.bowen", "disabled")}
    disabled = found[dn("megan.bowen", "disabled")]
    assert disabled["entryUUID"] == uuid  # a modDN, not a delete and an add
    assert disabled["employeeType"] == ["disabled"] and disabled["title"] == ["Senior Engineer"]
    assert disabled["departmentNumber"] == ["Engineering"]
    assert members(directory, "Sales and Engineering") == {dn("alex.wilber", "Marketing"), dn("megan.bowen", "disabled")}

    # Enable User ("True"): back under ou=Engineering
    assert scim(served.request("PATCH", f"/Users/{megan_user['id']}", ENABLE_WITHOUT_FLAG), 200)["active"] is True
    found = people(directory)
    assert set(found) == {dn("alex.wilber", "Marketing"), dn("megan.bowen", "Engineering")}
    enabled = found[dn("megan.bowen", "Engineering")]
    assert enabled["entryUUID"] == uuid and enabled["employeeType"] == ["active"]
    assert [normalize_dn(m) for m in enabled["manager"]] == [dn("alex.wilber", "Marketing")]
    assert members(directory, "Sales and Engineering") == {dn("alex.wilber", "Marketing"),
                                                           dn("megan.bowen", "Engineering")}

    # Remove a member from the group (Entra's body without the flag)
    removed = {"schemas": [PATCH_OP], "Operations": [
        {"op": "Remove", "path": "members", "value": [{"value": megan_user["id"]}]}]}
    assert served.request("PATCH", f"/Groups/{group['id']}", removed).status_code in (200, 204)
    assert members(directory, "Sales and Engineering") == {dn("alex.wilber", "Marketing")}

    # Delete User: the entry is gone
    assert served.request("DELETE", f"/Users/{megan_user['id']}").status_code == 204
    assert scim(served.request("GET", f"/Users/{megan_user['id']}"), 404)["status"] == "404"
    assert set(people(directory)) == {dn("alex.wilber", "Marketing")}
    assert members(directory, "Sales and Engineering") == {dn("alex.wilber", "Marketing")}

    # Delete Group, then the last user: nothing of theirs is left
    assert served.request("DELETE", f"/Groups/{group['id']}").status_code == 204
    assert entries(directory, GROUPS, "groupOfNames") == {}
    assert served.request("DELETE", f"/Users/{boss['id']}").status_code == 204
    assert people(directory) == {}


def test_a_provisioning_run_meanwhile_is_refused(served: PipelineEndpoint, slapd: Slapd, provision: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    folder = served.log.parent if served.log else None
    assert folder is not None
    for name, value in example_env(slapd, folder).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert provision("run", folder / "manifests" / EXAMPLE.name).code != 0  # the endpoint holds the lock




def test_a_member_removed_from_a_group_while_disabled_leaves_it(served: PipelineEndpoint,
                                                                directory: ldap3.Connection) -> None:
    """The member's DN changed under the group (the endpoint wrote the new one into the group):
    the removal still takes out the value the group holds."""
    kept = scim(served.request("POST", "/Users", user_body("Kept@contoso.com", "Kept", "One", "Ops", "Op")), 201)
    gone = scim(served.request("POST", "/Users", user_body("Gone@contoso.com", "Gone", "One", "Ops", "Op")), 201)
    group = scim(served.request("POST", "/Groups", {"displayName": "Ops", "members": [{"value": kept["id"]},
                                                                                       {"value": gone["id"]}]}), 201)
    scim(served.request("PATCH", f"/Users/{gone['id']}", DISABLE_WITHOUT_FLAG), 200)
    assert members(directory, "Ops") == {dn("kept", "Ops"), dn("gone", "disabled")}
    removed = {"schemas": [PATCH_OP], "Operations": [
        {"op": "Remove", "path": "members", "value": [{"value": gone["id"]}]}]}
    assert served.request("PATCH", f"/Groups/{group['id']}", removed).status_code in (200, 204)
    assert members(directory, "Ops") == {dn("kept", "Ops")}
    for path in (f"/Groups/{group['id']}", f"/Users/{kept['id']}", f"/Users/{gone['id']}"):
        assert served.request("DELETE", path).status_code == 204
    assert people(directory) == {}


OTHER = "dc=other,dc=org"  # the slapd's second suffix: a pipeline of its own, apart from the served one
