"""A real SOAP 1.1 user-management service (spyne), for ``provision demo soap`` (the hr-to-soap example)
and the soap connector's tests (``tests/servers/soapservice.py``: the test side, a zeep client).

:func:`start` runs this module (``python -m runner.demo.soapservice --port N --user U --password P``)
on 127.0.0.1, in its own process group, under a threaded wsgiref server (``ThreadingMixIn`` +
``WSGIServer``, HTTP/1.0: one connection a request), so the connector talks to it over real HTTP
like to any service; it is stopped by its PID (:func:`runner.demo.process.stop`). State is in memory (one lock around
every change and read) and ``POST /_test/reset`` empties it between tests. spyne runs on Python 3.11
(not 3.13: it imports ``cgi``); it is imported by the server process only, the test side needs zeep.

The contract, exactly. Target namespace ``urn:example:usermgmt`` (``NAMESPACE``), SOAP 1.1,
document/literal wrapped (spyne's default; ``Soap11(validator='lxml')`` in, ``Soap11()`` out). WSDL at
``http://127.0.0.1:N/?wsdl`` (``service.wsdl``): service and port ``UserManagement``, soapAction = the
operation name, ``soap:address`` always ``http://127.0.0.1:N/`` (built for that address whatever the
request's Host says, so a proxy must rewrite it: ``FaultProxy(..., rewrite_body_urls=True)``). Every
element in the WSDL is ``minOccurs="0" nillable="true"`` (spyne's default): "required" below is checked
by the service (``Client.Invalid``), not by the schema, so zeep sends what it is given.

Types (zeep: ``ns0:User``, ``ns0:Group``; ``client.get_type("{urn:example:usermgmt}User")``):

- ``User {id, userName, givenName, familyName, email, active: boolean, groups: stringArray,
  lastModified: dateTime}``. ``id`` is server-assigned (``u-<8 hex>``; ignored in requests);
  ``userName`` is required, unique case-insensitively, and every lookup by it is case-insensitive
  (the spelling of the creation is kept); ``active`` defaults to true; ``groups`` (read-only, ignored
  in requests) are the names of the groups the user is in, in group creation order; ``lastModified``
  (UTC, microseconds, strictly increasing from one change to the next) is refreshed by every
  createUser/updateUser/setUserActive (even one that changes no value) and by every membership change
  of the user (addGroupMember that adds, removeGroupMember that removes, deleteGroup of a group it was
  in): it moves whenever anything getUser shows changes. An empty string for givenName, familyName or
  email is stored as null (zeep cannot tell them apart anyway: it reads an empty element as None).
- ``Group {name, description, members: stringArray}``: ``name`` required, unique case-insensitively
  (lookups too); ``members`` are userNames (as created) in the order they were added. Groups have no
  id and no timestamp.

Operations (argument names are zeep's keyword arguments; positional works too, in this order):

=====================================================  ==================================================
``createUser(user: User) -> User``                      AlreadyExists (userName taken), Invalid (none)
``getUser(userName) -> User``                           NotFound
``updateUser(user: User) -> User``                      partial: found by ``user.userName``; the fields
                                                        sent non-null change (givenName, familyName,
                                                        email, active), the others stay; NotFound
``setUserActive(userName, active: boolean) -> User``    NotFound; Invalid without ``active``
``deleteUser(userName) -> boolean`` (true)              NotFound; the user leaves every group
``listUsers(modifiedSince: dateTime, offset: integer,   all three optional; creation order;
limit: integer) -> User[]``                             ``lastModified >= modifiedSince`` (a naive
                                                        datetime counts as UTC); offset 0, limit 100 by
                                                        default; offset < 0 or limit < 1: Invalid
``createGroup(name, description) -> Group``             AlreadyExists, Invalid without name
``getGroup(name) -> Group``                             NotFound
``updateGroup(name, description) -> Group``             description None: unchanged; NotFound
``deleteGroup(name) -> boolean`` (true)                 NotFound
``addGroupMember(groupName, userName) -> Group``        already a member: fine; NotFound (group or user)
``removeGroupMember(groupName, userName) -> Group``     not a member (or no such user): fine; NotFound
                                                        when the group is missing
``listGroups() -> Group[]``                             creation order
=====================================================  ==================================================

How zeep sees it (zeep 4.3; ``client = zeep.Client(service.wsdl, transport=Transport(session=s))``
where ``s = requests.Session(); s.auth = (USER, PASSWORD)``, or ``service.client()``):

- Calls: ``client.service.createUser(user={"userName": "ana", "givenName": "Ana"})`` (a dict, or
  ``client.get_type("{urn:example:usermgmt}User")(userName="ana")``; a key the type lacks is a
  ``TypeError`` raised by zeep before sending; None values are left out of the request, which is
  what makes updateUser partial); ``client.service.getUser(userName="ana")``;
  ``client.service.updateUser(user={"userName": "ana", "email": "a@x"})``;
  ``client.service.setUserActive(userName="ana", active=False)``;
  ``client.service.deleteUser(userName="ana")`` -> ``True``;
  ``client.service.listUsers(modifiedSince=datetime, offset=0, limit=10)``;
  ``client.service.createGroup(name="admins", description="...")``;
  ``client.service.addGroupMember(groupName="admins", userName="ana")``; ``listGroups()``.
- A User comes back as a ``zeep.objects.User`` (attribute or item access: ``u.userName``,
  ``u["userName"]``); ``zeep.helpers.serialize_object(u)`` is an ``OrderedDict``::

      {'id': 'u-1076a122', 'userName': 'ana', 'givenName': 'Ana', 'familyName': None, 'email': None,
       'active': True, 'groups': {'string': ['admins']},   # None when in no group
       'lastModified': datetime.datetime(2026, 5, 1, 8, 52, 23, 161518, tzinfo=<FixedOffset '+00:00'>)}

  A Group: ``{'name': 'admins', 'description': None, 'members': {'string': ['ana']}}`` (``members``
  None when empty). Null fields are left out of the answer; zeep gives them as None.
- ``listUsers``/``listGroups`` come back unwrapped, as a plain ``list`` of ``zeep.objects.User`` /
  ``Group`` (serialize_object: a list of OrderedDicts as above); an empty answer is ``None``, not
  ``[]``. Only the arrays inside a User or Group stay wrapped (``{'string': [...]}`` or None).
- booleans arrive as ``bool``; ``lastModified`` as an aware datetime (isodate's ``FixedOffset``, UTC).

Faults: a spyne ``Fault(faultcode="Client.NotFound", faultstring="user 'ana' not found")`` goes out as
HTTP 500 with ``<faultcode>soap11env:Client.NotFound</faultcode>`` and arrives in zeep as
``zeep.exceptions.Fault`` with ``.code == 'soap11env:Client.NotFound'`` (zeep keeps the QName's prefix
as written; compare the part after ``:``), ``.message == "user 'ana' not found"``, ``.actor`` and
``.detail`` None. Codes: ``Client.NotFound`` ("user 'x' not found", "group 'x' not found"),
``Client.AlreadyExists`` ("user 'x' already exists", "group 'x' already exists"), ``Client.Invalid``
("userName is required", "the group name is required", "active is required", "limit must be at least
1", "offset must not be negative"). spyne's own: ``Client.SchemaValidationError`` (a value the schema
refuses, e.g. ``limit="abc"`` which zeep sends as given), ``Client.SoapError`` (no envelope),
``Server`` (a bug of this service). Through ``FaultProxy``: ``soap_fault_500`` gives ``.code ==
'soap:Server'``, ``.message == 'internal error'``; ``html_errors`` (502 HTML, well-formed XML) gives a
zeep ``Fault`` with ``.code`` None and ``.message == 'Unknown fault occured'`` (sic), ``.detail`` the
page; a non-XML error body (``errors_5xx``, ``throttle_writes``) a ``zeep.exceptions.TransportError``
with ``.status_code`` (500, 429) and ``.content``.

Auth: started with ``wsse=True`` (``--wsse``), every POST needs a WS-Security UsernameToken in the
envelope's header instead (OASIS Username Token Profile 1.0: PasswordText, or PasswordDigest =
Base64(SHA-1(nonce + created + password))), and a missing or wrong one is the same 401. Otherwise
every POST (the SOAP calls) needs ``Authorization: Basic`` with the service's user and password,
otherwise 401 with ``WWW-Authenticate: Basic realm="usermgmt"`` and a plain-text body (not a SOAP
fault): zeep raises ``zeep.exceptions.TransportError`` with ``.status_code == 401`` ("Server returned
response (401) with invalid XML"). GETs (the WSDL) need none.

Test routes, no auth: ``POST /_test/reset`` (users, groups and the call log; 204), ``GET /_test/dump``
(``{"users": [{id, userName, givenName, familyName, email, active, groups: [names], lastModified:
"2026-05-01T08:52:23.161518+00:00"}], "groups": [{name, description, members: [userNames]}]}``),
``GET /_test/calls`` (every POST but the test routes, in the order answered: ``{"operation":
"createUser", "status": 200}``; the operation is the local name of the first element in soap:Body,
None when the body is not a SOAP envelope; status 200, 500 for a fault, 401 refused).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import importlib.util
import io
import json
import logging
import os
import secrets
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests

from runner.demo.process import NotInstalled, launch

USER = "svc-provision"  # throwaway test credentials, never real secrets
PASSWORD = "soap-pass-6c1f9e"
NAMESPACE = "urn:example:usermgmt"
DEFAULT_LIMIT = 100
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"

Record = dict[str, Any]


# ---- the store ----------------------------------------------------------------------------------------


class ServiceError(Exception):
    """A SOAP fault to answer: ``code`` is ``NotFound``, ``AlreadyExists`` or ``Invalid`` (``Client.`` is
    prefixed when it becomes a spyne Fault)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def not_found(message: str) -> ServiceError:
    return ServiceError("NotFound", message)


