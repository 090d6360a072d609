"""json-server 0.17 (npm) with ``jsonserver.js`` in front of its router: a generic JSON REST API with
``users`` and ``groups`` collections, for ``provision demo rest`` and the tests
(``tests/servers/jsonserver.py`` starts it through :func:`start` and documents the behaviour).

The middleware (``jsonserver.js``, beside this file) adds what a real API has and plain json-server
lacks: a bearer token, ``updatedAt`` on every write, unique fields (409), ids never given twice, a
filter on a field no record has matching nothing, and ``/_test/reset`` and ``/_test/dump``. The data
is in memory (a ``db.js`` returning empty collections), gone when the server stops.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import requests

from runner.demo.process import NotInstalled, launch

MIDDLEWARE = Path(__file__).resolve().parent / "jsonserver.js"
UNIQUE = "users:userName,email;groups:name"
NO_RELATIONS = "_NoRelationsInTests"  # a --foreignKeySuffix no field ends with: no cascading deletes
INSTALL = ("npm install -g json-server@0.17.4 (Node.js: apt-get install nodejs npm), or point JSON_SERVER at "
           "a json-server 0.17 program")


def binary() -> Path:
    """json-server: ``$JSON_SERVER`` when set, else the one on PATH; 0.17 (1.x has another command line)."""
    given = os.environ.get("JSON_SERVER")
    found = given or shutil.which("json-server")
    if not found or not Path(found).exists():
        where = f"JSON_SERVER={given} does not exist" if given else "json-server is not installed"
        raise NotInstalled(f"{where}: {INSTALL}")
    try:
        version = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NotInstalled(f"{found} does not run ({exc}): {INSTALL}") from None
    if not version.startswith("0."):
        raise NotInstalled(f"{found} is json-server {version or '(unknown version)'}; the demo needs 0.17: {INSTALL}")
    return Path(os.path.abspath(found))  # the server runs in its own folder


def start(folder: Path, port: int, token: str, *, exe: Path | None = None, unique: str = UNIQUE,
          collections: Sequence[str] = ("users", "groups")) -> subprocess.Popen[bytes]:
    """Run json-server on 127.0.0.1:``port`` in ``folder`` (its cwd, db.js and log) and wait until it answers."""
    exe = exe or binary()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "public").mkdir(exist_ok=True)  # --static: json-server's home page is not served
    source = folder / "db.js"
    initial = json.dumps({name: [] for name in collections})
    source.write_text(f"// initial data, loaded into memory by json-server\n"
                      f"module.exports = () => ({initial});\n")
    env = {**os.environ, "JSON_SERVER_TOKEN": token, "JSON_SERVER_UNIQUE": unique, "NO_COLOR": "1"}
    env.pop("NODE_ENV", None)  # "development" would add errorhandler, "test" silences the request log

    def answers() -> bool:
        return requests.get(f"http://127.0.0.1:{port}/_test/dump", timeout=1).status_code == 200

    return launch([str(exe), "--host", "127.0.0.1", "--port", str(port), "--middlewares", str(MIDDLEWARE),
                   "--static", "public", "--foreignKeySuffix", NO_RELATIONS, str(source)],
                  folder, folder / "json-server.log", env, answers, "json-server")
