"""Fixtures of the LDAP connector's own tests: one slapd for the session, emptied per test.

The server is :class:`servers.slapd.Slapd` (accesslog, syncprov, memberof and refint overlays,
two suffixes); a missing slapd fails the tests, never skips them. Helpers are in ``helpers.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers import ldap_contract
from servers.slapd import Slapd


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = Slapd.start(tmp_path_factory.mktemp("ldap-tests") / "slapd")
    yield server
    server.stop()


@pytest.fixture
def directory(slapd: Slapd) -> Slapd:
    """The session's slapd with both suffixes emptied."""
    ldap_contract.fresh_partitions(slapd)
    return slapd