def invalid(message: str) -> ServiceError:
    return ServiceError("Invalid", message)


def already_exists(message: str) -> ServiceError:
    return ServiceError("AlreadyExists", message)


USER_FIELDS = ("givenName", "familyName", "email")


class Store:
    """Users and groups, changed and read only under ``lock``. Both are keyed by their lower-cased name
    (userName and group name are unique case-insensitively) and kept in creation order (dicts)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clear()

    def clear(self) -> None:
        with self.lock:
            self.users: dict[str, Record] = {}
            self.groups: dict[str, Record] = {}  # members: list of user keys (lower-cased userNames)
            self.calls: list[Record] = []
            self.last_stamp = datetime.fromtimestamp(0, UTC)

    def stamp(self) -> datetime:
        """Now (UTC, microseconds), strictly later than any stamp given before."""
        now = datetime.now(UTC)
        if now <= self.last_stamp:
            now = self.last_stamp + timedelta(microseconds=1)
        self.last_stamp = now
        return now

    # ---- users ----

    def user(self, user_name: str | None) -> Record:
        if not user_name:
            raise invalid("userName is required")
        found = self.users.get(user_name.lower())
        if found is None:
            raise not_found(f"user {user_name!r} not found")
        return found

    def groups_of(self, key: str) -> list[str]:
        return [g["name"] for g in self.groups.values() if key in g["members"]]

    def user_view(self, record: Record) -> Record:
        """The user as the service answers it: with its groups computed."""
        view = {k: v for k, v in record.items() if k != "lastModified"}
        return {**view, "groups": self.groups_of(record["userName"].lower()),
                "lastModified": record["lastModified"]}

    def create_user(self, given: Record) -> Record:
        user_name = given.get("userName")
        if not isinstance(user_name, str) or not user_name.strip():
            raise invalid("userName is required")
        with self.lock:
            if user_name.lower() in self.users:
                raise already_exists(f"user {user_name!r} already exists")
            record = {"id": "u-" + secrets.token_hex(4), "userName": user_name,
                      **{f: given.get(f) or None for f in USER_FIELDS},
                      "active": True if given.get("active") is None else bool(given["active"]),
                      "lastModified": self.stamp()}
            self.users[user_name.lower()] = record
            return self.user_view(record)

    def get_user(self, user_name: str | None) -> Record:
        with self.lock:
            return self.user_view(self.user(user_name))

    def update_user(self, given: Record) -> Record:
        with self.lock:
            record = self.user(given.get("userName"))
            changes = {f: given[f] or None for f in USER_FIELDS if given.get(f) is not None}
            if given.get("active") is not None:
                changes["active"] = bool(given["active"])
            record.update(changes)
            record["lastModified"] = self.stamp()
            return self.user_view(record)

    def set_user_active(self, user_name: str | None, active: bool | None) -> Record:
        if active is None:
            raise invalid("active is required")
        return self.update_user({"userName": user_name, "active": active})

    def delete_user(self, user_name: str | None) -> bool:
        with self.lock:
            key = self.user(user_name)["userName"].lower()
            del self.users[key]
            for group in self.groups.values():
                if key in group["members"]:
                    group["members"].remove(key)
            return True

    def list_users(self, modified_since: datetime | None, offset: int | None, limit: int | None) -> list[Record]:
        offset = 0 if offset is None else offset
        limit = DEFAULT_LIMIT if limit is None else limit
        if offset < 0:
            raise invalid("offset must not be negative")
        if limit < 1:
            raise invalid("limit must be at least 1")
        if modified_since is not None and modified_since.tzinfo is None:
            modified_since = modified_since.replace(tzinfo=UTC)
        with self.lock:
            keep = [u for u in self.users.values() if modified_since is None or u["lastModified"] >= modified_since]
            return [self.user_view(u) for u in keep[offset:offset + limit]]

    # ---- groups ----

    def group(self, name: str | None) -> Record:
        if not name:
            raise invalid("the group name is required")
        found = self.groups.get(name.lower())
        if found is None:
            raise not_found(f"group {name!r} not found")
        return found

    def group_view(self, record: Record) -> Record:
        return {**record, "members": [self.users[k]["userName"] for k in record["members"]]}

    def touch(self, keys: Iterable[str]) -> None:
        """A membership change changes the users' ``groups``: refresh their lastModified."""
        for key in keys:
            self.users[key]["lastModified"] = self.stamp()

    def create_group(self, name: str | None, description: str | None) -> Record:
        if not isinstance(name, str) or not name.strip():
            raise invalid("the group name is required")
        with self.lock:
            if name.lower() in self.groups:
                raise already_exists(f"group {name!r} already exists")
            record = {"name": name, "description": description or None, "members": []}
            self.groups[name.lower()] = record
            return self.group_view(record)

    def get_group(self, name: str | None) -> Record:
        with self.lock:
            return self.group_view(self.group(name))

    def update_group(self, name: str | None, description: str | None) -> Record:
        with self.lock:
            record = self.group(name)
            if description is not None:
                record["description"] = description or None
            return self.group_view(record)

    def delete_group(self, name: str | None) -> bool:
        with self.lock:
            record = self.group(name)
            del self.groups[record["name"].lower()]
            self.touch(record["members"])
            return True

    def add_member(self, group_name: str | None, user_name: str | None) -> Record:
        with self.lock:
            group = self.group(group_name)
            key = self.user(user_name)["userName"].lower()
            if key not in group["members"]:
                group["members"].append(key)
                self.touch([key])
            return self.group_view(group)

    def remove_member(self, group_name: str | None, user_name: str | None) -> Record:
        with self.lock:
            group = self.group(group_name)
            key = (user_name or "").lower()
            if key in group["members"]:
                group["members"].remove(key)
                self.touch([key])
            return self.group_view(group)

    def list_groups(self) -> list[Record]:
        with self.lock:
            return [self.group_view(g) for g in self.groups.values()]

    # ---- the test side ----

    def dump(self) -> Record:
        def plain(user: Record) -> Record:
            return {**user, "lastModified": iso(user["lastModified"])}

        with self.lock:
            return {"users": [plain(self.user_view(u)) for u in self.users.values()], "groups": self.list_groups()}

    def log_call(self, operation: str | None, status: int) -> None:
        with self.lock:
            self.calls.append({"operation": operation, "status": status})


