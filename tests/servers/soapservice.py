"""The SOAP 1.1 user-management service (spyne) the soap connector's tests talk to: the service itself is
:mod:`runner.demo.soapservice` (which ``provision demo soap`` runs too), whose docstring is the contract
(operations, faults, auth, the ``/_test/*`` routes, how zeep sees it); this is the test side.

The test side: ``SoapService.start(folder, user=USER, password=PASSWORD)`` -> a ``SoapService`` with
``port``, ``process``, ``user``, ``password``, ``log`` (the server's output, in ``folder``), ``url``
(``http://127.0.0.1:N``), ``wsdl`` (``url + "/?wsdl"``), ``reset()``, ``dump()``, ``calls()``,
``client(wsdl=None, *, auth=True, timeout=10)`` (a zeep client; pass a proxy's ``url + "/?wsdl"`` to
call through it) and ``stop()``; ``running(folder, **options)`` is the same as a context manager.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from runner.demo import soapservice
from runner.demo.process import free_port
from runner.demo.soapservice import NAMESPACE, PASSWORD, USER

from .process import TestRoutes

__all__ = ["NAMESPACE", "PASSWORD", "USER", "SoapService", "running"]


# ---- the test side ---------------------------------------------------------------------------------------


@dataclass
class SoapService(TestRoutes):
    """A running :mod:`runner.demo.soapservice` process."""

    user: str = USER
    password: str = PASSWORD
    log: Path | None = None

    @classmethod
    def start(cls, folder: Path, user: str = USER, password: str = PASSWORD, wsse: bool = False) -> SoapService:
        """``wsse``: the calls need a WS-Security UsernameToken (text or digest) instead of Basic auth."""
        port = free_port()
        process = soapservice.start(folder, port, user, password, wsse=wsse)
        return cls(port, process, user, password, folder / "soapservice.log")

    @property
    def wsdl(self) -> str:
        return f"{self.url}/?wsdl"

    def reset(self) -> None:
        """Forget every user, group and logged call."""
        super().reset()

    def dump(self) -> dict[str, Any]:
        """``{"users": [...], "groups": [...]}`` as plain JSON (lastModified an ISO string)."""
        return super().dump()

    def calls(self) -> list[dict[str, Any]]:
        """The SOAP calls so far, in order: ``[{"operation": "createUser", "status": 200}, ...]``."""
        return self.route("calls")

    def client(self, wsdl: str | None = None, *, auth: bool = True, timeout: float = 10) -> Any:
        """A zeep client from ``wsdl`` (this service's by default; a proxy's ``url + "/?wsdl"`` sends the
        calls through the proxy), with this service's Basic credentials unless ``auth`` is false."""
        import zeep
        from zeep.transports import Transport

        session = requests.Session()
        if auth:
            session.auth = (self.user, self.password)
        transport = Transport(session=session, timeout=timeout, operation_timeout=timeout)
        return zeep.Client(wsdl or self.wsdl, transport=transport)


@contextlib.contextmanager
def running(folder: Path, **options: Any) -> Iterator[SoapService]:
    service = SoapService.start(folder, **options)
    try:
        yield service
    finally:
        service.stop()

