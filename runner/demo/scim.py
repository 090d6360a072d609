"""``scim2-server`` (PyPI, the python-scim project): a real SCIM 2.0 service in memory, for ``provision
demo scim`` and the tests (``tests/servers/scim.py`` starts it through :func:`start`).

It answers on ``http://127.0.0.1:PORT`` (the SCIM base itself: ``/Users``, ``/Groups``,
``/ServiceProviderConfig``), accepts only ``Authorization: Bearer TOKEN``, and forgets everything
when it stops. ``dynamic_tenants=True`` (the tests) serves a fresh empty tenant under any first path
segment instead, so each test takes ``/<name>`` of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import requests

from runner.demo.process import NotInstalled, launch


def command() -> list[str]:
    """The ``scim2-server`` program: beside this Python (a venv), else on PATH."""
    exe = Path(sys.executable).with_name("scim2-server")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("scim2-server")
    if found:
        return [found]
    raise NotInstalled("scim2-server is not installed: pip install 'provision[demo]' (or pip install scim2-server) "
                       "in the environment provision runs from")


def start(folder: Path, port: int, token: str, *, dynamic_tenants: bool = False) -> subprocess.Popen[bytes]:
    """Run scim2-server on 127.0.0.1:``port`` (its log in ``folder``) and wait until it answers."""
    probe = f"http://127.0.0.1:{port}{'/probe' if dynamic_tenants else ''}/ServiceProviderConfig"

    def answers() -> bool:
        return requests.get(probe, timeout=1, headers={"Authorization": f"Bearer {token}"}).status_code == 200

    return launch([*command(), "--hostname", "127.0.0.1", "--port", str(port), "--bearer-token", token,
                   *(["--dynamic-tenants"] if dynamic_tenants else [])],
                  folder, folder / "scim2-server.log", {**os.environ, "PYTHONUNBUFFERED": "1"}, answers, "scim2-server")
