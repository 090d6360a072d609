"""The YAML language server that VS Code's YAML extension (Red Hat) runs, driven over stdio as an
editor drives it: LSP JSON-RPC messages framed by ``Content-Length`` headers.

``yaml-language-server`` comes from npm, pinned in ``tests/servers/node/package-lock.json``
(``scripts/test`` runs ``npm ci`` there). :func:`YamlLanguageServer.start` runs it in a process group of
its own and :meth:`close` stops it by PID. The server asks the editor for its settings
(``workspace/configuration``) while it works, so every wait here also answers those requests, as
VS Code does.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from servers.process import stop

NODE = Path(__file__).resolve().parent.parent / "servers" / "node"
SERVER = NODE / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
TIMEOUT = 30.0


def server_script() -> Path:
    if not SERVER.exists():
        raise RuntimeError(f"yaml-language-server is not installed ({SERVER} is missing): run scripts/test, "
                           "which installs it with npm ci --prefix tests/servers/node")
    return SERVER


class YamlLanguageServer:
    """One running server and the messages it sent that nobody asked for yet (diagnostics)."""

    def __init__(self, process: subprocess.Popen[bytes], settings: dict[str, Any]):
        self.process = process
        self.settings = settings
        self._inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._next_id = 0
        self.diagnostics: dict[str, list[dict[str, Any]]] = {}
        assert process.stdout is not None
        threading.Thread(target=self._read, args=(process.stdout,), daemon=True).start()

    @classmethod
    @contextlib.contextmanager
    def start(cls, root: Path, log: Path, settings: dict[str, Any]) -> Iterator[YamlLanguageServer]:
        """A server initialized for the workspace ``root`` with the editor settings ``settings``
        (VS Code's ``yaml.*`` keys, nested: ``{"yaml": {"validate": True}}``)."""
        with open(log, "wb") as err:
            process = subprocess.Popen(["node", str(server_script()), "--stdio"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=err, cwd=root, start_new_session=True)
        server = cls(process, settings)
        try:
            server.request("initialize", {
                "processId": None, "rootUri": root.as_uri(),
                "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
                "capabilities": {
                    "workspace": {"configuration": True},
                    "textDocument": {"completion": {"completionItem": {"documentationFormat": ["markdown"]}},
                                     "hover": {"contentFormat": ["markdown"]}}}})
            server.notify("initialized", {})
            server.notify("workspace/didChangeConfiguration", {"settings": settings})
            yield server
        finally:
            server.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.request("shutdown", None, timeout=5)
            self.notify("exit", None)
            self.process.wait(timeout=5)
        stop(self.process)

    def open(self, path: Path, text: str | None = None) -> str:
        """Open ``path`` as an editor does (``text``: an unsaved buffer; default: the file as saved)."""
        uri = path.as_uri()
        self.diagnostics.pop(uri, None)
        self.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "yaml", "version": 1,
            "text": path.read_text(encoding="utf-8") if text is None else text}})
        return uri

    def completion(self, uri: str, line: int, character: int) -> list[dict[str, Any]]:
        """The completion items at a 0-based position."""
        result = self.request("textDocument/completion", {"textDocument": {"uri": uri},
                                                          "position": {"line": line, "character": character}})
        return result["items"] if isinstance(result, dict) else list(result or [])

    def hover(self, uri: str, line: int, character: int) -> str:
        """The hover text (markdown) at a 0-based position; empty when there is none."""
        result = self.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                     "position": {"line": line, "character": character}})
        return (result or {}).get("contents", {}).get("value", "")

    def wait_for_diagnostics(self, uri: str, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """The problems the server publishes for ``uri`` after it was opened (it validates a moment
        after each change)."""
        deadline = time.monotonic() + timeout
        while uri not in self.diagnostics:
            self._handle(self._receive(deadline, f"diagnostics of {uri}"))
        return self.diagnostics[uri]

    def request(self, method: str, params: Any, timeout: float = TIMEOUT) -> Any:
        self._next_id += 1
        number = self._next_id
        self._send({"jsonrpc": "2.0", "id": number, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline, method)
            if message.get("id") == number and "method" not in message:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result")
            self._handle(message)

    def notify(self, method: str, params: Any) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def _handle(self, message: dict[str, Any]) -> None:
        """A request of the server is answered (settings asked for; anything else: null, as an editor
        without that feature would); diagnostics are kept by document."""
        method = message.get("method")
        if method is not None and "id" in message:
            result = None
            if method == "workspace/configuration":
                result = [self.settings.get(item.get("section", ""), None) for item in message["params"]["items"]]
            self._send({"jsonrpc": "2.0", "id": message["id"], "result": result})
        elif method == "textDocument/publishDiagnostics":
            self.diagnostics[message["params"]["uri"]] = message["params"]["diagnostics"]

    def _receive(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        try:
            message = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"yaml-language-server sent no answer for {waiting_for}") from None
        if message is None:
            raise RuntimeError(f"yaml-language-server exited ({self.process.poll()}) while waiting for {waiting_for}")
        return message

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode("utf-8")
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def _read(self, stream: IO[bytes]) -> None:
        while True:
            length = None
            while (line := stream.readline()) not in (b"\r\n", b"\n"):
                if not line:
                    self._inbox.put(None)
                    return
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if length is not None:
                self._inbox.put(json.loads(stream.read(length)))