def iso(when: datetime) -> str:
    return when.isoformat(timespec="microseconds")


# ---- SOAP (spyne) -------------------------------------------------------------------------------------


def make_soap_app(store: Store) -> Callable[..., Iterable[bytes]]:
    """The spyne WSGI application over ``store``. spyne is imported here: only the server process needs it."""
    from spyne import (
        Application,
        Array,
        Boolean,
        ComplexModel,
        DateTime,
        Fault,
        Integer,
        ServiceBase,
        Unicode,
        rpc,
    )
    from spyne.protocol.soap import Soap11
    from spyne.server.wsgi import WsgiApplication

    class User(ComplexModel):
        __namespace__ = NAMESPACE
        _type_info = [
            ("id", Unicode),
            ("userName", Unicode),
            ("givenName", Unicode),
            ("familyName", Unicode),
            ("email", Unicode),
            ("active", Boolean),
            ("groups", Array(Unicode)),
            ("lastModified", DateTime),
        ]

    class Group(ComplexModel):
        __namespace__ = NAMESPACE
        _type_info = [
            ("name", Unicode),
            ("description", Unicode),
            ("members", Array(Unicode)),
        ]

    def fields(value: Any, names: Iterable[str]) -> Record:
        return {n: getattr(value, n, None) for n in names} if value is not None else {}

    def answer(make: Callable[[], Any]) -> Any:
        try:
            return make()
        except ServiceError as e:
            raise Fault(faultcode=f"Client.{e.code}", faultstring=e.message) from None

    def as_user(record: Record) -> User:
        return User(**record)

    def as_group(record: Record) -> Group:
        return Group(**record)

    user_input = ("userName", *USER_FIELDS, "active")

    class UserManagement(ServiceBase):
        @rpc(User, _returns=User)
        def createUser(ctx, user):
            return answer(lambda: as_user(store.create_user(fields(user, user_input))))

        @rpc(Unicode, _returns=User)
        def getUser(ctx, userName):
            return answer(lambda: as_user(store.get_user(userName)))

        @rpc(User, _returns=User)
        def updateUser(ctx, user):
            return answer(lambda: as_user(store.update_user(fields(user, user_input))))

        @rpc(Unicode, Boolean, _returns=User)
        def setUserActive(ctx, userName, active):
            return answer(lambda: as_user(store.set_user_active(userName, active)))

        @rpc(Unicode, _returns=Boolean)
        def deleteUser(ctx, userName):
            return answer(lambda: store.delete_user(userName))

        @rpc(DateTime, Integer, Integer, _returns=Array(User))
        def listUsers(ctx, modifiedSince, offset, limit):
            return answer(lambda: [as_user(u) for u in store.list_users(modifiedSince, offset, limit)])

        @rpc(Unicode, Unicode, _returns=Group)
        def createGroup(ctx, name, description):
            return answer(lambda: as_group(store.create_group(name, description)))

        @rpc(Unicode, _returns=Group)
        def getGroup(ctx, name):
            return answer(lambda: as_group(store.get_group(name)))

        @rpc(Unicode, Unicode, _returns=Group)
        def updateGroup(ctx, name, description):
            return answer(lambda: as_group(store.update_group(name, description)))

        @rpc(Unicode, _returns=Boolean)
        def deleteGroup(ctx, name):
            return answer(lambda: store.delete_group(name))

        @rpc(Unicode, Unicode, _returns=Group)
        def addGroupMember(ctx, groupName, userName):
            return answer(lambda: as_group(store.add_member(groupName, userName)))

        @rpc(Unicode, Unicode, _returns=Group)
        def removeGroupMember(ctx, groupName, userName):
            return answer(lambda: as_group(store.remove_member(groupName, userName)))

        @rpc(_returns=Array(Group))
        def listGroups(ctx):
            return [as_group(g) for g in store.list_groups()]

    app = Application([UserManagement], tns=NAMESPACE, name="UserManagement",
                      in_protocol=Soap11(validator="lxml"), out_protocol=Soap11())
    return WsgiApplication(app)


