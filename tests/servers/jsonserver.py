"""json-server 0.17.4 (npm) for the rest connector's tests: a real generic REST API over JSON collections.

``JsonServer.start(folder)`` runs ``tests/servers/node/node_modules/.bin/json-server`` (``scripts/test``
installs it with ``npm install --prefix tests/servers/node``) on 127.0.0.1 with a free port, in
``folder`` (its cwd and log), through :func:`runner.demo.jsonserver.start` (which ``provision demo
rest`` uses too), with ``runner/demo/jsonserver.js`` in front of json-server's router, which adds:

- a bearer token (``TOKEN``): every request but ``/_test/*`` without ``Authorization: Bearer TOKEN``
  answers 401 ``{"error": "unauthorised"}``;
- ``updatedAt`` stamped on every POST/PUT/PATCH of a record (``new Date().toISOString()``: UTC,
  milliseconds, never going back; two writes in one millisecond share a value);
- unique fields (``unique``, default ``users:userName,email;groups:name``; strings case-insensitive):
  a POST repeating another record's value, or a PUT/PATCH giving a record another one's value, answers
  409 ``{"error": "duplicate", "field": "userName", "id": <the other record's id>}``; a POST with an
  explicit ``id`` that exists answers 409 with ``"field": "id"`` (plain json-server: 500 and a stack);
- ids that are never given twice: a POST without ``id`` gets the next integer after the largest id the
  collection ever held (plain json-server takes the largest id it holds now + 1, so deleting the newest
  record hands its id to the next one and a stale reference would name a stranger);
- a filter on a field no record has (``?externalId=E1`` before any record has one) matches nothing;
- ``POST /_test/reset`` (every collection emptied, keys kept, ids from 1 again; 204) and
  ``GET /_test/dump`` (the db).

json-server's relations are switched off (``--foreignKeySuffix`` is a suffix no field has): plain
json-server, on any DELETE, also deletes every record of any collection whose ``<name>Id`` field (say
``userId``, ``groupId``) names a record of ``<name>s`` that does not exist, which no real API does.

The database is in memory: the source is a ``db.js`` exporting a function that returns the initial
collections, which json-server 0.17 loads with lowdb's Memory adapter (``lib/cli/utils/load.js``), so
writes do not rewrite a JSON file on every request. The folder also gets an empty ``public/`` passed
as ``--static``, so json-server's home page is not served (``GET /`` is 401 without the token).

Verified against this server (``tests/rest/test_servers.py``), json-server's own behaviour:

- ids are integers (JSON numbers, not strings): 1, 2, 3... in an empty collection; json-server
  compares ids by their string form, so a POST with ``"id": "5"`` collides with the record 5;
- ``GET /users?_page=2&_limit=10`` -> the 11th to 20th records, ``X-Total-Count: <all matching>`` and
  ``Link: <http://127.0.0.1:PORT/users?_page=1&_limit=10>; rel="first", <...?_page=1...>; rel="prev",
  <...?_page=3...>; rel="next", <...?_page=N...>; rel="last"`` (absolute URLs built from the request's
  Host header, query kept as sent; ``prev``/``next`` absent on the first/last page; an EMPTY ``Link``
  header when one page holds every record, and past the last page, which answers ``[]``); ``_limit``
  defaults to 10 with ``_page``;
- ``GET /users?_start=20&_limit=10`` (offset style) and ``?_start=20&_end=30`` -> that slice, with
  ``X-Total-Count`` and no ``Link``;
- ``GET /users?email=x`` -> exact, case-sensitive match on the string form of the value (``?a.b=x``
  for nested fields); a field no record has matches nothing (plain json-server drops that filter and
  answers every record; the middleware turns it into ``field_like=(?!)``);
- ``GET /users?updatedAt_gte=2024-01-01T00:00:00.000Z`` -> records whose ``updatedAt`` is >= the value,
  compared as strings (fine for ``toISOString()`` values, all of one length and in UTC);
- ``GET /users?_sort=userName&_order=desc`` sorts; ``GET /users/1`` -> the record, 404 ``{}`` when absent;
- POST -> 201, the record (with its id and ``updatedAt``) and ``Location: http://127.0.0.1:PORT/users/1``;
- PUT replaces the record (fields not sent are gone; the id is kept whatever the body says), PATCH
  merges; both answer 200 with the record, and 404 with ``{}`` when the id is absent (nothing created);
- DELETE -> 200 ``{}``, 404 ``{}`` when absent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.demo import jsonserver
from runner.demo.jsonserver import UNIQUE
from runner.demo.process import free_port

from .process import TestRoutes

TOKEN = "rest-test-token-5e2a91"  # a throwaway server's; never a real secret
NODE = Path(__file__).resolve().parent / "node"


def json_server_binary() -> Path:
    exe = NODE / "node_modules" / ".bin" / "json-server"
    if not exe.exists():
        raise RuntimeError(f"json-server is not installed ({exe} is missing): run scripts/test, which "
                           "installs json-server with npm (npm install --prefix tests/servers/node)")
    return exe


@dataclass
class JsonServer(TestRoutes):
    """A running json-server process with ``runner/demo/jsonserver.js``."""

    token: str = TOKEN
    log: Path | None = None

    @classmethod
    def start(cls, folder: Path, token: str = TOKEN, unique: str = UNIQUE,
              collections: Sequence[str] = ("users", "groups")) -> JsonServer:
        port = free_port()
        process = jsonserver.start(folder, port, token, exe=json_server_binary(), unique=unique,
                                   collections=collections)
        return cls(port, process, token, folder / "json-server.log")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def reset(self) -> None:
        """Empty every collection (ids start at 1 again)."""
        super().reset()

    def dump(self) -> dict[str, Any]:
        """The whole database: ``{"users": [...], "groups": [...]}``."""
        return super().dump()

    def records(self, collection: str) -> list[dict[str, Any]]:
        return self.dump()[collection]


@contextlib.contextmanager
def running(folder: Path, **options: Any) -> Iterator[JsonServer]:
    server = JsonServer.start(folder, **options)
    try:
        yield server
    finally:
        server.stop()
