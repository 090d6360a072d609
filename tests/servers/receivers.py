"""Where alerts arrive in the tests: a real SMTP server (aiosmtpd, with STARTTLS on a certificate of
its own CA) and an HTTP receiver for webhooks, in one process on 127.0.0.1, stopped by PID.

    python tests/servers/receivers.py --smtp-port P --http-port Q --cert C --key K --user U --password W

``GET /_test/dump`` answers ``{"mail": [...], "webhook": [...]}``: every message (envelope, headers,
body, whether it came over TLS and after which login) and every POST (path, headers, JSON body);
``POST /_test/reset`` forgets them. ``POST /fail`` answers 500 (a receiver that is down).
"""

from __future__ import annotations

import argparse
import email
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SEEN: dict[str, list[dict[str, Any]]] = {"mail": [], "webhook": []}
LOCK = threading.Lock()


class _Handler:
    """aiosmtpd handler: keeps every message it is handed."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        message = email.message_from_bytes(envelope.content)
        body = message.get_payload(decode=True) if not message.is_multipart() else \
            message.get_payload(0).get_payload(decode=True)
        with LOCK:
            SEEN["mail"].append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                 "subject": message["Subject"], "body": (body or b"").decode("utf-8", "replace"),
                                 "tls": session.ssl is not None,
                                 "login": session.auth_data if session.authenticated else None})
        return "250 OK"


class _Http(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/_test/dump":
            with LOCK:
                self._answer(200, json.dumps(SEEN).encode())
        else:
            self._answer(404, b"{}")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path == "/_test/reset":
            with LOCK:
                SEEN["mail"].clear()
                SEEN["webhook"].clear()
            self._answer(200, b"{}")
            return
        if self.path == "/fail":
            self._answer(500, b'{"error": "down"}')
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with LOCK:
            SEEN["webhook"].append({"path": self.path, "headers": dict(self.headers), "body": body})
        self._answer(200, b"ok")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def main() -> None:
    from aiosmtpd.controller import Controller

    ap = argparse.ArgumentParser()
    ap.add_argument("--smtp-port", type=int, required=True)
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    args = ap.parse_args()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(args.cert, args.key)

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        ok = auth_data.login.decode() == args.user and auth_data.password.decode() == args.password
        return AuthResult(success=ok, auth_data=auth_data.login.decode() if ok else None)

    smtp = Controller(_Handler(), hostname="127.0.0.1", port=args.smtp_port, tls_context=tls,
                      authenticator=authenticate, auth_require_tls=True, auth_required=False)
    smtp.start()
    http = ThreadingHTTPServer(("127.0.0.1", args.http_port), _Http)
    try:
        http.serve_forever()
    finally:
        smtp.stop()


@contextmanager
def running(folder: Path) -> Iterator[dict[str, Any]]:
    """Start the receivers with a CA of their own; yields their addresses, credentials and CA file."""
    import sys

    import requests

    from servers import process
    from servers.restapp import free_port
    from servers.slapd import make_certificates

    ca, cert, key = make_certificates(folder / "tls")
    smtp_port, http_port = free_port(), free_port()
    user, password = "alerts", f"smtp-pass-{int(time.time())}"
    proc = process.launch([sys.executable, __file__, "--smtp-port", str(smtp_port), "--http-port", str(http_port),
                           "--cert", str(cert), "--key", str(key), "--user", user, "--password", password],
                          folder, folder / "receivers.log",
                          answers=lambda: requests.get(f"http://127.0.0.1:{http_port}/_test/dump", timeout=1).ok,
                          what="the alert receivers")
    try:
        yield {"smtp_port": smtp_port, "url": f"http://127.0.0.1:{http_port}", "user": user, "password": password,
               "ca": ca}
    finally:
        process.stop(proc)


if __name__ == "__main__":
    main()
