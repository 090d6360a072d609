"""Running the SCIM app: uvicorn, started from Python rather than from its command line.

Programmatic, so that ``provision serve`` owns the process (its configuration, its logging, its
store) and TLS is uvicorn's own: Entra only provisions over HTTPS, and ``ssl_certfile`` /
``ssl_keyfile`` are handed to uvicorn's certificate options unchanged (a PEM certificate chain and
its key; the key may also be in the certificate file). Without them the endpoint speaks plain HTTP,
for a TLS-terminating proxy in front of it or for tests on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

from starlette.types import ASGIApp


def serve(app: ASGIApp, host: str = "127.0.0.1", port: int = 8443, ssl_certfile: str | Path | None = None,
          ssl_keyfile: str | Path | None = None, *, log_level: str = "info") -> None:
    """Serve ``app`` on ``host``:``port`` until the process is told to stop (SIGINT, SIGTERM),
    finishing the requests under way for up to 5 s."""
    if ssl_keyfile is not None and ssl_certfile is None:
        raise ValueError("ssl_keyfile needs ssl_certfile: the certificate it is the key of")
    for name, path in (("ssl_certfile", ssl_certfile), ("ssl_keyfile", ssl_keyfile)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{name}: no file {path}")
    import uvicorn  # the optional 'serve' extra; imported here so runner.serve.app works without it

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, server_header=False,
                            ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
                            ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
                            timeout_graceful_shutdown=5)
    uvicorn.Server(config).run()