# ---- HTTP: test routes, auth and the call log in front of spyne -----------------------------------------


def operation_of(body: bytes) -> str | None:
    """The local name of the first element inside soap:Body, or None when the body is not a SOAP envelope."""
    from lxml import etree

    try:
        root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    except (etree.XMLSyntaxError, ValueError):
        return None
    soap_body = root.find(f"{{{SOAP_ENV}}}Body")
    if soap_body is None:
        return None
    for child in soap_body:
        if isinstance(child.tag, str):
            return etree.QName(child).localname
    return None


def basic_credentials(header: str) -> tuple[str, str] | None:
    kind, _, value = header.partition(" ")
    if kind.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"


def username_token(body: bytes) -> tuple[str, str, str | None, str | None, bool] | None:
    """(username, password or digest, nonce, created, is_digest) of the envelope's WS-Security
    UsernameToken (OASIS Username Token Profile 1.0), or None when there is none."""
    from lxml import etree

    try:
        root = etree.fromstring(body)
    except etree.XMLSyntaxError:
        return None
    token = root.find(f".//{{{WSSE}}}UsernameToken")
    if token is None:
        return None
    user, password = token.findtext(f"{{{WSSE}}}Username"), token.find(f"{{{WSSE}}}Password")
    if user is None or password is None:
        return None
    return (user, password.text or "", token.findtext(f"{{{WSSE}}}Nonce"), token.findtext(f"{{{WSU}}}Created"),
            password.get("Type") == DIGEST)


