"""``pip install 'provision[all]'`` brings every optional feature, and nothing from elsewhere.

The ``all`` extra names this project's own extras (``provision[postgres,mysql,serve,demo]``).
The name ``provision`` on PyPI belongs to an unrelated project, so the test installs with
``--no-index``: pip must resolve ``all`` to this project's extras, never look the name up. The
packages the extras need come from this test environment (a ``.pth`` file points the new
environment at it), as they would come from PyPI on a fresh machine.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

from conftest import REPO


def test_the_all_extra_installs_this_project_with_every_extra(tmp_path: Path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True, timeout=300)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], check=True,
                          capture_output=True, text=True).stdout.strip()
    (Path(site) / "test-environment.pth").write_text(sysconfig.get_path("purelib") + "\n")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",  # as test_packaging builds it
                            "--disable-pip-version-check", "-w", tmp_path, REPO], capture_output=True, text=True,
                           timeout=600)
    assert built.returncode == 0, built.stderr
    wheel = next(tmp_path.glob("provision-*.whl"))
    done = subprocess.run([python, "-m", "pip", "install", "--no-index", "--quiet", "--disable-pip-version-check",
                           f"provision[all] @ {wheel.as_uri()}"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    shown = subprocess.run([venv / "bin" / "provision", "--version"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    extras = dict(line.split(None, 1) for line in shown.stdout.split("extras:\n", 1)[1].splitlines())
    assert set(extras) == {"postgres", "mysql", "serve", "demo"}
    assert not any(state.startswith("missing") for state in extras.values()), extras
