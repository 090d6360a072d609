"""Fixtures of the soap connector's tests: the real SOAP 1.1 service they talk to, one a session.

``soap_service`` is ``tests/servers/soapservice.py`` (spyne, SOAP 1.1, document/literal wrapped, HTTP
Basic auth on the calls; its contract and how zeep sees it are in that module's docstring), started once
a session on 127.0.0.1 in a folder of its own and stopped by PID at the end; the function-scoped
``soapservice`` empties it first (users, groups, the call log), so each test starts from nothing.
``soap_client`` is a zeep client of it with the service's credentials. Faults come from
``servers.scim.FaultProxy`` in front of it: ``soap_proxy`` (auth passed through, the WSDL's address
rewritten to the proxy's, no faults set).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from servers.scim import FaultProxy
from servers.soapservice import SoapService


@pytest.fixture(scope="session")
def soap_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoapService]:
    service = SoapService.start(tmp_path_factory.mktemp("soapservice"))
    yield service
    service.stop()


@pytest.fixture
def soapservice(soap_service: SoapService) -> SoapService:
    """The session's SOAP service, empty: no users, groups or logged calls."""
    soap_service.reset()
    return soap_service


@pytest.fixture(scope="session")
def soap_client(soap_service: SoapService) -> Any:
    """A ``zeep.Client`` of the service's WSDL, sending its Basic credentials (zeep keeps no state between
    calls: one a session is enough; ask for ``soapservice`` too to start empty)."""
    return soap_service.client()


@pytest.fixture(scope="session")
def soap_proxy_server(soap_service: SoapService) -> Iterator[FaultProxy]:
    proxy = FaultProxy(soap_service.url, rewrite_body_urls=True)
    yield proxy
    proxy.stop()


@pytest.fixture
def soap_proxy(soap_proxy_server: FaultProxy, soapservice: SoapService) -> Iterator[FaultProxy]:
    """The fault proxy in front of the (empty) service: no faults set, its request log empty, the client's
    Basic auth passed through; a zeep client of ``soap_proxy.url + "/?wsdl"`` calls through it."""
    soap_proxy_server.reset().passthrough_auth = True
    yield soap_proxy_server
    soap_proxy_server.reset()
