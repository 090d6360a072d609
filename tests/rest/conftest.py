"""Fixtures of the rest connector's tests: the real servers it talks to, one of each a session.

``json_server`` is json-server 0.17.4 with ``runner/demo/jsonserver.js`` (a generic REST API:
page/offset paging, 409 on duplicates, ``updatedAt``; see ``tests/servers/jsonserver.py``), ``rest_app``
the SaaS-style API of ``tests/servers/restapp.py`` (cursor paging, PUT only, members as sub-resources,
idempotency keys, four auth schemes). Both start once a session on 127.0.0.1 and are stopped by PID at
the end; the function-scoped ``jsonserver`` and ``restapp`` empty them first, so each test starts from
nothing. Faults come from ``servers.scim.FaultProxy`` in front of either.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers.jsonserver import JsonServer
from servers.restapp import RestApp


@pytest.fixture(scope="session")
def json_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsonServer]:
    server = JsonServer.start(tmp_path_factory.mktemp("json-server"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rest_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestApp]:
    app = RestApp.start(tmp_path_factory.mktemp("restapp"))
    yield app
    app.stop()


@pytest.fixture
def jsonserver(json_server: JsonServer) -> JsonServer:
    """The session's json-server, every collection empty (ids start at 1 again)."""
    json_server.reset()
    return json_server


@pytest.fixture
def restapp(rest_app: RestApp) -> RestApp:
    """The session's restapp, empty: no records, tokens, idempotency keys or logged requests."""
    rest_app.reset()
    return rest_app
