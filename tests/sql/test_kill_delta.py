"""A delta import killed between pages converges: the next run imports what the killed one had
not recorded, nothing twice, and the target ends as a run never killed leaves it. The kill comes
(SIGKILL) while the source connector hands over its Nth page, after the engine committed the
pages before it together with their watermarks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runner import sampledata

from .test_examples import REPO, target_content

KILLER = """
import os, signal, sys
from runner import cli
from runner.connectors.sql import SqlConnector
point, pages = int(sys.argv[1]), 0
real = SqlConnector.read
def read(self, *args, **kwargs):
    global pages
    for page in real(self, *args, **kwargs):
        if self.context.name == "hr":
            pages += 1
            if pages == point:
                os.kill(os.getpid(), signal.SIGKILL)
        yield page
SqlConnector.read = read
code = cli.main(sys.argv[2:])
print(f"pages: {pages}", file=sys.stderr)
sys.exit(code)
"""


def run(tmp: Path, manifest: Path, data: Path, where: Path, point: int = 0) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"HR_DB_URL": f"sqlite:///{data / 'hr.db'}", "TARGET_DB_URL": f"sqlite:///{where / 'target.db'}",
                        "PROVISION_STATE": f"sqlite:///{where / 'state.db'}"}
    return subprocess.run([sys.executable, str(tmp / "killer.py"), str(point), "run", str(manifest), "--output", "json"],
                          capture_output=True, text=True, env=env, timeout=120, cwd=REPO)


def in_process(provision, monkeypatch: pytest.MonkeyPatch, manifest: Path, data: Path, where: Path) -> dict:
    """The same run in this process (only a run to be killed needs its own): its summary."""
    monkeypatch.setenv("HR_DB_URL", f"sqlite:///{data / 'hr.db'}")
    monkeypatch.setenv("TARGET_DB_URL", f"sqlite:///{where / 'target.db'}")
    monkeypatch.setenv("PROVISION_STATE", f"sqlite:///{where / 'state.db'}")
    done = provision("run", manifest, "--output", "json")
    assert done.code == 0, done.err + done.out
    return done.json()["object_types"]


@pytest.mark.parametrize("example", ["hr-sql-to-sql.yaml", "hr-sql-watermark.yaml"])
def test_a_delta_import_killed_between_pages_converges(tmp_path: Path, example: str, provision, monkeypatch):
    (tmp_path / "killer.py").write_text(KILLER)
    manifest = tmp_path / "manifests" / example
    shutil.copytree(REPO / "manifests", manifest.parent, ignore=shutil.ignore_patterns("out", "data", ".provision"))
    shutil.copytree(REPO / "mappings", tmp_path / "mappings")
    text = manifest.read_text().replace("    type: sql\n    url: \"${env:HR_DB_URL", "    type: sql\n    page_size: 3\n"
                                        "    url: \"${env:HR_DB_URL", 1)
    assert "page_size: 3" in text
    manifest.write_text(text)
    data = tmp_path / "data"
    sampledata.make(data, 60, 6, 4)
    before = tmp_path / "before"
    before.mkdir()
    in_process(provision, monkeypatch, manifest, data, before)
    sampledata.mutate(data, 8, 20)
    clean = tmp_path / "clean"
    shutil.copytree(before, clean)
    delta = run(tmp_path, manifest, data, clean)
    assert delta.returncode == 0, delta.stderr
    pages = int(delta.stderr.rsplit("pages: ", 1)[1])
    changed = sum(c["imported"] for c in json.loads(delta.stdout)["object_types"].values())
    assert pages >= 4 and changed >= 10
    for point in sorted({1, 2, pages // 2, pages - 1, pages}):
        where = tmp_path / f"kill{point}"
        shutil.copytree(before, where)
        killed = run(tmp_path, manifest, data, where, point)
        assert killed.returncode == -9, killed.stderr
        in_process(provision, monkeypatch, manifest, data, where)  # the rerun
        again = in_process(provision, monkeypatch, manifest, data, where)
        assert target_content(f"sqlite:///{where / 'target.db'}") == target_content(f"sqlite:///{clean / 'target.db'}")
        assert all(c["imported"] == 0 and c["failed"] == 0 for c in again.values()), (point, again)
