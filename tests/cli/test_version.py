"""``provision --version``: what is installed, for a bug report or a support question.

provision's version, Python's, every connector type with the distribution that brings it and its
version (built-ins from provision itself, plugins from their entry points), and which optional
extras are installed.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from runner import __version__


def version_text() -> str:
    exe = Path(sys.executable).parent / "provision"  # the installed console script, as a user runs it
    done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


def test_version_names_provision_python_and_every_connector_with_its_distribution():
    lines = [line.split() for line in version_text().splitlines()]
    assert lines[0][:2] == ["provision", __version__]
    assert lines[1][:2] == ["Python", platform.python_version()]
    connectors = {line[0]: (line[1], line[2]) for line in lines[lines.index(["connectors:"]) + 1:
                                                               lines.index(["extras:"])]}
    for builtin in ("csv", "sql", "ldap", "scim", "rest", "soap", "scim-endpoint"):
        assert connectors[builtin] == (__version__, "(provision)"), builtin
    # the example plugin (scripts/test installs it) comes from its own distribution's entry point
    assert connectors["jsondir"] == (version("provision-jsondir"), "(provision-jsondir)")


def test_version_says_which_extras_are_installed():
    extras = dict(line.split(None, 1) for line in version_text().split("extras:\n", 1)[1].splitlines())
    assert extras["postgres"] == f"psycopg {version('psycopg')}"
    assert extras["mysql"].lower() == f"pymysql {version('pymysql')}"
    assert "starlette" in extras["serve"] and "uvicorn" in extras["serve"]
