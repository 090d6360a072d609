"""The SCIM endpoint under test: ``tests/servers/scimendpoint.py`` as a real uvicorn process on
127.0.0.1, one per test module (so each module starts from an empty store), stopped by its PID."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers.scimendpoint import ScimEndpoint


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimEndpoint]:
    running = ScimEndpoint.start(tmp_path_factory.mktemp("scim-endpoint"))
    yield running
    running.stop()