def wsse_valid(token: tuple[str, str, str | None, str | None, bool] | None, user: str, password: str) -> bool:
    """PasswordText equals the password; PasswordDigest is Base64(SHA-1(nonce + created + password))."""
    if token is None or token[0] != user:
        return False
    given, nonce, created, digest = token[1], token[2], token[3], token[4]
    if not digest:
        return secrets.compare_digest(given.encode(), password.encode())
    if nonce is None or created is None:
        return False
    expected = base64.b64encode(hashlib.sha1(base64.b64decode(nonce) + created.encode() + password.encode())
                                .digest()).decode()
    return secrets.compare_digest(given.encode(), expected.encode())


class Frontend:
    """The WSGI application the server runs: ``/_test/*`` (no auth), then Basic auth (or, started with
    ``--wsse``, a WS-Security UsernameToken in the envelope) on every POST, then spyne; every POST that
    is not a test route is logged with its operation and answer status."""

    def __init__(self, store: Store, soap: Callable[..., Iterable[bytes]], address: str, user: str,
                 password: str, wsse: bool = False):
        self.store, self.soap, self.address = store, soap, address
        self.credentials = (user, password)
        self.wsse = wsse

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"].upper(), environ.get("PATH_INFO", "")
        if path.startswith("/_test/"):
            return self.test_route(method, path, start_response)
        if method != "POST":
            # the WSDL (and spyne's answer to any other GET); built for this address whatever Host says
            return self.soap(environ, start_response, self.address)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        operation = operation_of(body)
        given = basic_credentials(environ.get("HTTP_AUTHORIZATION", ""))
        if self.wsse:
            refused = not wsse_valid(username_token(body), *self.credentials)
        else:
            refused = given is None or not all(secrets.compare_digest(a.encode(), b.encode())
                                               for a, b in zip(given, self.credentials, strict=True))
        if refused:
            self.store.log_call(operation, 401)
            text = b"401 Unauthorized: HTTP Basic credentials required\n"
            start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                                ("Content-Length", str(len(text))),
                                                ("WWW-Authenticate", 'Basic realm="usermgmt"')])
            return [text]
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        status: list[str] = []

        def starting(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info) if exc_info else start_response(code, headers)

        content = b"".join(self.soap(environ, starting))
        self.store.log_call(operation, int(status[0].split()[0]) if status else 0)
        return [content]

    def test_route(self, method: str, path: str, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if (method, path) == ("POST", "/_test/reset"):
            self.store.clear()
            start_response("204 No Content", [])
            return []
        if (method, path) == ("GET", "/_test/dump"):
            return self.json(self.store.dump(), start_response)
        if (method, path) == ("GET", "/_test/calls"):
            with self.store.lock:
                return self.json(list(self.store.calls), start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such test route\n"]

    @staticmethod
    def json(doc: Any, start_response: Callable[..., Any]) -> Iterable[bytes]:
        content = json.dumps(doc).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(content)))])
        return [content]


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's listen backlog of 5 resets connections of a burst of clients


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A SOAP 1.1 user-management service (provision demo soap, "
                                                 "the soap connector's tests)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", default=USER)
    parser.add_argument("--password", default=PASSWORD)
    parser.add_argument("--wsse", action="store_true", help="a WS-Security UsernameToken instead of Basic auth")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("spyne.application.client").setLevel(logging.CRITICAL + 1)  # faults are answers
    store = Store()
    frontend = Frontend(store, make_soap_app(store), f"http://{args.host}:{args.port}/", args.user, args.password,
                        wsse=args.wsse)
    with make_server(args.host, args.port, frontend, server_class=ThreadingWSGIServer,
                     handler_class=QuietHandler) as httpd:
        httpd.serve_forever()


