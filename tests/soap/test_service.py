"""The SOAP test service (``tests/servers/soapservice.py``) behaves as its docstring says, seen through zeep,
and the fault proxy (``tests/servers/scim.py``) can stand in front of it."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from servers.scim import FaultProxy
from servers.soapservice import NAMESPACE, PASSWORD, USER, SoapService, running
from zeep.exceptions import Fault, TransportError
from zeep.helpers import serialize_object

ENVELOPE = ('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:u="urn:example:usermgmt"><soapenv:Body>{}</soapenv:Body></soapenv:Envelope>')


def fault_of(call: Any, *args: Any, **kwargs: Any) -> Fault:
    with pytest.raises(Fault) as caught:
        call(*args, **kwargs)
    return caught.value


def names(users: list[Any] | None) -> list[str]:
    return [u.userName for u in users or []]


# ---- the WSDL and the shapes zeep gives ----------------------------------------------------------------


def test_wsdl_needs_no_auth_and_points_at_the_service(soap_service: SoapService) -> None:
    answer = requests.get(soap_service.wsdl, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/xml")
    assert f'targetNamespace="{NAMESPACE}"' in answer.text
    assert f'location="{soap_service.url}/"' in answer.text
    # a zeep client without credentials reads it (its calls are refused: see test_calls_need_basic_auth)
    client = soap_service.client(auth=False)
    assert client.service._binding_options["address"] == f"{soap_service.url}/"
    operations = client.service._binding._operations
    assert {"createUser", "getUser", "updateUser", "setUserActive", "deleteUser", "listUsers", "createGroup",
            "getGroup", "updateGroup", "deleteGroup", "addGroupMember", "removeGroupMember",
            "listGroups"} == set(operations)
    assert operations["listUsers"].input.signature(as_output=False) == \
        "modifiedSince: xsd:dateTime, offset: xsd:integer, limit: xsd:integer"
    assert operations["createUser"].input.signature(as_output=False) == "user: ns0:User"


def test_create_and_get_user(soapservice: SoapService, soap_client: Any) -> None:
    before = datetime.now(UTC)
    created = soap_client.service.createUser(user={"userName": "ana", "givenName": "Ana", "email": "ana@x"})
    shape = serialize_object(created)
    assert list(shape) == ["id", "userName", "givenName", "familyName", "email", "active", "groups",
                           "lastModified"]
    assert re.fullmatch(r"u-[0-9a-f]{8}", shape["id"])
    assert shape | {"id": None, "lastModified": None} == {
        "id": None, "userName": "ana", "givenName": "Ana", "familyName": None, "email": "ana@x",
        "active": True, "groups": None, "lastModified": None}
    assert before - timedelta(seconds=1) <= shape["lastModified"] <= datetime.now(UTC) + timedelta(seconds=1)
    assert shape["lastModified"].utcoffset() == timedelta(0)
    # lookups are case-insensitive; the spelling of the creation is kept
    got = soap_client.service.getUser(userName="ANA")
    assert serialize_object(got) == shape
    assert got.userName == got["userName"] == "ana"
    # a typed value works as well as a dict
    user_type = soap_client.get_type(f"{{{NAMESPACE}}}User")
    bob = soap_client.service.createUser(user=user_type(userName="Bob", active=False))
    assert (bob.userName, bob.active) == ("Bob", False)


def test_create_user_faults(soapservice: SoapService, soap_client: Any) -> None:
    soap_client.service.createUser(user={"userName": "ana"})
    fault = fault_of(soap_client.service.createUser, user={"userName": "ANA"})
    assert (fault.code, fault.message) == ("soap11env:Client.AlreadyExists", "user 'ANA' already exists")
    assert (fault.actor, fault.detail) == (None, None)
    for user in ({"givenName": "No Name"}, {"userName": "  "}, None):
        fault = fault_of(soap_client.service.createUser, user=user)
        assert (fault.code, fault.message) == ("soap11env:Client.Invalid", "userName is required")
    assert names(soap_client.service.listUsers()) == ["ana"]


def test_update_user_is_partial(soapservice: SoapService, soap_client: Any) -> None:
    created = soap_client.service.createUser(
        user={"userName": "ana", "givenName": "Ana", "familyName": "Lima", "email": "ana@x"})
    updated = soap_client.service.updateUser(user={"userName": "Ana", "email": "ana@y", "givenName": None,
                                                   "id": "u-ignored", "groups": {"string": ["ignored"]}})
    assert serialize_object(updated) | {"lastModified": None} == {
        "id": created.id, "userName": "ana", "givenName": "Ana", "familyName": "Lima", "email": "ana@y",
        "active": True, "groups": None, "lastModified": None}
    assert updated.lastModified > created.lastModified
    # an empty string clears a field
    cleared = soap_client.service.updateUser(user={"userName": "ana", "familyName": ""})
    assert (cleared.givenName, cleared.familyName) == ("Ana", None)
    assert soapservice.dump()["users"][0]["familyName"] is None
    # nothing sent but the name: nothing changes but lastModified
    again = soap_client.service.updateUser(user={"userName": "ana"})
    assert serialize_object(again) | {"lastModified": None} == serialize_object(cleared) | {"lastModified": None}
    assert again.lastModified > cleared.lastModified
    fault = fault_of(soap_client.service.updateUser, user={"userName": "nobody", "email": "x"})
    assert (fault.code, fault.message) == ("soap11env:Client.NotFound", "user 'nobody' not found")
    fault = fault_of(soap_client.service.updateUser, user={"email": "x"})
    assert fault.code == "soap11env:Client.Invalid"


def test_set_user_active(soapservice: SoapService, soap_client: Any) -> None:
    created = soap_client.service.createUser(user={"userName": "ana", "givenName": "Ana"})
    off = soap_client.service.setUserActive(userName="ana", active=False)
    assert (off.active, off.givenName) == (False, "Ana")
    assert off.lastModified > created.lastModified
    assert soap_client.service.setUserActive("ana", True).active is True  # positional works too
    assert soap_client.service.updateUser(user={"userName": "ana", "active": False}).active is False
    assert fault_of(soap_client.service.setUserActive, userName="nobody", active=True).code == \
        "soap11env:Client.NotFound"
    fault = fault_of(soap_client.service.setUserActive, userName="ana")
    assert (fault.code, fault.message) == ("soap11env:Client.Invalid", "active is required")


def test_delete_user_leaves_every_group(soapservice: SoapService, soap_client: Any) -> None:
    s = soap_client.service
    for name in ("ana", "bob"):
        s.createUser(user={"userName": name})
    for group in ("admins", "staff"):
        s.createGroup(name=group)
        s.addGroupMember(groupName=group, userName="ana")
        s.addGroupMember(groupName=group, userName="bob")
    assert s.deleteUser(userName="ANA") is True
    assert [serialize_object(g) for g in s.listGroups()] == [
        {"name": "admins", "description": None, "members": {"string": ["bob"]}},
        {"name": "staff", "description": None, "members": {"string": ["bob"]}}]
    fault = fault_of(s.deleteUser, userName="ana")
    assert (fault.code, fault.message) == ("soap11env:Client.NotFound", "user 'ana' not found")
    assert fault_of(s.getUser, userName="ana").code == "soap11env:Client.NotFound"


# ---- listing ---------------------------------------------------------------------------------------------


def test_list_users_pages_in_creation_order(soapservice: SoapService, soap_client: Any) -> None:
    s = soap_client.service
    assert s.listUsers() is None  # an empty answer is None, not []
    for name in ("dan", "ana", "cid", "bea", "eve"):
        s.createUser(user={"userName": name})
    s.updateUser(user={"userName": "dan", "email": "dan@x"})  # a change does not move it
    everyone = s.listUsers()
    assert isinstance(everyone, list)
    assert names(everyone) == ["dan", "ana", "cid", "bea", "eve"]
    assert isinstance(serialize_object(everyone), list)
    assert serialize_object(everyone)[0]["email"] == "dan@x"
    assert names(s.listUsers(offset=1, limit=2)) == ["ana", "cid"]
    assert names(s.listUsers(offset=4)) == ["eve"]
    assert names(s.listUsers(limit=3)) == ["dan", "ana", "cid"]
    assert s.listUsers(offset=5, limit=2) is None
    fault = fault_of(s.listUsers, limit=0)
    assert (fault.code, fault.message) == ("soap11env:Client.Invalid", "limit must be at least 1")
    assert fault_of(s.listUsers, offset=-1).code == "soap11env:Client.Invalid"
    # a value the schema refuses is spyne's own fault (zeep sends it as given)
    assert fault_of(s.listUsers, limit="many").code == "soap11env:Client.SchemaValidationError"


def test_list_users_default_limit_is_100(soapservice: SoapService, soap_client: Any) -> None:
    for i in range(101):
        soap_client.service.createUser(user={"userName": f"user{i:03}"})
    first = soap_client.service.listUsers()
    assert len(first) == 100
    assert names(soap_client.service.listUsers(offset=100)) == ["user100"]


def test_list_users_modified_since(soapservice: SoapService, soap_client: Any) -> None:
    s = soap_client.service
    for name in ("ana", "bob", "cid"):
        s.createUser(user={"userName": name})
    since = s.getUser(userName="bob").lastModified
    s.updateUser(user={"userName": "ana", "givenName": "Ana"})
    assert names(s.listUsers(modifiedSince=since)) == ["ana", "bob", "cid"]  # >=, in creation order
    later = s.getUser(userName="cid").lastModified
    assert names(s.listUsers(modifiedSince=later)) == ["ana", "cid"]
    assert names(s.listUsers(modifiedSince=later.astimezone(UTC).replace(tzinfo=None))) == ["ana", "cid"]
    assert names(s.listUsers(modifiedSince=later, offset=1, limit=1)) == ["cid"]
    assert s.listUsers(modifiedSince=datetime.now(UTC) + timedelta(hours=1)) is None


# ---- groups ------------------------------------------------------------------------------------------------


def test_groups_and_members(soapservice: SoapService, soap_client: Any) -> None:
    s = soap_client.service
    ana = s.createUser(user={"userName": "ana"})
    s.createUser(user={"userName": "bob"})
    assert s.listGroups() is None
    created = s.createGroup(name="admins", description="the admins")
    assert serialize_object(created) == {"name": "admins", "description": "the admins", "members": None}
    assert serialize_object(s.createGroup(name="staff")) == {"name": "staff", "description": None,
                                                              "members": None}
    fault = fault_of(s.createGroup, name="ADMINS", description="again")
    assert (fault.code, fault.message) == ("soap11env:Client.AlreadyExists", "group 'ADMINS' already exists")
    assert fault_of(s.createGroup, name="").code == "soap11env:Client.Invalid"

    group = s.addGroupMember(groupName="admins", userName="ANA")
    assert serialize_object(group)["members"] == {"string": ["ana"]}
    assert s.addGroupMember(groupName="admins", userName="ana").members.string == ["ana"]  # idempotent
    s.addGroupMember(groupName="Admins", userName="bob")
    s.addGroupMember(groupName="staff", userName="ana")
    assert s.getGroup(name="admins").members.string == ["ana", "bob"]
    ana_now = s.getUser(userName="ana")
    assert serialize_object(ana_now)["groups"] == {"string": ["admins", "staff"]}
    assert ana_now.lastModified > ana.lastModified  # its groups changed

    assert fault_of(s.addGroupMember, groupName="nobody", userName="ana").message == "group 'nobody' not found"
    assert fault_of(s.addGroupMember, groupName="admins", userName="zed").message == "user 'zed' not found"

    assert s.removeGroupMember(groupName="admins", userName="bob").members.string == ["ana"]
    assert s.removeGroupMember(groupName="admins", userName="bob").members.string == ["ana"]  # idempotent
    assert s.removeGroupMember(groupName="admins", userName="zed").members.string == ["ana"]
    fault = fault_of(s.removeGroupMember, groupName="nobody", userName="ana")
    assert (fault.code, fault.message) == ("soap11env:Client.NotFound", "group 'nobody' not found")
    assert s.getUser(userName="bob").groups is None

    assert serialize_object(s.updateGroup(name="admins", description="new")) == {
        "name": "admins", "description": "new", "members": {"string": ["ana"]}}
    assert s.updateGroup(name="admins").description == "new"  # not sent: unchanged
    assert fault_of(s.updateGroup, name="nobody", description="x").code == "soap11env:Client.NotFound"
    assert [g.name for g in s.listGroups()] == ["admins", "staff"]

    before = s.getUser(userName="ana").lastModified
    assert s.deleteGroup(name="admins") is True
    after = s.getUser(userName="ana")
    assert (after.groups.string, after.lastModified > before) == (["staff"], True)
    assert fault_of(s.deleteGroup, name="admins").code == "soap11env:Client.NotFound"
    assert fault_of(s.getGroup, name="admins").message == "group 'admins' not found"
    assert [g.name for g in s.listGroups()] == ["staff"]


# ---- auth, the raw wire, concurrency ------------------------------------------------------------------------


def test_calls_need_basic_auth(soapservice: SoapService) -> None:
    body = ENVELOPE.format("<u:listGroups/>")
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"listGroups"'}
    for auth in (None, (USER, "wrong"), ("someone", PASSWORD)):
        answer = requests.post(soapservice.url + "/", data=body, headers=headers, auth=auth, timeout=10)
        assert answer.status_code == 401
        assert answer.headers["Content-Type"].startswith("text/plain")
        assert answer.headers["WWW-Authenticate"] == 'Basic realm="usermgmt"'
    answer = requests.post(soapservice.url + "/", data=body, headers=headers, auth=(USER, PASSWORD), timeout=10)
    assert answer.status_code == 200
    with pytest.raises(TransportError) as caught:
        soapservice.client(auth=False).service.getUser(userName="ana")
    assert caught.value.status_code == 401
    assert soapservice.calls()[-1] == {"operation": "getUser", "status": 401}


def test_schema_validation_and_garbage(soapservice: SoapService) -> None:
    auth, headers = (USER, PASSWORD), {"Content-Type": "text/xml; charset=utf-8"}
    body = ENVELOPE.format("<u:setUserActive><u:userName>ana</u:userName><u:active>yes</u:active>"
                           "</u:setUserActive>")
    answer = requests.post(soapservice.url + "/", data=body, headers=headers, auth=auth, timeout=10)
    assert answer.status_code == 500
    assert "<faultcode>soap11env:Client.SchemaValidationError</faultcode>" in answer.text
    answer = requests.post(soapservice.url + "/", data="not xml", headers=headers, auth=auth, timeout=10)
    assert answer.status_code == 500
    assert soapservice.calls() == [{"operation": "setUserActive", "status": 500},
                                   {"operation": None, "status": 500}]


def test_concurrent_creates(soapservice: SoapService, soap_client: Any) -> None:
    outcomes: list[str] = []

    def create(name: str) -> None:
        try:
            soap_client.service.createUser(user={"userName": name})
            outcomes.append("ok")
        except Fault as e:
            outcomes.append(e.code)
        except Exception as e:  # reported by the assertion below, not lost in the thread
            outcomes.append(repr(e))

    threads = [threading.Thread(target=create, args=(f"user{i}",)) for i in range(12)]
    threads += [threading.Thread(target=create, args=("same" if i % 2 else "SAME",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] * 13 + ["soap11env:Client.AlreadyExists"] * 7
    users = soapservice.dump()["users"]
    assert len(users) == 13 and len({u["id"] for u in users}) == 13


# ---- test routes ----------------------------------------------------------------------------------------------


def test_dump_calls_and_reset(soapservice: SoapService, soap_client: Any) -> None:
    s = soap_client.service
    s.createUser(user={"userName": "ana", "givenName": "Ana"})
    s.createGroup(name="admins")
    s.addGroupMember(groupName="admins", userName="ana")
    with pytest.raises(Fault):
        s.getUser(userName="bob")
    dump = soapservice.dump()
    [ana] = dump["users"]
    assert ana | {"id": None, "lastModified": None} == {
        "id": None, "userName": "ana", "givenName": "Ana", "familyName": None, "email": None, "active": True,
        "groups": ["admins"], "lastModified": None}
    assert datetime.fromisoformat(ana["lastModified"]) == s.getUser(userName="ana").lastModified
    assert dump["groups"] == [{"name": "admins", "description": None, "members": ["ana"]}]
    assert soapservice.calls() == [
        {"operation": "createUser", "status": 200}, {"operation": "createGroup", "status": 200},
        {"operation": "addGroupMember", "status": 200}, {"operation": "getUser", "status": 500},
        {"operation": "getUser", "status": 200}]
    soapservice.reset()
    assert soapservice.dump() == {"users": [], "groups": []}
    assert soapservice.calls() == []
    assert s.listUsers() is None


def test_running_with_other_credentials(tmp_path: Path) -> None:
    with running(tmp_path, user="other", password="other-pass") as service:
        assert service.client().service.createUser(user={"userName": "ana"}).userName == "ana"
        with pytest.raises(TransportError):
            SoapService(service.port, service.process).client().service.listUsers()  # the default credentials
        process = service.process
    assert process.poll() is not None


# ---- the fault proxy in front ----------------------------------------------------------------------------------


def test_proxy_forwards_soap(soap_proxy: FaultProxy, soapservice: SoapService) -> None:
    client = soapservice.client(soap_proxy.url + "/?wsdl")
    assert client.service._binding_options["address"] == f"{soap_proxy.url}/"
    assert client.service.createUser(user={"userName": "ana"}).userName == "ana"
    assert client.service.listUsers()[0].userName == "ana"
    fault = fault_of(client.service.getUser, userName="bob")
    assert (fault.code, fault.message) == ("soap11env:Client.NotFound", "user 'bob' not found")
    seen = [(m, p, s, h.get("SOAPAction")) for m, p, h, s in soap_proxy.faults.requests()]
    assert seen == [("GET", "/?wsdl", 200, None), ("POST", "/", 200, '"createUser"'),
                    ("POST", "/", 200, '"listUsers"'), ("POST", "/", 500, '"getUser"')]
    assert [c["operation"] for c in soapservice.calls()] == ["createUser", "listUsers", "getUser"]
    # the client's own Basic auth goes through; without it the service says 401
    with pytest.raises(TransportError) as caught:
        soapservice.client(soap_proxy.url + "/?wsdl", auth=False).service.listUsers()
    assert caught.value.status_code == 401


def test_proxy_sends_soap_action_and_content_type_upstream(soap_proxy: FaultProxy,
                                                           soapservice: SoapService) -> None:
    inner = FaultProxy(soapservice.url, rewrite_body_urls=True)  # records what the outer one sends it
    inner.faults.passthrough_auth = True
    outer = FaultProxy(inner.url, rewrite_body_urls=True)
    outer.faults.passthrough_auth = True
    try:
        client = soapservice.client(outer.url + "/?wsdl")
        assert client.service._binding_options["address"] == f"{outer.url}/"
        client.service.createGroup(name="admins")
        [(method, _, headers, status)] = inner.faults.requests("POST")
        assert (method, status, headers["SOAPAction"]) == ("POST", 200, '"createGroup"')
        assert headers["Content-Type"] == "text/xml; charset=utf-8"
        assert headers["Authorization"].startswith("Basic ")
    finally:
        outer.stop()
        inner.stop()


def test_proxy_soap_faults(soap_proxy: FaultProxy, soapservice: SoapService) -> None:
    client = soapservice.client(soap_proxy.url + "/?wsdl")
    soap_proxy.faults.soap_fault_500 = 1
    fault = fault_of(client.service.createUser, user={"userName": "ana"})
    assert (fault.code, fault.message) == ("soap:Server", "internal error")
    assert soapservice.dump()["users"] == []  # not forwarded
    soap_proxy.faults.html_errors = 1
    fault = fault_of(client.service.createUser, user={"userName": "ana"})
    assert (fault.code, fault.message) == (None, "Unknown fault occured")  # zeep's words for a 502 page
    assert b"Bad Gateway" in fault.detail
    soap_proxy.faults.errors_5xx = 1
    with pytest.raises(TransportError) as caught:
        client.service.createUser(user={"userName": "ana"})
    assert caught.value.status_code == 500
    assert soapservice.dump()["users"] == []
    assert client.service.createUser(user={"userName": "ana"}).userName == "ana"
    assert [s for _, _, _, s in soap_proxy.faults.requests("POST")] == [500, 502, 500, 200]
    assert soapservice.calls() == [{"operation": "createUser", "status": 200}]
