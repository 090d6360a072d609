"""A small real SaaS-style REST API (starlette under uvicorn) for the rest connector's tests.

json-server (``jsonserver.py``) is one generic API shape; this is the other kind a connector meets: cursor
paging, PUT-only updates (PATCH is 405), memberships as sub-resources, idempotency keys, a duplicate
answered with 400 (not 409), and four ways to authenticate. ``RestApp.start(folder)`` runs this file as
a script (``python restapp.py --port N``) on 127.0.0.1 with a free port, in its own process group, so
the connector talks to it over real HTTP/1.1 like to any service; ``stop()`` ends it by its PID. State
is in memory (one lock around every change) and ``POST /_test/reset`` empties it between tests.

The API, exactly:

Auth, on every route but ``/_test/*`` and ``/oauth/token``; any one of these is enough:
``Authorization: Bearer RESTAPP_TOKEN`` (scheme ``bearer`` in the request log), a bearer token issued
by ``/oauth/token`` and neither expired nor revoked (``oauth``), ``X-API-Key: API_KEY``
(``api_key_header``) or ``?api_key=API_KEY`` (``api_key_query``), HTTP Basic ``svc:PASSWORD``
(``basic``). Otherwise 401 ``{"error": {"code": "unauthorized", "message": ...}}`` with
``WWW-Authenticate: Bearer realm="restapp"`` (``error="invalid_token"`` for a token it refused).

``POST /oauth/token``: client credentials (RFC 6749 §4.4), form ``grant_type=client_credentials``; the
client authenticates with HTTP Basic ``CLIENT_ID:CLIENT_SECRET`` (or, as §2.3.1 allows, form fields
``client_id``/``client_secret``); answers ``{"access_token", "token_type": "Bearer", "expires_in"}``.
A bad client is 401 ``{"error": "invalid_client"}``, another grant type 400
``{"error": "unsupported_grant_type"}``. ``POST /_test/revoke`` revokes every token issued so far.

Accounts, ``{"id": "acc_<12 hex>", "login", "profile": {"firstName", "lastName", "email"},
"status": "ACTIVE"|"SUSPENDED", "manager_id": str|null, <any other top-level field a client sent>,
"updated_at", "created_at"}`` (times ISO-8601 UTC with microseconds and ``Z``; ``updated_at`` strictly
increases from one write to the next; ``manager_id`` is not checked):

- ``GET /api/v2/accounts?limit=N&cursor=C&updated_since=ISO&login=x&email=x`` ->
  ``{"data": [...], "meta": {"next_cursor": "<opaque>"|null, "total": <all matching>}}`` in creation
  order; ``limit`` defaults to 50, above 200 counts as 200, below 1 is 400; the cursor is opaque (the
  position after which the next page starts, base64url), stays valid when records are deleted, and a
  cursor this server never gave answers 400 ``invalid_cursor``; ``updated_since`` keeps
  ``updated_at >= value`` (compared as datetimes; a value without offset is UTC; unparsable: 400);
  ``login`` and ``email`` (``profile.email``) are exact, case-insensitive.
- ``GET /api/v2/accounts/{id}`` -> the record, or 404 ``{"error": {"code": "not_found", "message":
  "no account acc_..."}}``.
- ``POST /api/v2/accounts`` -> 201, the record and ``Location``; a login taken (case-insensitive) is
  400 ``{"error": {"code": "duplicate", "message": "login already taken", "existing_id": "acc_..."}}``;
  no login is 400 ``{"error": {"code": "invalid", "message": "login is required"}}``.
- ``PUT /api/v2/accounts/{id}`` replaces the record (what is not sent is cleared: profile fields null,
  status ACTIVE, manager_id null, other fields gone; id and created_at kept, updated_at refreshed);
  404 if absent; duplicate login 400 as above.
- ``DELETE /api/v2/accounts/{id}`` -> 204 (the account leaves every team), 404 if absent.

Teams, ``{"id": "team_<12 hex>", "name", "description", <other fields>, "updated_at", "created_at"}``,
no members in them: ``GET /api/v2/teams`` (paging and ``updated_since`` as above, filter ``name``),
``GET|PUT|DELETE /api/v2/teams/{id}``, ``POST /api/v2/teams``; a name taken (case-insensitive) is 409
``{"error": {"code": "conflict", "message": "team name exists"}}``, no name 400 ``invalid``. A
membership change does not touch the team's ``updated_at`` unless started with ``members_touch_team``.

Members: ``GET /api/v2/teams/{id}/members?limit&cursor`` -> ``{"data": [{"account_id": ...}], "meta":
{"next_cursor": ...}}`` in the order they were added; ``PUT /api/v2/teams/{id}/members/{account_id}``
-> 204 (already a member: 204 too; team or account absent: 404); ``DELETE`` the same -> 204, 404 when
not a member.

Everywhere: ``Idempotency-Key`` on a POST under ``/api/v2``: the same key again with the same body
(compared as JSON) replays the first answer (status, body, ``Location``, plus
``Idempotent-Replayed: true``) and changes nothing; with another body, 422
``{"error": {"code": "idempotency_mismatch", ...}}``; 5xx answers are not kept. PATCH on any route is
405 ``{"error": {"code": "method_not_allowed", ...}}`` with ``Allow``; an unknown path 404
``not_found``; an unexpected error 500 ``{"error": {"code": "internal", ...}}``; a body that is not a
JSON object 400 ``invalid``.

Test routes, no auth: ``POST /_test/reset`` (everything: records, tokens, keys, request log; 204),
``GET /_test/dump`` (``{"accounts", "teams"`` with ``"members": [ids]``, ``"tokens_issued",
"idempotency_keys"}``), ``GET /_test/requests`` (every other request, in the order answered:
``{method, path, query, auth_scheme, status, idempotency_key}``), ``POST /_test/revoke`` (204).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import json
import os
import secrets
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

try:
    from .process import TestRoutes, launch
except ImportError:  # run as a script: the server itself (its folder is on sys.path)
    from process import TestRoutes, launch  # type: ignore[no-redef]

RESTAPP_TOKEN = "restapp-token-77c1e0"  # throwaway test credentials, never real secrets
API_KEY = "restapp-key-3b9d2f"
BASIC_USER = "svc"
PASSWORD = "restapp-pass-a41c"
CLIENT_ID = "client-id"
CLIENT_SECRET = "client-secret-8d2e"
TOKEN_LIFETIME = 3600
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
API = "/api/v2"

Record = dict[str, Any]


# ---- the service ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    token: str = RESTAPP_TOKEN
    api_key: str = API_KEY
    password: str = PASSWORD
    token_lifetime: int = TOKEN_LIFETIME
    members_touch_team: bool = False


class ApiError(Exception):
    """An answer other than success: ``{"error": {"code", "message", **extra}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.extra = status, code, message, headers, extra

    def response(self) -> JSONResponse:
        error = {"code": self.code, "message": self.message, **self.extra}
        return JSONResponse({"error": error}, self.status, headers=self.headers)


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid", message)


def unauthorized(message: str, refused_token: bool = False) -> ApiError:
    challenge = 'Bearer realm="restapp"' + (', error="invalid_token"' if refused_token else "")
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": challenge})


def parse_time(value: str, name: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(f"{name} is not an ISO-8601 date-time: {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class Store:
    """Everything the service holds, changed only under ``lock``.

    Records keep their creation sequence number (``seq``) so a cursor is a position that survives
    deletions; dicts keep creation order, so listing is a filter over them."""

    def __init__(self, options: Options):
        self.options = options
        self.lock = threading.RLock()
        self.clear()

    def clear(self) -> None:
        with self.lock:
            self.accounts: dict[str, Record] = {}
            self.teams: dict[str, Record] = {}
            self.members: dict[str, dict[str, int]] = {}  # team id -> account id -> seq of the membership
            self.seq_of: dict[str, int] = {}  # record id -> seq of its creation
            self.seq = 0
            self.tokens: dict[str, float] = {}  # issued token -> time.monotonic() it expires
            self.revoked: set[str] = set()
            self.tokens_issued = 0
            self.idempotency: dict[str, tuple[str, int, bytes, dict[str, str]]] = {}
            self.requests: list[Record] = []
            self.last_stamp = datetime.fromtimestamp(0, UTC)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def stamp(self) -> str:
        """Now, ISO-8601 UTC with microseconds; strictly later than any stamp given before."""
        now = datetime.now(UTC)
        if now <= self.last_stamp:
            now = self.last_stamp + timedelta(microseconds=1)
        self.last_stamp = now
        return now.isoformat(timespec="microseconds").replace("+00:00", "Z")

    # ---- auth ----

    def authenticate(self, request: Request) -> str:
        """The scheme of the first valid credential the request carries, or raise 401."""
        o, failures = self.options, []
        auth = request.headers.get("authorization", "")
        kind, _, value = auth.partition(" ")
        if kind.lower() == "bearer":
            token = value.strip()
            if secrets.compare_digest(token, o.token):
                return "bearer"
            with self.lock:
                expires = self.tokens.get(token)
                if expires is not None and expires > time.monotonic():
                    return "oauth"
                failures.append("access token revoked" if token in self.revoked else
                                "access token expired" if expires is not None else "unknown bearer token")
        elif kind.lower() == "basic":
            if basic_credentials(auth) == (BASIC_USER, o.password):
                return "basic"
            failures.append("bad username or password")
        key = request.headers.get("x-api-key")
        if key is not None:
            if secrets.compare_digest(key, o.api_key):
                return "api_key_header"
            failures.append("bad API key")
        key = request.query_params.get("api_key")
        if key is not None:
            if secrets.compare_digest(key, o.api_key):
                return "api_key_query"
            failures.append("bad API key")
        raise unauthorized(failures[0] if failures else "no credentials",
                           refused_token=bool(failures) and kind.lower() == "bearer")

    def issue_token(self) -> str:
        token = "rat_" + secrets.token_hex(16)
        with self.lock:
            self.tokens[token] = time.monotonic() + self.options.token_lifetime
            self.tokens_issued += 1
        return token

    def revoke(self) -> None:
        with self.lock:
            self.revoked.update(self.tokens)
            self.tokens.clear()

    # ---- paging ----

    def page(self, items: list[tuple[int, Any]], request: Request, kind: str) -> tuple[list[Any], str | None]:
        """The page of ``items`` ((seq, item) in seq order) that ``limit`` and ``cursor`` ask for."""
        q = request.query_params
        try:
            limit = int(q.get("limit", DEFAULT_LIMIT))
        except ValueError:
            raise invalid("limit must be an integer") from None
        if limit < 1:
            raise invalid("limit must be at least 1")
        limit = min(limit, MAX_LIMIT)
        after = 0
        if q.get("cursor"):
            after = self.read_cursor(q["cursor"], kind)
        rest = [(seq, item) for seq, item in items if seq > after]
        chunk = rest[:limit]
        next_cursor = make_cursor(kind, chunk[-1][0]) if len(rest) > limit else None
        return [item for _, item in chunk], next_cursor

    def read_cursor(self, cursor: str, kind: str) -> int:
        try:
            text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            given_kind, _, seq = text.rpartition(":")
            after = int(seq)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            after, given_kind = -1, ""
        if given_kind != kind or not 0 < after <= self.seq:
            raise ApiError(400, "invalid_cursor", f"unknown cursor {cursor!r}")
        return after

    def listing(self, records: dict[str, Record], request: Request, kind: str,
                keep: Callable[[Record], bool]) -> Record:
        since = request.query_params.get("updated_since")
        since_time = parse_time(since, "updated_since") if since else None
        with self.lock:
            matching = [(self.seq_of[r["id"]], r) for r in records.values() if keep(r) and (
                since_time is None or parse_time(r["updated_at"], "updated_at") >= since_time)]
            data, next_cursor = self.page(matching, request, kind)
            return {"data": data, "meta": {"next_cursor": next_cursor, "total": len(matching)}}

    # ---- accounts ----

    def account(self, account_id: str) -> Record:
        found = self.accounts.get(account_id)
        if found is None:
            raise ApiError(404, "not_found", f"no account {account_id}")
        return found

    def check_login(self, login: str, account_id: str | None) -> None:
        for other in self.accounts.values():
            if other["id"] != account_id and other["login"].lower() == login.lower():
                raise ApiError(400, "duplicate", "login already taken", existing_id=other["id"])

    def save_account(self, body: Any, account_id: str | None) -> Record:
        """Create (``account_id`` None) or replace an account from a request body."""
        if not isinstance(body, dict):
            raise invalid("the body must be a JSON object")
        login = body.get("login")
        if not isinstance(login, str) or not login.strip():
            raise invalid("login is required")
        profile = body.get("profile") or {}
        if not isinstance(profile, dict):
            raise invalid("profile must be an object")
        status = body.get("status") or "ACTIVE"
        if status not in ("ACTIVE", "SUSPENDED"):
            raise invalid("status must be ACTIVE or SUSPENDED")
        manager_id = body.get("manager_id")
        if manager_id is not None and not isinstance(manager_id, str):
            raise invalid("manager_id must be a string or null")
        with self.lock:
            old = self.account(account_id) if account_id else None
            self.check_login(login, account_id)
            now = self.stamp()
            known = ("id", "login", "profile", "status", "manager_id", "updated_at", "created_at")
            record = {"id": account_id or "acc_" + secrets.token_hex(6), "login": login,
                      "profile": {"firstName": None, "lastName": None, "email": None, **profile},
                      "status": status, "manager_id": manager_id,
                      **{k: v for k, v in body.items() if k not in known},
                      "updated_at": now, "created_at": old["created_at"] if old else now}
            if old is None:
                self.seq_of[record["id"]] = self.next_seq()
            self.accounts[record["id"]] = record
            return record

    def delete_account(self, account_id: str) -> None:
        with self.lock:
            self.account(account_id)
            del self.accounts[account_id]
            for members in self.members.values():
                members.pop(account_id, None)

    # ---- teams ----

    def team(self, team_id: str) -> Record:
        found = self.teams.get(team_id)
        if found is None:
            raise ApiError(404, "not_found", f"no team {team_id}")
        return found

    def save_team(self, body: Any, team_id: str | None) -> Record:
        if not isinstance(body, dict):
            raise invalid("the body must be a JSON object")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise invalid("name is required")
        with self.lock:
            old = self.team(team_id) if team_id else None
            if any(t["id"] != team_id and t["name"].lower() == name.lower() for t in self.teams.values()):
                raise ApiError(409, "conflict", "team name exists")
            now = self.stamp()
            known = ("id", "name", "description", "updated_at", "created_at")
            record = {"id": team_id or "team_" + secrets.token_hex(6), "name": name,
                      "description": body.get("description"),
                      **{k: v for k, v in body.items() if k not in known},
                      "updated_at": now, "created_at": old["created_at"] if old else now}
            if old is None:
                self.seq_of[record["id"]] = self.next_seq()
                self.members[record["id"]] = {}
            self.teams[record["id"]] = record
            return record

    def delete_team(self, team_id: str) -> None:
        with self.lock:
            self.team(team_id)
            del self.teams[team_id]
            del self.members[team_id]

    def member_page(self, team_id: str, request: Request) -> Record:
        with self.lock:
            self.team(team_id)
            items = [(seq, {"account_id": a}) for a, seq in self.members[team_id].items()]
            data, next_cursor = self.page(items, request, f"members:{team_id}")
            return {"data": data, "meta": {"next_cursor": next_cursor}}

    def add_member(self, team_id: str, account_id: str) -> None:
        with self.lock:
            self.team(team_id)
            self.account(account_id)
            if account_id not in self.members[team_id]:
                self.members[team_id][account_id] = self.next_seq()
                self.touch(team_id)

    def remove_member(self, team_id: str, account_id: str) -> None:
        with self.lock:
            self.team(team_id)
            if self.members[team_id].pop(account_id, None) is None:
                raise ApiError(404, "not_found", f"{account_id} is not a member of {team_id}")
            self.touch(team_id)

    def touch(self, team_id: str) -> None:
        if self.options.members_touch_team:
            self.teams[team_id]["updated_at"] = self.stamp()

    # ---- idempotency keys ----

    def idempotent(self, key: str | None, fingerprint: str, make: Callable[[], Response]) -> Response:
        """``make()`` once per ``Idempotency-Key``; the same key again replays its answer."""
        with self.lock:
            if key is None:
                return make()
            if key in self.idempotency:
                seen_fingerprint, status, body, headers = self.idempotency[key]
                if seen_fingerprint != fingerprint:
                    raise ApiError(422, "idempotency_mismatch",
                                   "this Idempotency-Key was used with another request")
                return Response(body, status, {**headers, "Idempotent-Replayed": "true"},
                                media_type="application/json")
            try:
                answer = make()
            except ApiError as e:
                answer = e.response()
            if answer.status_code < 500:
                kept = {k: v for k, v in answer.headers.items() if k.lower() == "location"}
                self.idempotency[key] = (fingerprint, answer.status_code, bytes(answer.body), kept)
            return answer

    def dump(self) -> Record:
        with self.lock:
            return {"accounts": list(self.accounts.values()),
                    "teams": [{**t, "members": list(self.members[t["id"]])} for t in self.teams.values()],
                    "tokens_issued": self.tokens_issued, "idempotency_keys": len(self.idempotency)}


def make_cursor(kind: str, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{seq}".encode()).decode().rstrip("=")


def basic_credentials(header: str) -> tuple[str, str] | None:
    kind, _, value = header.partition(" ")
    if kind.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


# ---- HTTP ----------------------------------------------------------------------------------------------


class RequestLog:
    """ASGI middleware: every request but ``/_test/*``, with its answer's status and auth scheme."""

    def __init__(self, app: ASGIApp, store: Store):
        self.app, self.store = app, store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_test/"):
            return await self.app(scope, receive, send)
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            entry = {"method": scope["method"], "path": scope["path"],
                     "query": scope["query_string"].decode("latin-1"),
                     "auth_scheme": scope.get("state", {}).get("auth_scheme"), "status": status,
                     "idempotency_key": headers.get("idempotency-key")}
            with self.store.lock:
                self.store.requests.append(entry)


def make_app(options: Options) -> tuple[ASGIApp, Store]:
    store = Store(options)
    Handler = Callable[[Request], Awaitable[Response]]

    def api(handler: Handler) -> Handler:
        """Authenticate, then answer ApiErrors and surprises as JSON."""

        async def run(request: Request) -> Response:
            try:
                request.state.auth_scheme = store.authenticate(request)
                return await handler(request)
            except ApiError as e:
                return e.response()
            except Exception as e:  # a test server answers its own bugs as a 500, in JSON
                error = {"code": "internal", "message": f"{type(e).__name__}: {e}"}
                return JSONResponse({"error": error}, 500)

        return run

    async def json_body(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise invalid("the body is not JSON") from None

    def fingerprint(request: Request, body: Any) -> str:
        return hashlib.sha256(f"{request.method} {request.url.path} {json.dumps(body, sort_keys=True)}"
                              .encode()).hexdigest()

    def created(request: Request, record: Record, collection: str) -> Response:
        location = f"{str(request.base_url).rstrip('/')}{API}/{collection}/{record['id']}"
        return JSONResponse(record, 201, headers={"Location": location})

    # ---- oauth ----

    async def oauth_token(request: Request) -> Response:
        form = {k: v[0] for k, v in urllib.parse.parse_qs((await request.body()).decode("latin-1")).items()}
        basic = basic_credentials(request.headers.get("authorization", ""))
        client = basic if basic is not None else (form.get("client_id"), form.get("client_secret"))
        request.state.auth_scheme = "client_basic" if basic is not None else "client_form"
        if client != (CLIENT_ID, CLIENT_SECRET):
            return JSONResponse({"error": "invalid_client"}, 401,
                                headers={"WWW-Authenticate": 'Basic realm="restapp"'})
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        return JSONResponse({"access_token": store.issue_token(), "token_type": "Bearer",
                             "expires_in": options.token_lifetime}, headers={"Cache-Control": "no-store"})

    # ---- accounts ----

    def keep_account(request: Request) -> Callable[[Record], bool]:
        login, email = request.query_params.get("login"), request.query_params.get("email")

        def keep(r: Record) -> bool:
            mail = r["profile"].get("email")
            return (login is None or r["login"].lower() == login.lower()) and \
                (email is None or (isinstance(mail, str) and mail.lower() == email.lower()))

        return keep

    @api
    async def list_accounts(request: Request) -> Response:
        return JSONResponse(store.listing(store.accounts, request, "accounts", keep_account(request)))

    @api
    async def create_account(request: Request) -> Response:
        body = await json_body(request)
        return store.idempotent(request.headers.get("idempotency-key"), fingerprint(request, body),
                                lambda: created(request, store.save_account(body, None), "accounts"))

    @api
    async def get_account(request: Request) -> Response:
        with store.lock:
            return JSONResponse(store.account(request.path_params["id"]))

    @api
    async def put_account(request: Request) -> Response:
        return JSONResponse(store.save_account(await json_body(request), request.path_params["id"]))

    @api
    async def delete_account(request: Request) -> Response:
        store.delete_account(request.path_params["id"])
        return Response(status_code=204)

    # ---- teams ----

    def keep_team(request: Request) -> Callable[[Record], bool]:
        name = request.query_params.get("name")
        return lambda r: name is None or r["name"].lower() == name.lower()

    @api
    async def list_teams(request: Request) -> Response:
        return JSONResponse(store.listing(store.teams, request, "teams", keep_team(request)))

    @api
    async def create_team(request: Request) -> Response:
        body = await json_body(request)
        return store.idempotent(request.headers.get("idempotency-key"), fingerprint(request, body),
                                lambda: created(request, store.save_team(body, None), "teams"))

    @api
    async def get_team(request: Request) -> Response:
        with store.lock:
            return JSONResponse(store.team(request.path_params["id"]))

    @api
    async def put_team(request: Request) -> Response:
        return JSONResponse(store.save_team(await json_body(request), request.path_params["id"]))

    @api
    async def delete_team(request: Request) -> Response:
        store.delete_team(request.path_params["id"])
        return Response(status_code=204)

    @api
    async def list_members(request: Request) -> Response:
        return JSONResponse(store.member_page(request.path_params["id"], request))

    @api
    async def put_member(request: Request) -> Response:
        store.add_member(request.path_params["id"], request.path_params["account_id"])
        return Response(status_code=204)

    @api
    async def delete_member(request: Request) -> Response:
        store.remove_member(request.path_params["id"], request.path_params["account_id"])
        return Response(status_code=204)

    # ---- test routes ----

    async def test_reset(request: Request) -> Response:
        store.clear()
        return Response(status_code=204)

    async def test_dump(request: Request) -> Response:
        return JSONResponse(store.dump())

    async def test_requests(request: Request) -> Response:
        with store.lock:
            return JSONResponse(list(store.requests))

    async def test_revoke(request: Request) -> Response:
        store.revoke()
        return Response(status_code=204)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            # Starlette's Allow names the methods of the first route of the path only: one route a method here
            path = request.url.path
            allowed = sorted({m for r in routes if r.path_regex.fullmatch(path) for m in r.methods or ()})
            error = ApiError(405, "method_not_allowed", f"{request.method} is not allowed on {path}",
                             {"Allow": ", ".join(allowed)})
        elif exc.status_code == 404:
            error = ApiError(404, "not_found", f"no route {request.url.path}")
        else:
            error = ApiError(exc.status_code, "http_error", exc.detail, exc.headers)
        return error.response()

    routes = [
        Route("/oauth/token", oauth_token, methods=["POST"]),
        Route(f"{API}/accounts", list_accounts, methods=["GET"]),
        Route(f"{API}/accounts", create_account, methods=["POST"]),
        Route(f"{API}/accounts/{{id}}", get_account, methods=["GET"]),
        Route(f"{API}/accounts/{{id}}", put_account, methods=["PUT"]),
        Route(f"{API}/accounts/{{id}}", delete_account, methods=["DELETE"]),
        Route(f"{API}/teams", list_teams, methods=["GET"]),
        Route(f"{API}/teams", create_team, methods=["POST"]),
        Route(f"{API}/teams/{{id}}", get_team, methods=["GET"]),
        Route(f"{API}/teams/{{id}}", put_team, methods=["PUT"]),
        Route(f"{API}/teams/{{id}}", delete_team, methods=["DELETE"]),
        Route(f"{API}/teams/{{id}}/members", list_members, methods=["GET"]),
        Route(f"{API}/teams/{{id}}/members/{{account_id}}", put_member, methods=["PUT"]),
        Route(f"{API}/teams/{{id}}/members/{{account_id}}", delete_member, methods=["DELETE"]),
        Route("/_test/reset", test_reset, methods=["POST"]),
        Route("/_test/dump", test_dump, methods=["GET"]),
        Route("/_test/requests", test_requests, methods=["GET"]),
        Route("/_test/revoke", test_revoke, methods=["POST"]),
    ]
    return RequestLog(Starlette(routes=routes, exception_handlers={HTTPException: http_error}), store), store


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A SaaS-style REST API for the rest connector's tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default=RESTAPP_TOKEN)
    parser.add_argument("--api-key", default=API_KEY)
    parser.add_argument("--password", default=PASSWORD)
    parser.add_argument("--token-lifetime", type=int, default=TOKEN_LIFETIME)
    parser.add_argument("--members-touch-team", action="store_true")
    args = parser.parse_args(argv)
    import uvicorn

    app, _ = make_app(Options(args.token, args.api_key, args.password, args.token_lifetime,
                              args.members_touch_team))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=2)


# ---- the test side ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RestApp(TestRoutes):
    """A running restapp process (this file as a script under uvicorn)."""

    options: Options = None  # type: ignore[assignment]
    log: Path | None = None

    @classmethod
    def start(cls, folder: Path, *, token: str = RESTAPP_TOKEN, api_key: str = API_KEY,
              password: str = PASSWORD, token_lifetime: int = TOKEN_LIFETIME,
              members_touch_team: bool = False) -> RestApp:
        options = Options(token, api_key, password, token_lifetime, members_touch_team)
        port = free_port()
        command = [sys.executable, str(Path(__file__).resolve()), "--port", str(port), "--token", token,
                   "--api-key", api_key, "--password", password, "--token-lifetime", str(token_lifetime)]
        if members_touch_team:
            command.append("--members-touch-team")
        log = folder / "restapp.log"
        probe = TestRoutes(port, None)  # type: ignore[arg-type]
        process = launch(command, folder, log, {**os.environ, "PYTHONUNBUFFERED": "1"}, probe.up, "restapp")
        return cls(port, process, options, log)

    @property
    def url(self) -> str:
        """The base URL; the API is under ``{url}/api/v2``, the token endpoint at ``{url}/oauth/token``."""
        return super().url

    @property
    def headers(self) -> dict[str, str]:
        """Auth by the static bearer token."""
        return {"Authorization": f"Bearer {self.options.token}"}

    def reset(self) -> None:
        """Forget everything: records, issued tokens, idempotency keys, the request log."""
        super().reset()

    def revoke(self) -> None:
        """Revoke every token /oauth/token issued so far."""
        requests.post(f"{self.url}/_test/revoke", timeout=10).raise_for_status()

    def requests_seen(self) -> list[dict[str, Any]]:
        return self.route("requests")


@contextlib.contextmanager
def running(folder: Path, **options: Any) -> Iterator[RestApp]:
    app = RestApp.start(folder, **options)
    try:
        yield app
    finally:
        app.stop()


if __name__ == "__main__":
    main()