# ---- starting it -------------------------------------------------------------------------------------


def start(folder: Path, port: int, user: str = USER, password: str = PASSWORD, *,
          wsse: bool = False) -> subprocess.Popen[bytes]:
    """Run the service on 127.0.0.1:``port`` (its log in ``folder``) and wait until it answers.
    ``wsse``: the calls need a WS-Security UsernameToken (text or digest) instead of Basic auth."""
    if importlib.util.find_spec("spyne") is None:
        raise NotInstalled("spyne is not installed: pip install 'provision[demo]' (or pip install spyne) in the "
                           "environment provision runs from")
    if sys.version_info >= (3, 13):
        raise NotInstalled("spyne, the SOAP service's server, does not run on Python 3.13 or later (it imports "
                           "cgi): run the demo with Python 3.11 or 3.12")
    package_root = str(Path(__file__).resolve().parents[2])  # so -m finds runner from any folder
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    command = [sys.executable, "-m", "runner.demo.soapservice", "--port", str(port), "--user", user,
               "--password", password, *(["--wsse"] if wsse else [])]

    def answers() -> bool:
        return requests.get(f"http://127.0.0.1:{port}/_test/dump", timeout=1).status_code == 200

    return launch(command, folder, folder / "soapservice.log", env, answers, "the SOAP service")


if __name__ == "__main__":
    main()
